/** Compose value units: Go durations ("1m30s") to nanoseconds, sizes ("512M") to bytes, CPUs ("0.5") to nano CPUs. */

const DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Nanoseconds of a Go duration string (`10s`, `1m30s`, `1.5h`, `250ms`, `0`); undefined if it is not one. */
export function parseDuration(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let end = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    end = re.lastIndex;
  }
  return end > 0 && end === s.length ? Math.round(total) : undefined;
}

/** Bytes of a size (`512m`, `1G`, `2gb`, `100k`, a plain number): binary multiples, as the docker CLI reads them. */
export function parseBytes(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined;
  const m = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i.exec(value.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[(m[2] ?? '').toLowerCase()]!;
  return Math.round(Number(m[1]) * mult);
}

/** Nano CPUs of a CPU count (`"0.5"`, `2`). */
export function parseCpus(value: string | number): number | undefined {
  const n = typeof value === 'number' ? value : /^\d*\.?\d+$/.test(value.trim()) ? Number(value) : NaN;
  return Number.isFinite(n) && n >= 0 ? Math.round(n * 1e9) : undefined;
}
