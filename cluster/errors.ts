import type { JsonObject } from './types.ts';

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

/** A failure that the server reports as a `Status` body with an HTTP code, exactly as kube-apiserver does. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toStatus(): JsonObject {
    const status: JsonObject = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      code: this.code,
    };
    if (this.details) status.details = JSON.parse(JSON.stringify(this.details)) as JsonObject;
    return status;
  }
}

/** How a resource is named in error messages: `vectors.bdr.dev`, or `configmaps` for the core group. */
export interface ErrorSubject {
  group: string;
  plural: string;
}

function qualified(s: ErrorSubject): string {
  return s.group ? `${s.plural}.${s.group}` : s.plural;
}

export function notFound(s: ErrorSubject, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${qualified(s)} "${name}" not found`, {
    name,
    group: s.group,
    kind: s.plural,
  });
}

export function alreadyExists(s: ErrorSubject, name: string): ApiError {
  return new ApiError(409, 'AlreadyExists', `${qualified(s)} "${name}" already exists`, {
    name,
    group: s.group,
    kind: s.plural,
  });
}

export function conflict(s: ErrorSubject, name: string, why?: string): ApiError {
  const tail =
    why ?? 'the object has been modified; please apply your changes to the latest version and try again';
  return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(s)} "${name}": ${tail}`, {
    name,
    group: s.group,
    kind: s.plural,
  });
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

export function methodNotAllowed(message: string): ApiError {
  return new ApiError(405, 'MethodNotAllowed', message);
}

export function unsupportedMediaType(contentType: string, accepted: string[]): ApiError {
  return new ApiError(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`,
    { causes: [{ reason: 'UnexpectedHeader', message: `unsupported media type "${contentType}"`, field: 'Content-Type header' }] },
  );
}

export function gone(message: string): ApiError {
  return new ApiError(410, 'Expired', message);
}

export function forbidden(message: string): ApiError {
  return new ApiError(403, 'Forbidden', message);
}

export function internal(message: string): ApiError {
  return new ApiError(500, 'InternalError', `Internal error occurred: ${message}`, {
    causes: [{ reason: '', message }],
  });
}

/** A 422 whose message lists every cause the way kube-apiserver's `NewInvalid` does. */
export function invalid(kind: string, group: string, name: string, causes: StatusCause[]): ApiError {
  const qualifiedKind = group ? `${kind}.${group}` : kind;
  const parts = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message));
  const joined = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
  return new ApiError(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${joined}`, {
    name,
    group,
    kind,
    causes,
  });
}
