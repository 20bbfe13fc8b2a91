/**
 * The end-of-run failure summary: failed hosts grouped by cause, so 2,000 identical "connection refused" lines
 * become one: `3 hosts: ssh: connection refused (worker-1, worker-7, worker-9)`.
 */
import type { Phase, SwarmformEvent } from '../../base/events.js';
import { redact } from '../../state/redact.js';
import { bareMessage, plural } from './format.js';

export interface FailureGroup {
  /** What failed, e.g. `ssh: connection refused`: the message itself when every host had the same, else normalised. */
  cause: string;
  /** Hosts in natural order. */
  hosts: string[];
  phase: Phase;
  step: string;
}

/** Groups the `fail` step events by step and normalised message; largest groups first. O(N). */
export function summary(events: Iterable<SwarmformEvent>): FailureGroup[] {
  const groups = new Map<string, { phase: Phase; step: string; normalised: string; first: string; same: boolean; hosts: Set<string> }>();
  // A host counts once per phase, under its first failure: the step that failed (`install engine`) fails before the
  // step wrapping it (`bootstrap`, whose message repeats the inner one), and both would otherwise be listed.
  const counted = new Set<string>();
  for (const e of events) {
    if (e.type !== 'step' || e.status !== 'fail') continue;
    const once = `${e.phase}\u0000${e.host}`;
    if (counted.has(once)) continue;
    counted.add(once);
    const message = oneLine(bareMessage(redact(e.message ?? 'failed'), e.host, e.step)) || 'failed';
    const normalised = normaliseCause(message, e.host);
    const key = `${e.step}\u0000${normalised}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { phase: e.phase, step: e.step, normalised, first: message, same: true, hosts: new Set() }));
    else if (g.same && message !== g.first) g.same = false;
    g.hosts.add(e.host);
  }
  return [...groups.values()]
    .map((g) => {
      const text = g.same ? g.first : g.normalised;
      return {
        cause: text.startsWith(`${g.step}:`) || !g.step ? text : `${g.step}: ${text}`,
        hosts: [...g.hosts].sort(naturalOrder),
        phase: g.phase,
        step: g.step,
      };
    })
    .sort((a, b) => b.hosts.length - a.hosts.length || a.cause.localeCompare(b.cause));
}

/** A multi-line message (a command's stderr tail) as one line: lines joined with ` | `, cut at 240 characters. */
function oneLine(message: string): string {
  const joined = message.split('\n').map((l) => l.trim()).filter(Boolean).join(' | ');
  return joined.length > 240 ? `${joined.slice(0, 239)}…` : joined;
}

/** One line per group, hosts listed up to `maxHosts`: `3 hosts: ssh: connection refused (worker-1, worker-7, worker-9)`. */
export function formatSummary(groups: readonly FailureGroup[], opts: { maxHosts?: number; maxGroups?: number } = {}): string[] {
  const maxHosts = opts.maxHosts ?? 8;
  const maxGroups = opts.maxGroups ?? 20;
  const lines = groups.slice(0, maxGroups).map((g) => {
    const shown = g.hosts.slice(0, maxHosts).join(', ');
    const more = g.hosts.length > maxHosts ? `, +${g.hosts.length - maxHosts} more` : '';
    return redact(`${plural(g.hosts.length, 'host')}: ${g.cause} (${shown}${more})`);
  });
  if (groups.length > maxGroups) {
    const rest = groups.slice(maxGroups).reduce((n, g) => n + g.hosts.length, 0);
    lines.push(`${plural(rest, 'more host')} in ${plural(groups.length - maxGroups, 'other cause')}`);
  }
  return lines;
}

/** The message with what differs between hosts (the host's name, addresses, ids, numbers) replaced by placeholders. */
export function normaliseCause(message: string, host?: string): string {
  let m = message;
  if (host) m = m.split(host).join('<host>');
  return m
    .replace(/\[?\b[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\b\]?(?::\d+)?/gi, (s) => (/\d/.test(s) && /:.*:/.test(s) ? '<addr>' : s))
    .replace(/\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b/g, '<addr>')
    .replace(/\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{12,}\b/gi, '<id>')
    .replace(/(?<![A-Za-z_<])\d+(?:\.\d+)*/g, 'N');
}

/** One collator for every sort: `localeCompare` with options builds one per call (0.8 s for 4,700 names). */
const collator = new Intl.Collator(undefined, { numeric: true });

function naturalOrder(a: string, b: string): number {
  return collator.compare(a, b);
}
