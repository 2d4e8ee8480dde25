import { describe, expect, it } from 'vitest';
import { containerVerdict, replicaDestroyPlan, type OwnedFileSystem } from '../../planning/replica-ownership.ts';

const UID = '0b1c';
const TAG = 'bdr:vector:ns:v';
const mine = { value: `vector/${UID}`, source: 'local' };
const received = { value: TAG, source: 'local' };

describe('containerVerdict', () => {
  const base = { dataset: 'vault/ns/v', uid: UID, adoptAnnotation: undefined, madeBefore: false };
  it('creates a missing dataset and uses one carrying this vector’s mark', () => {
    expect(containerVerdict({ ...base, found: undefined })).toEqual({ kind: 'create' });
    expect(containerVerdict({ ...base, found: { name: 'vault/ns/v', owner: mine } })).toEqual({ kind: 'owned' });
  });
  it('refuses an unmarked dataset, a received or inherited mark, and another object’s mark', () => {
    for (const owner of [{ value: '-', source: '-' }, { value: `vector/${UID}`, source: 'received' }, { value: `vector/${UID}`, source: 'inherited from vault/ns' }]) {
      expect(containerVerdict({ ...base, found: { name: 'vault/ns/v', owner } }).kind).toBe('refuse');
    }
    expect(containerVerdict({ ...base, found: { name: 'vault/ns/v', owner: { value: 'vector/other', source: 'local' } } })).toEqual({
      kind: 'refuse',
      message: 'vault/ns/v belongs to another object (dev.bdr:replica-of=vector/other); give this vector its own target dataset',
    });
  });
  it('adopts an unmarked dataset only by the exact annotation, or one its own status records', () => {
    const unmarked = { name: 'vault/ns/v', owner: { value: '-', source: '-' } };
    expect(containerVerdict({ ...base, found: unmarked, adoptAnnotation: 'vault/ns/v' }).kind).toBe('adopt');
    expect(containerVerdict({ ...base, found: unmarked, adoptAnnotation: 'vault/ns' }).kind).toBe('refuse');
    expect(containerVerdict({ ...base, found: unmarked, madeBefore: true }).kind).toBe('adopt');
    // Another object's mark is never adopted away.
    expect(containerVerdict({ ...base, found: { name: 'vault/ns/v', owner: { value: 'vector/x', source: 'local' } }, adoptAnnotation: 'vault/ns/v' }).kind).toBe('refuse');
  });
});

describe('replicaDestroyPlan', () => {
  const fs = (name: string, extra: Partial<OwnedFileSystem> = {}): OwnedFileSystem => ({ name, ...extra });
  it('destroys the whole dataset when all of it is the vector’s', () => {
    const listing = [fs('p', { owner: mine }), fs('p/data', { received }), fs('p/data/c', { received })];
    expect(replicaDestroyPlan('p', UID, TAG, listing)).toEqual({ destroy: ['p'], kept: [] });
  });
  it('keeps a foreign file system and everything above it; destroys the clean subtrees beside it', () => {
    const listing = [
      fs('p', { owner: mine }),
      fs('p/data', { received }),
      fs('p/data/c', { received }),
      fs('p/x', { received }),
      fs('p/x/hand'),
      fs('p/x/ok', { received }),
      fs('p/forged', { received: { value: 'bdr:vector:other:v', source: 'local' } }),
      fs('p/streamed', { received: { value: TAG, source: 'received' } }),
    ];
    expect(replicaDestroyPlan('p', UID, TAG, listing)).toEqual({
      destroy: ['p/data', 'p/x/ok'],
      kept: ['p', 'p/forged', 'p/streamed', 'p/x', 'p/x/hand'],
    });
  });
  it('destroys nothing of a dataset without this vector’s mark', () => {
    const listing = [fs('p', { owner: { value: 'vector/other', source: 'local' } }), fs('p/data', { received })];
    expect(replicaDestroyPlan('p', UID, TAG, listing)).toMatchObject({ destroy: [], kept: ['p'] });
    expect(replicaDestroyPlan('p', UID, TAG, [])).toEqual({ destroy: [], kept: [] });
  });
});
