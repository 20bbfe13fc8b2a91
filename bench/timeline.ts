/**
 * A join timeline picture from `--json` events: one line per host, from the moment its SSH connection was up to the
 * moment it joined the swarm (its Ready follows within the swarm phase's final wait), coloured by phase. Hand-written
 * SVG, no library.
 *
 *   node --import tsx bench/timeline.ts EVENTS.jsonl OUT.svg [title]
 */
import { readFileSync, writeFileSync } from 'node:fs';

interface StepEvent {
  type: string;
  phase?: string;
  host?: string;
  step?: string;
  status?: string;
  ts?: number;
  ms?: number;
  message?: string;
}

/** One coloured stretch of a host's line. */
interface Segment {
  label: string;
  from: number;
  to: number;
}

const COLOURS: Record<string, string> = {
  'wait ssh': '#d0d0d0',
  bootstrap: '#7fa7d9',
  'install engine': '#3b6fb6',
  'start engine': '#5fb3a8',
  firewall: '#a8d5a2',
  images: '#c9a0dc',
  'wait join slot': '#f2d28b',
  init: '#8b1a1a',
  'join manager': '#d9534f',
  'join worker': '#e8833a',
  failed: '#000000',
};

/** Reads events and returns per-host segments, in order of the host's first event. */
export function segmentsOf(events: StepEvent[]): { hosts: string[]; segments: Map<string, Segment[]>; t0: number; t1: number } {
  const steps = events.filter((e) => e.type === 'step' && e.host && typeof e.ts === 'number');
  const byHost = new Map<string, StepEvent[]>();
  for (const e of steps) {
    const list = byHost.get(e.host!) ?? [];
    list.push(e);
    byHost.set(e.host!, list);
  }
  const segments = new Map<string, Segment[]>();
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const [host, list] of byHost) {
    const segs: Segment[] = [];
    const at = (phase: string, step: string | undefined, status: string): StepEvent | undefined =>
      list.find((e) => e.phase === phase && (step === undefined || e.step === step) && e.status === status);
    const last = (phase: string, step?: string): StepEvent | undefined =>
      [...list].reverse().find((e) => e.phase === phase && (step === undefined || e.step === step) && e.status !== 'start');
    const created = last('provision', 'create host');
    const bootStart = at('bootstrap', undefined, 'start');
    const installStart = at('bootstrap', 'install engine', 'start');
    const installEnd = last('bootstrap', 'install engine');
    const engineStart = at('bootstrap', 'start engine', 'start');
    const engineEnd = last('bootstrap', 'start engine');
    const bootEnd = last('bootstrap');
    const imgStart = at('images', undefined, 'start');
    const imgEnd = last('images');
    const joinStep = list.some((e) => e.step === 'init') ? 'init' : list.some((e) => e.step === 'join manager') ? 'join manager' : 'join worker';
    const joinStart = at('swarm', joinStep, 'start');
    const joinEnd = last('swarm', joinStep);
    // SSH-ready is the first bootstrap event (the connection is open by then); before that the host was booting.
    const from = bootStart?.ts ?? joinStart?.ts;
    if (from === undefined) continue;
    if (created?.ts !== undefined && created.ts < from) segs.push({ label: 'wait ssh', from: created.ts, to: from });
    if (bootStart && installStart) segs.push({ label: 'bootstrap', from: bootStart.ts!, to: installStart.ts! });
    if (installStart && installEnd) segs.push({ label: 'install engine', from: installStart.ts!, to: installEnd.ts! });
    if (installEnd && engineStart) segs.push({ label: 'bootstrap', from: installEnd.ts!, to: engineStart.ts! });
    if (engineStart && engineEnd) segs.push({ label: 'start engine', from: engineStart.ts!, to: engineEnd.ts! });
    // The firewall, and for a host bootstrapped while machines were still being created, the wait for the last one.
    if (engineEnd && bootEnd && bootEnd.ts! > engineEnd.ts!) segs.push({ label: 'firewall', from: engineEnd.ts!, to: bootEnd.ts! });
    if (imgStart && imgEnd) segs.push({ label: 'images', from: imgStart.ts!, to: imgEnd.ts! });
    const readyToJoin = imgEnd?.ts ?? bootEnd?.ts;
    if (joinStart && readyToJoin !== undefined && joinStart.ts! > readyToJoin) segs.push({ label: 'wait join slot', from: readyToJoin, to: joinStart.ts! });
    // A retried join shows as one stretch from its first start to its final outcome.
    if (joinStart && joinEnd) segs.push({ label: joinEnd.status === 'fail' ? 'failed' : joinStep, from: joinStart.ts!, to: joinEnd.ts! });
    for (const s of segs) {
      t0 = Math.min(t0, s.from);
      t1 = Math.max(t1, s.to);
    }
    segments.set(host, segs);
  }
  const hosts = [...segments.keys()].sort((a, b) => (segments.get(a)![0]?.from ?? 0) - (segments.get(b)![0]?.from ?? 0));
  return { hosts, segments, t0, t1 };
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Renders the segments as SVG text. */
export function timelineSvg(events: StepEvent[], title: string): string {
  const { hosts, segments, t0, t1 } = segmentsOf(events);
  const rowH = hosts.length > 80 ? 4 : hosts.length > 40 ? 7 : 12;
  const left = 90;
  const top = 40;
  const width = 1000;
  const spanS = Math.max(1, (t1 - t0) / 1000);
  const x = (t: number) => left + ((t - t0) / 1000 / spanS) * width;
  const height = top + hosts.length * rowH + 60;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 20}" height="${height}" font-family="sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${left}" y="16" font-size="13" font-weight="bold">${esc(title)}</text>`);
  // Time axis: a tick every 5, 10 or 30 s.
  const tick = spanS > 300 ? 30 : spanS > 100 ? 10 : 5;
  for (let s = 0; s <= spanS; s += tick) {
    const xx = left + (s / spanS) * width;
    out.push(`<line x1="${xx.toFixed(1)}" y1="${top - 4}" x2="${xx.toFixed(1)}" y2="${top + hosts.length * rowH}" stroke="#eee"/>`);
    out.push(`<text x="${xx.toFixed(1)}" y="${top - 8}" text-anchor="middle" fill="#555">${s} s</text>`);
  }
  hosts.forEach((h, i) => {
    const y = top + i * rowH;
    if (rowH >= 7) out.push(`<text x="${left - 4}" y="${y + rowH - 1}" text-anchor="end" font-size="${Math.min(10, rowH)}">${esc(h)}</text>`);
    for (const s of segments.get(h)!) {
      const w = Math.max(0.5, x(s.to) - x(s.from));
      out.push(`<rect x="${x(s.from).toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${Math.max(1, rowH - 1)}" fill="${COLOURS[s.label] ?? '#999'}"><title>${esc(`${h} ${s.label} ${((s.to - s.from) / 1000).toFixed(1)} s`)}</title></rect>`);
    }
  });
  const ly = top + hosts.length * rowH + 20;
  let lx = left;
  for (const [label, colour] of Object.entries(COLOURS)) {
    out.push(`<rect x="${lx}" y="${ly}" width="12" height="10" fill="${colour}"/><text x="${lx + 16}" y="${ly + 9}">${esc(label)}</text>`);
    lx += 30 + label.length * 6.5;
  }
  out.push(`<text x="${left}" y="${ly + 28}" fill="#555">${hosts.length} hosts, ${spanS.toFixed(1)} s from the first host created to the last join (wait ssh: created, sshd not yet answering bootstrap)</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Parses a --json events file (one JSON object per line; other lines ignored). */
export function readEvents(file: string): StepEvent[] {
  const out: StepEvent[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as StepEvent);
    } catch {
      // not an event line
    }
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [input, output, title] = process.argv.slice(2);
  if (!input || !output) {
    console.error('usage: node --import tsx bench/timeline.ts EVENTS.jsonl OUT.svg [title]');
    process.exit(2);
  }
  writeFileSync(output, timelineSvg(readEvents(input), title ?? input));
  console.log(`wrote ${output}`);
}
