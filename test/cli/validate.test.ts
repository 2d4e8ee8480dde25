import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runBdr } from '../helpers/run-bdr.ts';

const INVALID = 'test/fixtures/invalid';

/** Each fixture marks the one line that must be reported with `# expect: FIELD: MESSAGE-SUBSTRING`. */
function expectation(file: string): { line: number; field: string; message: string } {
  const lines = readFileSync(file, 'utf8').split('\n');
  const index = lines.findIndex((l) => l.includes('# expect:'));
  if (index < 0) throw new Error(`${file} has no "# expect:" marker`);
  const marker = (lines[index] ?? '').split('# expect:')[1]?.trim() ?? '';
  const sep = marker.indexOf(': ');
  return { line: index + 1, field: marker.slice(0, sep), message: marker.slice(sep + 2).trim() };
}

describe('bdr validate', () => {
  it('accepts every example of the GitOps repository and the quickstart', async () => {
    const r = await runBdr(['validate', 'examples/']);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^\d+ object\(s\) in \d+ file\(s\) are valid$/);
    const count = Number(r.stdout.split(' ')[0]);
    expect(count).toBeGreaterThanOrEqual(10);
  });

  const fixtures = readdirSync(INVALID).filter((f) => f.endsWith('.yaml')).sort();
  it('has a broken example for every error class', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(20);
  });

  for (const name of fixtures) {
    it(`rejects ${name} at the marked file:line and field`, async () => {
      const file = `${INVALID}/${name}`;
      const want = expectation(file);
      const r = await runBdr(['validate', file]);
      expect(r.exitCode).toBe(1);
      const findings = r.stdout.split('\n').filter((l) => l !== '');
      expect(findings, r.stdout).toHaveLength(1);
      const [finding] = findings as [string];
      expect(finding.startsWith(`${file}:${want.line}: `), finding).toBe(true);
      if (want.field !== '') expect(finding).toContain(`: ${want.field}: `);
      expect(finding).toContain(want.message);
      expect(r.stderr).toMatch(/^bdr: 1 problem\(s\) in 1 file\(s\); fix them/);
    });
  }

  it('reports every file of a directory and every document of a multi-document file', async () => {
    const r = await runBdr(['validate', INVALID]);
    expect(r.exitCode).toBe(1);
    const files = new Set(r.stdout.split('\n').filter(Boolean).map((l) => l.split(':')[0]));
    expect(files.size).toBe(fixtures.length);
  });

  it('says what to do when a path does not exist', async () => {
    const r = await runBdr(['validate', 'no/such/dir']);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toBe('bdr: cannot read no/such/dir: no such file or directory');
  });
});

describe('bdr command line', () => {
  it('prints help with the commands and documented exit codes', async () => {
    const r = await runBdr(['--help']);
    expect(r.exitCode).toBe(0);
    for (const cmd of ['validate', 'crds']) expect(r.stdout).toContain(cmd);
    expect(r.stdout).toContain('Exit codes:');
  });

  it('prints help for a subcommand', async () => {
    const r = await runBdr(['validate', '--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('Usage: bdr validate');
    expect(r.stdout).toContain('FILE:LINE: Kind/name: field: message');
  });

  it('exits 2 with a one-line error on an unknown command', async () => {
    const r = await runBdr(['valdate', 'x']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("unknown command 'valdate'");
    expect(r.stderr).toContain('validate');
  });
});
