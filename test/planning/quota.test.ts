import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SIZE_OR_NONE_PATTERN, SIZE_PATTERN } from '../../api/schema-parts.ts';
import { parseSize, replicaQuota } from '../../planning/quota.ts';

describe('parseSize', () => {
  it('reads 1024-based suffixes (figures computed by hand)', () => {
    expect(parseSize('1')).toEqual({ ok: true, value: 1 });
    expect(parseSize('512K')).toEqual({ ok: true, value: 524_288 });
    expect(parseSize('64M')).toEqual({ ok: true, value: 67_108_864 });
    expect(parseSize('500G')).toEqual({ ok: true, value: 536_870_912_000 });
    expect(parseSize('3T')).toEqual({ ok: true, value: 3_298_534_883_328 });
    expect(parseSize('7P')).toEqual({ ok: true, value: 7_881_299_347_898_368 });
  });

  it('refuses what is not exact bytes, and figures beyond 2^53', () => {
    for (const bad of ['', '0', '05G', '1.5G', '500GB', '500g', ' 1G', 'none', '-1', '1E']) {
      expect(parseSize(bad).ok, bad).toBe(false);
    }
    expect(parseSize('8P')).toMatchObject({ ok: false, problem: expect.stringMatching(/too large/) });
    expect(parseSize('9007199254740992')).toMatchObject({ ok: false });
    expect(parseSize('9007199254740991')).toEqual({ ok: true, value: Number.MAX_SAFE_INTEGER });
  });

  it('accepts exactly what the schema pattern accepts, up to the 2^53 bound', () => {
    const pattern = new RegExp(SIZE_PATTERN);
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{0,19}[KMGTPEB ]?$/), (text) => {
        const parsed = parseSize(text);
        if (!pattern.test(text)) expect(parsed.ok).toBe(false);
        else if (parsed.ok) expect(Number.isSafeInteger(parsed.value) && parsed.value > 0).toBe(true);
        else expect(parsed.problem).toMatch(/too large/);
      }),
    );
  });
});

describe('replicaQuota', () => {
  const st = (text: string | undefined) => ({ text, from: 'StorageTarget' as const, name: 'offsite' });
  const machine = (text: string | undefined) => ({ text, from: 'Machine' as const, name: 'store1' });

  it("applies the administrators' ceiling; a Vector may ask for less, never more or none", () => {
    expect(replicaQuota([], undefined)).toEqual({ ok: true, value: { bytes: undefined, from: 'none' } });
    expect(replicaQuota([st('1G')], undefined)).toEqual({ ok: true, value: { bytes: 1_073_741_824, from: 'StorageTarget' } });
    expect(replicaQuota([st('1G')], '2M')).toEqual({ ok: true, value: { bytes: 2_097_152, from: 'Vector' } });
    expect(replicaQuota([st('1G')], '1G')).toEqual({ ok: true, value: { bytes: 1_073_741_824, from: 'Vector' } });
    expect(replicaQuota([st('1G')], 'none')).toMatchObject({ ok: false, reason: 'QuotaAboveCeiling', problem: "spec.target.quota none would lift the ceiling 1G set by StorageTarget offsite's spec.replicaQuota; ask for at most that, or omit it" });
    expect(replicaQuota([st('1G')], '2G')).toMatchObject({ ok: false, reason: 'QuotaAboveCeiling', problem: "spec.target.quota 2G is above the ceiling 1G set by StorageTarget offsite's spec.replicaQuota; ask for at most that, or omit it" });
    // Without a ceiling the Vector decides, none included.
    expect(replicaQuota([st(undefined), machine(undefined)], '2M')).toEqual({ ok: true, value: { bytes: 2_097_152, from: 'Vector' } });
    expect(replicaQuota([], 'none')).toEqual({ ok: true, value: { bytes: undefined, from: 'Vector' } });
    expect(new RegExp(SIZE_OR_NONE_PATTERN).test('none')).toBe(true);
  });

  it("takes the lower of the StorageTarget's and the Machine's ceilings", () => {
    expect(replicaQuota([st('1G'), machine('512M')], undefined)).toEqual({ ok: true, value: { bytes: 536_870_912, from: 'Machine' } });
    expect(replicaQuota([st('1G'), machine('2G')], undefined)).toEqual({ ok: true, value: { bytes: 1_073_741_824, from: 'StorageTarget' } });
    expect(replicaQuota([st(undefined), machine('2G')], '3G')).toMatchObject({ ok: false, problem: expect.stringMatching(/ceiling 2G set by Machine store1's spec\.replicaQuota/) });
  });

  it('names the field whose figure is wrong', () => {
    expect(replicaQuota([st('99P')], undefined)).toMatchObject({ ok: false, problem: expect.stringMatching(/^StorageTarget offsite's spec\.replicaQuota: /) });
    expect(replicaQuota([st('1G')], '99P')).toMatchObject({ ok: false, problem: expect.stringMatching(/^spec\.target\.quota: /) });
  });
});
