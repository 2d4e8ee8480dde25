/**
 * Transport-level failures of a NodeConnection. Controllers branch on `kind` (or instanceof): a host-key
 * mismatch or failed authentication is terminal until someone changes the Machine or its Secret; a lost
 * connection or a timeout is retriable.
 */
export type NodeErrorKind =
  | 'hostKeyMismatch'
  | 'authenticationFailed'
  | 'connectFailed'
  | 'connectionLost'
  | 'timeout'
  | 'aborted'
  | 'invalidConfig';

export class NodeError extends Error {
  constructor(
    readonly kind: NodeErrorKind,
    readonly target: string,
    message: string,
    readonly retriable: boolean,
    options?: { cause?: unknown },
  ) {
    super(`${target}: ${message}`, options);
    this.name = 'NodeError';
  }
}

/** The server presented a host key other than the pinned one. Nothing was run on it. */
export class HostKeyMismatchError extends NodeError {
  constructor(
    target: string,
    readonly expectedFingerprint: string,
    readonly actualFingerprint: string,
  ) {
    super(
      'hostKeyMismatch',
      target,
      `host key mismatch: expected ${expectedFingerprint}, server presented ${actualFingerprint}; refusing to run anything`,
      false,
    );
    this.name = 'HostKeyMismatchError';
  }
}

export class AuthenticationError extends NodeError {
  constructor(target: string, options?: { cause?: unknown }) {
    super('authenticationFailed', target, 'the server refused the private key', false, options);
    this.name = 'AuthenticationError';
  }
}

export class ConnectError extends NodeError {
  constructor(target: string, message: string, options?: { cause?: unknown }) {
    super('connectFailed', target, `cannot connect: ${message}`, true, options);
    this.name = 'ConnectError';
  }
}

/** The connection dropped while a command ran; the command's outcome on the machine is unknown. */
export class ConnectionLostError extends NodeError {
  constructor(target: string, message: string, options?: { cause?: unknown }) {
    super('connectionLost', target, `connection lost: ${message}`, true, options);
    this.name = 'ConnectionLostError';
  }
}

export class CommandTimeoutError extends NodeError {
  constructor(
    target: string,
    readonly program: string,
    readonly timeoutMs: number,
  ) {
    super('timeout', target, `${program} did not finish within ${timeoutMs} ms and was stopped`, true);
    this.name = 'CommandTimeoutError';
  }
}

export class CommandAbortedError extends NodeError {
  constructor(
    target: string,
    readonly program: string,
  ) {
    super('aborted', target, `${program} was cancelled`, false);
    this.name = 'CommandAbortedError';
  }
}

export class InvalidConnectionConfigError extends NodeError {
  constructor(target: string, message: string) {
    super('invalidConfig', target, message, false);
    this.name = 'InvalidConnectionConfigError';
  }
}
