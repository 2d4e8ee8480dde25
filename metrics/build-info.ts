/**
 * `bdr_build_info{version} 1`: which bdr is running, and the series whose absence says the operator is down
 * (an alert on `absent(bdr_build_info)` needs no knowledge of the scrape job's name).
 */
import { readFileSync } from 'node:fs';
import { Gauge, type Registry } from 'prom-client';

/** The version in package.json, read once: the single place the version is written down. */
export const BDR_VERSION: string = (() => {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
})();

export function registerBuildInfo(registry: Registry, version: string = BDR_VERSION): void {
  const gauge = new Gauge({ name: 'bdr_build_info', help: 'Always 1; the version label says which bdr is running', labelNames: ['version'], registers: [registry] });
  gauge.set({ version }, 1);
}
