import { describe, expect, it } from 'vitest';
import { vectorSpec } from '../../api/kinds/vector.ts';
import { describeRate, transportLimits } from '../../planning/transport.ts';

describe('transportLimits', () => {
  it('defaults: a stall after 5 minutes, a run deadline of a day, no bandwidth limit (figures by hand)', () => {
    expect(transportLimits(undefined)).toEqual({ ok: true, value: { stallMs: 300_000, syncMs: 86_400_000, bytesPerSecond: undefined } });
    expect(transportLimits({})).toEqual(transportLimits(undefined));
  });

  it('the code defaults are the schema defaults (a Vector without spec.transport gets the same as one with {})', () => {
    const t = vectorSpec.properties.transport.properties;
    expect(transportLimits({ stallTimeout: t.stallTimeout.default, syncTimeout: t.syncTimeout.default })).toEqual(transportLimits(undefined));
  });

  it('reads the fields as written', () => {
    expect(transportLimits({ stallTimeout: '90s', syncTimeout: '1h30m', bandwidthLimit: '10M' })).toEqual({
      ok: true,
      value: { stallMs: 90_000, syncMs: 5_400_000, bytesPerSecond: 10 * 1024 * 1024 },
    });
    expect(transportLimits({ bandwidthLimit: '512K' })).toMatchObject({ ok: true, value: { bytesPerSecond: 524_288 } });
  });

  it('names every field that is wrong: too short, not a duration, not a rate', () => {
    const r = transportLimits({ stallTimeout: '9s', syncTimeout: '59s', bandwidthLimit: '10MB' });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.problems.map((p) => p.field)).toEqual(['stallTimeout', 'syncTimeout', 'bandwidthLimit']);
    expect(r.problems[0]?.problem).toBe('9s is too short: at least 10s');
    expect(r.problems[1]?.problem).toBe('59s is too short: at least 1m');
    expect(r.problems[2]?.problem).toMatch(/^rate "10MB" is invalid/);
    expect(transportLimits({ stallTimeout: '10s', syncTimeout: '1m' }).ok).toBe(true);
    expect(transportLimits({ syncTimeout: 'soon' })).toMatchObject({ ok: false, problems: [{ field: 'syncTimeout' }] });
  });

  it('describes a rate in the largest whole unit', () => {
    expect(describeRate(10 * 2 ** 20)).toBe('10 MiB/s');
    expect(describeRate(512 * 1024)).toBe('512 KiB/s');
    expect(describeRate(1536 * 1024)).toBe('1536 KiB/s');
    expect(describeRate(1000)).toBe('1000 B/s');
  });
});
