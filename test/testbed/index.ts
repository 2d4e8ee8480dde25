/**
 * The integration test bed: real zfs-fuse pools and real sshd "machines", created per test file and
 * always removed afterwards. Typical use:
 *
 *   const bed = new TestBed();
 *   beforeAll(async () => { pool = await bed.pool(); machine = await bed.machine('a'); });
 *   afterAll(() => bed.cleanup());
 */
import { createTestPool, type TestPool, type TestPoolOptions } from './pools.ts';
import { startTestMachine, type TestMachine, type TestMachineOptions } from './machine.ts';
import { ensureZfsFuse } from './zfs-fuse.ts';

export { ensurePackages } from './packages.ts';
export { ensureZfsFuse, zfsFuseResponds } from './zfs-fuse.ts';
export { createTestPool, destroyPool, cleanStaleTestResources, type TestPool, type TestPoolOptions } from './pools.ts';
export { startSshd, type TestSshd, type TestSshdOptions } from './sshd.ts';
export { generateKeyPair, type KeyPair } from './keys.ts';
export {
  startTestMachine,
  type TestMachine,
  type TestMachineOptions,
  type MachineResource,
  type SecretResource,
} from './machine.ts';
export { run, runOk, TestBedError, TEST_PREFIX, TESTBED_ROOT, uniqueTestName } from './run.ts';

/** Tracks everything a test file creates so that one `cleanup()` in afterAll removes it all. */
export class TestBed {
  private readonly pools: TestPool[] = [];
  private readonly machines: TestMachine[] = [];

  async pool(options?: TestPoolOptions): Promise<TestPool> {
    await ensureZfsFuse();
    const pool = await createTestPool(options);
    this.pools.push(pool);
    return pool;
  }

  async machine(name: string, options: TestMachineOptions = {}): Promise<TestMachine> {
    const machine = await startTestMachine({ name, ...options });
    this.machines.push(machine);
    return machine;
  }

  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    for (const m of this.machines.splice(0)) await m.stop().catch((e: unknown) => errors.push(e));
    for (const p of this.pools.splice(0)) await p.destroy().catch((e: unknown) => errors.push(e));
    if (errors.length > 0) throw new AggregateError(errors, 'test bed cleanup failed');
  }
}
