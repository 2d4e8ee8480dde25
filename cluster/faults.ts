/** Which requests a fault applies to; every field that is set must match. */
export interface FaultFilter {
  method?: string;
  /** A substring of, or a pattern for, the request path (without the query). */
  path?: string | RegExp;
  /** true: only watch requests; false: only non-watch requests. */
  watch?: boolean;
}

interface Rule {
  remaining: number;
  filter: FaultFilter;
  status?: number;
  delayMs?: number;
}

export interface FaultDecision {
  status?: number;
  delayMs: number;
}

/**
 * Test-only switches that make the server misbehave the way real clusters do: flaky answers,
 * slow answers, dropped watch connections and expired resourceVersions.
 */
export class Faults {
  private rules: Rule[] = [];
  private expire: 'http' | 'stream' | undefined;
  private dropper: ((abrupt: boolean) => number) | undefined;

  /** Answers the next `count` matching requests with `status` (409, 500, 503…) and a Status body. */
  failNext(count: number, status: number, filter: FaultFilter = {}): void {
    this.rules.push({ remaining: count, filter, status });
  }

  /** Holds the next `count` matching requests for `delayMs` before serving them normally. */
  delayNext(count: number, delayMs: number, filter: FaultFilter = {}): void {
    this.rules.push({ remaining: count, filter, delayMs });
  }

  /**
   * Makes the next watch request fail with 410 Expired: as an HTTP 410 answer (`http`) or as a 200
   * stream whose first event is an ERROR carrying the 410 Status (`stream`, what kube-apiserver does).
   */
  expireNextWatch(mode: 'http' | 'stream' = 'stream'): void {
    this.expire = mode;
  }

  /**
   * Ends every open watch stream. `abrupt` destroys the sockets (a connection reset) instead of ending
   * the responses cleanly. Returns how many watches were dropped.
   */
  dropWatches(options: { abrupt?: boolean } = {}): number {
    return this.dropper?.(options.abrupt ?? false) ?? 0;
  }

  reset(): void {
    this.rules = [];
    this.expire = undefined;
  }

  /** @internal Connects dropWatches to the server's watch hub. */
  attachWatchDropper(dropper: (abrupt: boolean) => number): void {
    this.dropper = dropper;
  }

  /** @internal Consumes the expire switch if it is set. */
  takeExpire(): 'http' | 'stream' | undefined {
    const mode = this.expire;
    this.expire = undefined;
    return mode;
  }

  /** @internal Consumes the matching rules for one request. */
  take(method: string, path: string, isWatch: boolean): FaultDecision {
    const decision: FaultDecision = { delayMs: 0 };
    for (const rule of this.rules) {
      if (rule.remaining <= 0 || !matches(rule.filter, method, path, isWatch)) continue;
      if (rule.status !== undefined && decision.status !== undefined) continue;
      rule.remaining--;
      if (rule.status !== undefined) decision.status = rule.status;
      if (rule.delayMs !== undefined) decision.delayMs += rule.delayMs;
    }
    this.rules = this.rules.filter((r) => r.remaining > 0);
    return decision;
  }
}

function matches(filter: FaultFilter, method: string, path: string, isWatch: boolean): boolean {
  if (filter.method && filter.method.toUpperCase() !== method) return false;
  if (filter.watch !== undefined && filter.watch !== isWatch) return false;
  if (filter.path instanceof RegExp) return filter.path.test(path);
  if (typeof filter.path === 'string') return path.includes(filter.path);
  return true;
}
