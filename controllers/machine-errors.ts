/**
 * Why a Machine's Secret cannot be used. Each is a condition reason, so an operator (and an alert's runbook)
 * can tell "create the Secret" from "the Machine points where bdr never reads".
 */
export type MachineSecretReason = 'SecretNotFound' | 'SecretNamespaceNotAllowed';

/** The Secret a Machine names is missing, unusable or outside the operator's namespace: a user must act. */
export class MachineSecretError extends Error {
  constructor(
    message: string,
    readonly reason: MachineSecretReason = 'SecretNotFound',
  ) {
    super(message);
    this.name = 'MachineSecretError';
  }
}
