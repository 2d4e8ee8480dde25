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
  it("takes the Vector's figure over the StorageTarget's; none lifts it; neither means no quota", () => {
    expect(replicaQuota(undefined, undefined)).toEqual({ ok: true, value: { bytes: undefined, from: 'none' } });
    expect(replicaQuota('1G', undefined)).toEqual({ ok: true, value: { bytes: 1_073_741_824, from: 'StorageTarget' } });
    expect(replicaQuota('1G', '2M')).toEqual({ ok: true, value: { bytes: 2_097_152, from: 'Vector' } });
    expect(replicaQuota('1G', 'none')).toEqual({ ok: true, value: { bytes: undefined, from: 'Vector' } });
    expect(replicaQuota(undefined, '2M')).toEqual({ ok: true, value: { bytes: 2_097_152, from: 'Vector' } });
    expect(new RegExp(SIZE_OR_NONE_PATTERN).test('none')).toBe(true);
  });

  it('names the field whose figure is wrong', () => {
    expect(replicaQuota('99P', undefined)).toMatchObject({ ok: false, problem: expect.stringMatching(/^the StorageTarget's spec\.replicaQuota: /) });
    expect(replicaQuota('1G', '99P')).toMatchObject({ ok: false, problem: expect.stringMatching(/^spec\.target\.quota: /) });
  });
});
