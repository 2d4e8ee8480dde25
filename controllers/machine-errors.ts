/** The Secret a Machine names is missing or unusable: a user must create or fix it. */
export class MachineSecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MachineSecretError';
  }
}
