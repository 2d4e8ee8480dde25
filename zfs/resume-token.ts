/**
 * What an interrupted resumable receive was bringing, read from `zfs send -nvt <token>`: OpenZFS prints the
 * token's nvlist ("resume token contents:", "nvlist version: 0", then one tab-indented `name = value` line per
 * field, uint64 values in hex). The planner continues a stream only when `toguid` (and `fromguid` for an
 * incremental) match a step exactly, so anything unexpected here yields undefined and the partial state is
 * discarded instead (`receive -A`), never guessed at.
 */
export interface ResumeTokenContents {
  /** Decimal, as the planner compares guids. */
  toGuid: string;
  /** Absent for a full stream (OpenZFS leaves `fromguid` out, or 0). */
  fromGuid?: string;
  toName: string;
}

export function parseResumeTokenContents(output: string): ResumeTokenContents | undefined {
  if (!/resume token contents:\r?\nnvlist version: 0/.test(output)) return undefined;
  const fields = new Map<string, string>();
  for (const line of output.split('\n')) {
    const m = /^\t(\w+) = (.*)$/.exec(line.replace(/\r$/, ''));
    if (m && !fields.has(m[1] as string)) fields.set(m[1] as string, (m[2] as string).trim());
  }
  const toGuid = guid(fields.get('toguid'));
  const toName = fields.get('toname');
  if (toGuid === undefined || toGuid === '0' || !toName) return undefined;
  const from = fields.get('fromguid');
  const fromGuid = from === undefined ? undefined : guid(from);
  if (from !== undefined && fromGuid === undefined) return undefined;
  return { toGuid, toName, ...(fromGuid !== undefined && fromGuid !== '0' ? { fromGuid } : {}) };
}

function guid(value: string | undefined): string | undefined {
  if (value === undefined || !/^(0x[0-9a-f]{1,16}|\d{1,20})$/i.test(value)) return undefined;
  const n = BigInt(value);
  return n < 2n ** 64n ? n.toString(10) : undefined;
}
