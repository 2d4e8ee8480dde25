/**
 * Structured logs, one line per event: logfmt for people on a terminal, JSON for log pipelines (BDR_LOG_FORMAT
 * = json). Values are passed as fields, never interpolated, so a caller cannot leak a secret by formatting it
 * into a message by accident; fields named like secrets are masked as a second line of defence.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /(private.?key|password|passphrase|secret|token)/i;

export interface LoggerOptions {
  level?: LogLevel;
  format?: 'logfmt' | 'json';
  write?: (line: string) => void;
  now?: () => Date;
}

function render(value: unknown): string {
  if (value instanceof Error) return value.message;
  if (typeof value === 'string') return value;
  return JSON.stringify(value) ?? String(value);
}

function logfmtValue(value: string): string {
  return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
}

export function createLogger(options: LoggerOptions = {}, base: LogFields = {}): Logger {
  const envLevel = process.env.BDR_LOG_LEVEL as LogLevel | undefined;
  const level = options.level ?? (envLevel && envLevel in ORDER ? envLevel : 'info');
  const format = options.format ?? (process.env.BDR_LOG_FORMAT === 'json' ? 'json' : 'logfmt');
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const now = options.now ?? (() => new Date());

  const emit = (lvl: LogLevel, msg: string, fields: LogFields = {}) => {
    if (ORDER[lvl] < ORDER[level]) return;
    const all: LogFields = { ...base, ...fields };
    for (const key of Object.keys(all)) if (SECRET_FIELD.test(key)) all[key] = '[redacted]';
    if (format === 'json') {
      const rec: LogFields = { ts: now().toISOString(), level: lvl, msg };
      for (const [k, v] of Object.entries(all)) rec[k] = v instanceof Error ? v.message : v;
      write(JSON.stringify(rec));
      return;
    }
    const parts = [`ts=${now().toISOString()}`, `level=${lvl}`, `msg=${logfmtValue(msg)}`];
    for (const [k, v] of Object.entries(all)) if (v !== undefined) parts.push(`${k}=${logfmtValue(render(v))}`);
    write(parts.join(' '));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ level, format, write, now }, { ...base, ...fields }),
  };
}

/** A logger that drops everything, for tests that assert on behaviour rather than output. */
export const silentLogger: Logger = createLogger({ write: () => undefined });
