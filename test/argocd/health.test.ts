/**
 * The Argo CD health check (manifests/argocd/health.lua) run by the real Lua interpreter (Debian's lua5.4)
 * against statuses recorded from real reconciles (test/argocd/record-fixtures.ts and test/fixtures/argocd/README.md),
 * and variations of them. Expected results follow kstatus's order of checks.
 */
import { execa } from 'execa';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { validateObjectSchema } from '../../api/validation.ts';
import { REPO_ROOT } from '../helpers/run-bdr.ts';
import { HEALTH_LUA, healthKey, KINDS, PATCH_FILE, patchText } from './health.ts';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/argocd');
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json } & { metadata: { [key: string]: Json }; spec: { [key: string]: Json }; status?: { [key: string]: Json } };

/** A Lua table constructor for a JSON value, the way Argo CD hands the object to the script. */
function lua(value: Json): string {
  if (value === null) return 'nil';
  if (typeof value === 'boolean' || typeof value === 'number') return String(value);
  if (typeof value === 'string') {
    return `"${[...Buffer.from(value, 'utf8')].map((b) => (b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${b}`)).join('')}"`;
  }
  if (Array.isArray(value)) return `{${value.map(lua).join(', ')}}`;
  return `{${Object.entries(value).map(([k, v]) => `[${lua(k)}] = ${lua(v)}`).join(', ')}}`;
}

async function health(obj: Obj): Promise<{ status: string; message: string }> {
  const driver = `obj = ${lua(obj as Json)}\nlocal hs = assert(loadfile(${lua(HEALTH_LUA)}))()\nio.write(hs.status, "\\n", hs.message or "")\n`;
  const r = await execa('/usr/bin/lua5.4', ['-'], { input: driver, reject: false });
  if (r.exitCode !== 0) throw new Error(`lua5.4 failed: ${String(r.stderr)}`);
  const [status = '', ...message] = String(r.stdout).split('\n');
  return { status, message: message.join('\n') };
}

const fixture = (name: string): Obj => JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), 'utf8')) as Obj;
const conditions = (o: Obj) => (o.status?.conditions ?? []) as Array<{ [key: string]: Json }>;

describe('Argo CD health check', () => {
  it('every fixture is a valid bdr object, status included', () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThanOrEqual(22);
    const kinds = new Set<string>();
    for (const f of files) {
      const obj = JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')) as Obj;
      kinds.add(String(obj.kind));
      expect(validateObjectSchema(obj), f).toEqual([]);
    }
    expect([...kinds].sort()).toEqual([...KINDS].sort());
  });

  describe('on statuses recorded from real reconciles', () => {
    it.each([
      ['machine-here', 'Healthy', 'Succeeded: '],
      ['machine-sshbox', 'Healthy', 'Succeeded: '],
      ['machine-wrongkey', 'Degraded', 'HostKeyMismatch: '],
      ['machine-nosecret', 'Progressing', 'ProgressingWithRetry: '],
      ['retentionpolicy-short', 'Healthy', 'Succeeded: used by'],
      ['retentionpolicy-badzone', 'Degraded', 'InvalidSpec: '],
      ['dataset-web', 'Healthy', 'Succeeded: 1 restore point(s)'],
      ['dataset-paused', 'Suspended', 'Suspended: spec.suspend is true'],
      ['dataset-orphan', 'Progressing', 'ProgressingWithRetry: RetentionPolicy default/nope does not exist'],
      ['dataset-wrongpool', 'Degraded', 'PoolNotManaged: pool otherpool'],
      ['storagetarget-offsite', 'Healthy', 'Succeeded: 1 of 1 machine(s) usable'],
      ['storagetarget-unreachable', 'Progressing', 'ProgressingWithRetry: no listed machine can hold replicas; cold01: not Ready'],
      ['storagetarget-suspended', 'Suspended', 'Suspended: spec.suspend is true'],
      ['vector-insync', 'Healthy', 'Synced: replicated bdr-20261201T090000Z to vault02'],
      ['vector-waiting', 'Progressing', 'ProgressingWithRetry: source Vector default/web-offsite is not paired yet'],
      ['vector-nostorage', 'Progressing', 'ProgressingWithRetry: no machine can take vector default/web-nostorage: cold01: not Ready'],
      ['vector-diverged', 'Degraded', 'TargetDiverged: Target '],
      ['vector-suspended', 'Suspended', 'Suspended: spec.suspend is true'],
      ['vector-machine-suspended', 'Suspended', 'MachineSuspended: Machine vault02 is suspended (spec.suspend)'],
      // Its first sync mid-stream (status.transfer): Reconciling=True (Transferring) comes with status.transfer, so
      // Argo CD shows it Progressing although Ready (the pairing's) stays True; InSync comes with the run's end.
      ['vector-transferring', 'Progressing', 'Transferring: sending bdr-20261201T090000Z to vault02 (stream 1 of 1): 0 bytes so far'],
    ])('%s is %s', async (name, status, message) => {
      const hs = await health(fixture(name));
      expect(hs.status).toBe(status);
      expect(hs.message.startsWith(message), hs.message).toBe(true);
    });

    it('the recordings are what their names say', () => {
      expect(fixture('vector-transferring').status?.transfer).toMatchObject({ snapshot: 'bdr-20261201T090000Z', bytes: 0 });
      expect(conditions(fixture('vector-transferring')).map((c) => c.type)).not.toContain('InSync');
      expect(conditions(fixture('vector-transferring')).find((c) => c.type === 'Ready')).toMatchObject({ status: 'True', reason: 'Succeeded' });
      expect(conditions(fixture('vector-transferring')).find((c) => c.type === 'Reconciling')).toMatchObject({ status: 'True', reason: 'Transferring' });
      expect(conditions(fixture('vector-insync')).map((c) => c.type)).not.toContain('Reconciling');
      expect(fixture('vector-insync').status?.lastSyncedSnapshot).toMatchObject({ name: 'bdr-20261201T090000Z' });
      expect(conditions(fixture('vector-insync')).find((c) => c.type === 'InSync')).toMatchObject({ status: 'True', reason: 'WithinRpo' });
      expect(conditions(fixture('vector-diverged')).find((c) => c.type === 'Stalled')).toMatchObject({ status: 'True', reason: 'TargetDiverged' });
      expect(fixture('vector-suspended').spec.suspend).toBe(true);
      expect(fixture('storagetarget-suspended').spec.suspend).toBe(true);
    });
  });

  describe('on variations of the recordings', () => {
    it('Progressing while the controller has not observed the latest generation, even when suspended or stalled before', async () => {
      const web = fixture('dataset-web');
      web.metadata.generation = 2;
      expect(await health(web)).toEqual({ status: 'Progressing', message: 'Waiting for the bdr controller to observe generation 2' });
      const paused = fixture('dataset-wrongpool');
      paused.metadata.generation = 2;
      paused.spec.suspend = true;
      expect((await health(paused)).status).toBe('Progressing');
    });

    it('Progressing without a status, or with a status that has no observedGeneration or no conditions', async () => {
      const web = fixture('dataset-web');
      delete web.status;
      expect(await health(web)).toEqual({ status: 'Progressing', message: 'Waiting for the bdr controller to report status' });
      const empty = fixture('dataset-web');
      empty.status = {};
      expect((await health(empty)).status).toBe('Progressing');
      const noConditions = fixture('dataset-web');
      noConditions.status = { observedGeneration: 1 };
      expect(await health(noConditions)).toEqual({ status: 'Progressing', message: 'Waiting for the Ready condition' });
    });

    it('Progressing while Ready describes an older generation than status.observedGeneration', async () => {
      const web = fixture('dataset-web');
      web.metadata.generation = 2;
      web.status!.observedGeneration = 2;
      expect(await health(web)).toEqual({ status: 'Progressing', message: 'Waiting for Ready to describe generation 2' });
    });

    it('Degraded on Ready=False without Reconciling, Progressing on Ready=Unknown', async () => {
      const ds = fixture('dataset-wrongpool');
      ds.status!.conditions = conditions(ds).filter((c) => c.type !== 'Stalled');
      expect(await health(ds)).toMatchObject({ status: 'Degraded', message: expect.stringMatching(/^PoolNotManaged: /) as unknown as string });
      const web = fixture('dataset-web');
      for (const c of conditions(web)) if (c.type === 'Ready') c.status = 'Unknown';
      expect((await health(web)).status).toBe('Progressing');
    });

    it('Suspended outranks Stalled; a Suspended=False condition suspends nothing', async () => {
      const ds = fixture('dataset-wrongpool');
      ds.spec.suspend = true;
      expect((await health(ds)).status).toBe('Suspended');
      const web = fixture('dataset-web');
      conditions(web).push({ type: 'Suspended', status: 'False', reason: 'Resumed', message: '' });
      expect((await health(web)).status).toBe('Healthy');
    });

    it('Healthy without metadata.generation (nothing to compare)', async () => {
      const web = fixture('dataset-web');
      delete web.metadata.generation;
      expect((await health(web)).status).toBe('Healthy');
    });
  });

  it('uses no Lua beyond 5.1, which Argo CD runs (gopher-lua)', () => {
    const code = readFileSync(HEALTH_LUA, 'utf8').replace(/--.*$/gm, '');
    for (const feature of [/\bgoto\b/, /\/\//, /[&|~]\s*[\w(]/, /<const>|<close>/, /\butf8\./, /\bos\.|\bio\./]) expect(code).not.toMatch(feature);
  });

  it('argocd-cm-patch.yaml is generated from health.lua', () => {
    expect(readFileSync(PATCH_FILE, 'utf8'), 'regenerate: npx tsx test/argocd/health.ts --write').toBe(patchText());
  });

  describe('as a kustomize Component', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'bdr-argocd-'));
      writeFileSync(join(dir, 'argocd-cm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: argocd-cm, namespace: argocd }\ndata: { url: "https://argocd.example.com" }\n');
      writeFileSync(
        join(dir, 'kustomization.yaml'),
        `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [argocd-cm.yaml]\ncomponents: [${relative(dir, join(REPO_ROOT, 'manifests/argocd'))}]\n`,
      );
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    it('merges the check for each of the five kinds into an existing argocd-cm, keeping its other keys', async () => {
      const r = await execa('/usr/bin/kubectl', ['kustomize', dir], { reject: false });
      expect(r.exitCode, String(r.stderr)).toBe(0);
      const docs = parseAllDocuments(String(r.stdout)).map((d) => d.toJS() as { kind: string; metadata: { name: string }; data: Record<string, string> });
      expect(docs).toHaveLength(1);
      const script = readFileSync(HEALTH_LUA, 'utf8');
      expect(docs[0]!.data).toEqual({ url: 'https://argocd.example.com', ...Object.fromEntries(KINDS.map((k) => [healthKey(k), script])) });
    });
  });
});
