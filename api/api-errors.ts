/**
 * How a Kubernetes API server's refusals read, for people: its Status body's message, not client-node's dump of
 * the whole response ("HTTP-Code: 422 Message: Unknown API Status Code! Body: …"). Shared by the GitOps applier
 * and the controllers, which both talk to the API server through @kubernetes/client-node.
 */
import { ApiException } from '@kubernetes/client-node';

export function statusCodeOf(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const code = (err as { code?: unknown; statusCode?: unknown } | null)?.code ?? (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

function statusBody(err: ApiException<unknown>): { message?: unknown; reason?: unknown } | undefined {
  let parsed: unknown = err.body;
  if (typeof parsed === 'string') {
    try {
      parsed = JSON.parse(parsed);
    } catch {
      return undefined;
    }
  }
  return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as { message?: unknown; reason?: unknown }) : undefined;
}

/** The API server's own message (a Status body's), or the first line of any other error. */
export function apiMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const message = statusBody(err)?.message;
    return typeof message === 'string' ? message : `HTTP ${err.code}`;
  }
  return err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
}

/** For a log line: an API error as "HTTP 409 Conflict: <message>"; any other error as it is. */
export function describeApiError(err: unknown): unknown {
  if (!(err instanceof ApiException)) return err;
  const reason = statusBody(err)?.reason;
  return `HTTP ${err.code}${typeof reason === 'string' && reason !== '' ? ` ${reason}` : ''}: ${apiMessage(err)}`;
}
