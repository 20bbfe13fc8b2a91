/**
 * Pieces every cloud provider shares: the swarm firewall rules a cloud firewall must express, batching, the wait for
 * machines to settle and for SSH to answer, the wait for a torn-down cluster to be gone, the operator's public key,
 * user data from a nunjucks template, and error text that never carries credentials.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';
import pLimit from 'p-limit';
import { ExternalError, HostStepError, SwarmformError, UsageError } from '../../base/errors.js';
import { CancelledError } from '../../run/cancelled.js';
import { isCidr } from '../../inventory/schema.js';
import type { HostSpec, Inventory } from '../../inventory/types.js';
import type { BatchResult, FirewallRule, ProviderContext } from '../provider.js';
import type { Machine } from '../../base/machine.js';

/** Swarm ports a cluster-scoped cloud firewall opens, to the cluster's own members only. */
export const CLOUD_SWARM_RULES: readonly { port: string; protocol: 'tcp' | 'udp' | 'esp'; why: string }[] = [
  { port: '2377', protocol: 'tcp', why: 'cluster management (managers)' },
  { port: '7946', protocol: 'tcp', why: 'node gossip' },
  { port: '7946', protocol: 'udp', why: 'node gossip' },
  { port: '4789', protocol: 'udp', why: 'overlay network traffic (VXLAN)' },
  { port: '-', protocol: 'esp', why: 'encrypted overlay networks (IPsec ESP, IP protocol 50)' },
];

/** The cloud firewall's rules: swarm ports from the members (plus extra CIDRs) and SSH from the operator. */
export function cloudRules(members: string, swarmFrom: string[], sshFrom: string[]): FirewallRule[] {
  const out: FirewallRule[] = [];
  for (const r of CLOUD_SWARM_RULES) {
    out.push({ port: r.port, protocol: r.protocol, from: members, why: r.why });
    for (const c of swarmFrom) out.push({ port: r.port, protocol: r.protocol, from: c, why: `${r.why} (providers setting swarmFrom)` });
  }
  for (const c of sshFrom) out.push({ port: '22', protocol: 'tcp', from: c, why: 'SSH from the operator' });
  return out;
}

/** Formats firewall rules for `plan`. */
export function ruleLines(prefix: string, rules: FirewallRule[]): string[] {
  return rules.map((r) => `${prefix}   allow ${r.protocol === 'esp' ? 'esp (protocol 50)' : `${r.port}/${r.protocol}`} from ${r.from}: ${r.why}`);
}

/** A CIDR check for settings: any IPv4/IPv6 CIDR; `world` false rejects 0.0.0.0/0 and ::/0. */
export function cidrProblem(v: string, world: boolean): string | undefined {
  if (!isCidr(v)) return `"${v}" is not a CIDR like 203.0.113.7/32`;
  if (!world && /\/0$/.test(v)) return `${v} opens the swarm ports to the whole internet; list the networks of the cluster's other hosts instead`;
  return undefined;
}

/** Splits a list into chunks of at most `size`. */
export function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Hosts grouped by inventory group and options, in inventory order: one batch never mixes machine shapes. */
export function shapeGroups(hosts: HostSpec[]): HostSpec[][] {
  const by = new Map<string, HostSpec[]>();
  for (const h of hosts) {
    const key = `${h.group}\0${h.role}\0${JSON.stringify(h.options ?? {})}`;
    const list = by.get(key);
    if (list) list.push(h);
    else by.set(key, [h]);
  }
  return [...by.values()];
}

/** A short stable digest (for idempotency tokens and names). */
export function digest(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 24);
}

/**
 * SSH waits for machines added one by one as the cloud reports them running (64 at once), so a machine's wait starts
 * while others are still booting. A machine that answers is kept in `machines`, reported as the step's `ok` and
 * handed to `ready` at once; `settled` resolves once every one has answered or failed.
 */
export class SshWaits {
  readonly machines: Machine[] = [];
  private readonly limit = pLimit(64);
  private readonly waits: Promise<void>[] = [];

  constructor(
    private readonly ctx: ProviderContext,
    private readonly opts: { step: string; deadline: number; ready?: (m: Machine) => void },
  ) {}

  /** Waits for `m`'s SSH banner until the deadline; `message` describes it in the `ok` event, `broken` gets the reason it never answered. */
  add(m: Machine, message: string, broken: (error: Error) => void): void {
    this.waits.push(
      this.limit(async () => {
        try {
          await waitForSsh(m.ssh.host, m.ssh.port, Math.max(1_000, this.opts.deadline - Date.now()), this.ctx.signal);
        } catch (e) {
          const err = e as Error;
          broken(err instanceof CancelledError ? err : new HostStepError(m.name, this.opts.step, err.message, { cause: e, hint: (err as SwarmformError).hint }));
          return;
        }
        this.machines.push(m);
        this.ctx.events.emit({ type: 'step', phase: 'provision', host: m.name, step: this.opts.step, status: 'ok', message });
        this.opts.ready?.(m);
      }),
    );
  }

  async settled(): Promise<void> {
    await Promise.all(this.waits);
  }
}

/** One host's outcome inside a cloud `create`, before it is reported; `retry`: worth another attempt. */
export type CreateFailure = { host: HostSpec; error: Error; retry: boolean };

/** Reports the hosts that failed for good: each into `result.failed` and as a `fail` event of `step`. */
export function reportFailures(ctx: ProviderContext, result: BatchResult, failures: CreateFailure[], step: string): void {
  for (const f of failures) {
    result.failed.push({ name: f.host.name, error: f.error });
    ctx.events.emit({ type: 'step', phase: 'provision', host: f.host.name, step, status: 'fail', message: f.error.message });
  }
}

/** What one poll says of a machine still starting: up (with the text of its `ok` event), or broken. */
export type SettleVerdict = { machine: Machine; message: string } | { error: Error };

/** How {@link settleMachines} waits for one cloud's machines. */
export interface SettleOptions<T extends { host: HostSpec }> {
  /** The step the hosts' events and errors name (`create instance`, `power on droplet`). */
  step: string;
  /** When to give up on running and SSH together (Date.now() ms; the provider's waitTimeout from its start). */
  deadline: number;
  ready?: (m: Machine) => void;
  /** Pauses between polls: the first, doubling up to the longest; `pauseFirst` pauses before the first poll too. */
  pace: { firstMs: number; longestMs: number; pauseFirst: boolean };
  /** One poll of the machines still starting: a verdict for each that settled; the rest are polled again. */
  poll(waiting: T[]): Promise<Map<T, SettleVerdict>>;
  /** The error of a machine that had not settled by the deadline. */
  late(item: T): Error;
  /** Removes the broken machines (errors ignored), whose hosts are then worth a retry; absent: they are left as they are. */
  remove?(broken: T[]): Promise<void>;
  /** Machines already known broken before the first poll (a failed tag call). */
  broken?: (T & { error: Error })[];
}

/**
 * Waits for freshly created (or started) machines to run, polling the cloud's API, then for each one's SSH as soon as
 * it runs, while the others are still starting; each that answers is handed to `ready`. Machines that broke, or did
 * not come up by the deadline, are removed when `remove` is given and land in `failures`. Returns the machines that
 * came up.
 */
export async function settleMachines<T extends { host: HostSpec }>(
  ctx: ProviderContext,
  items: T[],
  failures: CreateFailure[],
  o: SettleOptions<T>,
): Promise<Machine[]> {
  const { deadline } = o;
  const broken: (T & { error: Error })[] = [...(o.broken ?? [])];
  const ssh = new SshWaits(ctx, { step: o.step, deadline, ready: o.ready });
  const waiting = new Set(items);
  for (let delay = o.pace.firstMs; waiting.size > 0; delay = Math.min(delay * 2, o.pace.longestMs)) {
    if (o.pace.pauseFirst) await sleep(delay, ctx.signal);
    for (const [item, v] of await o.poll([...waiting])) {
      if (!waiting.delete(item)) continue;
      if ('error' in v) broken.push({ ...item, error: v.error });
      else ssh.add(v.machine, v.message, (error) => broken.push({ ...item, error }));
    }
    if (waiting.size === 0) break;
    if (Date.now() + (o.pace.pauseFirst ? 0 : delay) > deadline) {
      for (const item of waiting) broken.push({ ...item, error: o.late(item) });
      break;
    }
    if (!o.pace.pauseFirst) await sleep(delay, ctx.signal);
  }
  await ssh.settled();
  if (broken.length && o.remove) await o.remove(broken).catch(() => undefined);
  for (const b of broken) failures.push({ host: b.host, error: b.error, retry: o.remove !== undefined });
  return ssh.machines;
}

/**
 * Polls until `left()` counts nothing left of a torn-down cluster (500 ms doubling to 5 s); after `timeoutS` throws
 * an ExternalError saying `what(count)`, with the hint to run `down` again.
 */
export async function waitUntilGone(left: () => Promise<number>, timeoutS: number, what: (count: number) => string, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutS * 1000;
  for (let delay = 500; ; delay = Math.min(delay * 2, 5_000)) {
    const count = await left();
    if (count === 0) return;
    if (Date.now() > deadline) throw new ExternalError(what(count), { hint: 'run `swarmform down` again once the cloud has caught up' });
    await sleep(delay, signal);
  }
}

/** Resolves once `host:port` answers with an SSH banner, or throws after `timeoutMs`. */
export async function waitForSsh(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (let delay = 250; ; delay = Math.min(delay * 2, 5_000)) {
    if (signal?.aborted) throw new CancelledError('cancelled while waiting for SSH', { cause: signal.reason });
    const r = await sshBanner(host, port, Math.min(10_000, Math.max(1_000, deadline - Date.now())));
    if (r === true) return;
    last = r;
    if (Date.now() + delay > deadline) {
      throw new ExternalError(`SSH on ${host}:${port} did not answer within ${Math.round(timeoutMs / 1000)} s (${last})`, {
        hint: "check that the machine's image runs sshd on that port and that its firewall admits SSH from this machine (providers setting sshFrom)",
      });
    }
    await new Promise((res) => setTimeout(res, delay));
  }
}

/** True when the peer sends an `SSH-` banner; otherwise the reason. */
function sshBanner(host: string, port: number, timeoutMs: number): Promise<true | string> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let buf = '';
    const done = (v: true | string) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done('timed out'), timeoutMs);
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.startsWith('SSH-')) done(true);
      else if (buf.length >= 4) done(`not an SSH server (${JSON.stringify(buf.slice(0, 20))})`);
    });
    sock.on('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
    sock.on('close', () => done('connection closed'));
  });
}

/** The operator's public key for a host: `<ssh.key>.pub`, else ~/.ssh/id_ed25519.pub or id_rsa.pub. */
export async function operatorPublicKey(inventory: Inventory, hosts: HostSpec[], setting: string): Promise<{ key: string; file: string }> {
  const keyPath = hosts.find((h) => h.ssh.key)?.ssh.key;
  const home = process.env.HOME ?? '/root';
  const candidates = keyPath ? [`${keyPath}.pub`] : [path.join(home, '.ssh/id_ed25519.pub'), path.join(home, '.ssh/id_rsa.pub')];
  for (const file of candidates) {
    try {
      const key = (await fs.readFile(file, 'utf8')).trim();
      if (key) return { key, file };
    } catch {
      // try the next one
    }
  }
  throw new UsageError(`${setting}: no public key to upload for cluster ${inventory.cluster}: none of ${candidates.join(', ')} exists`, {
    hint: `set ssh.key in ${inventory.file} to a private key whose .pub sits next to it, or name an existing key`,
  });
}

/** OpenSSH MD5 fingerprint (aa:bb:...) of a public key line, as DigitalOcean shows it. */
export function md5Fingerprint(publicKey: string): string {
  const blob = Buffer.from(publicKey.trim().split(/\s+/)[1] ?? '', 'base64');
  return createHash('md5').update(blob).digest('hex').match(/../g)!.join(':');
}

const TEMPLATES = fileURLToPath(new URL('../../../templates/', import.meta.url));

/** Renders cloud-init user data: a path relative to the inventory, or a name under templates/cloud-init. */
export async function renderUserData(ref: string, inventory: Inventory, vars: Record<string, unknown>): Promise<string> {
  const local = path.resolve(path.dirname(inventory.file), ref);
  const shipped = path.join(TEMPLATES, 'cloud-init', ref.endsWith('.njk') ? ref : `${ref}.yml.njk`);
  let source: string | undefined;
  for (const file of [local, shipped]) {
    try {
      source = await fs.readFile(file, 'utf8');
      break;
    } catch {
      // next
    }
  }
  if (source === undefined) throw new UsageError(`userData: template ${ref} not found (looked at ${local} and ${shipped})`);
  const env = new nunjucks.Environment(null, { autoescape: false, throwOnUndefined: true });
  return env.renderString(source, { cluster: inventory.cluster, ...vars });
}

/**
 * An error's text for reports: the provider's own code and message, nothing else (no request, no headers). An error
 * of swarmform's own (usage, cancelled, a timeout with its hint) is passed on as it is.
 */
export function cleanError(e: unknown, what: string): Error {
  if (e instanceof SwarmformError) return e;
  const x = e as { name?: string; Code?: string; code?: string; message?: string; $metadata?: { attempts?: number } };
  const code = x?.Code ?? (x?.name && x.name !== 'Error' ? x.name : undefined) ?? x?.code;
  const attempts = x?.$metadata?.attempts && x.$metadata.attempts > 1 ? ` (after ${x.$metadata.attempts} attempts)` : '';
  const err = new ExternalError(`${what}: ${code ? `${code}: ` : ''}${x?.message ?? String(e)}${attempts}`);
  (err as Error & { code?: string }).code = code;
  return err;
}

/**
 * Guard for test runs: with SWARMFORM_LOOPBACK_ONLY=1 a cloud client refuses any API endpoint that is not on
 * loopback, so a test that forgot its stub fails instead of calling a real cloud.
 */
export function checkEndpoint(provider: string, endpoint: string | undefined): void {
  if (process.env.SWARMFORM_LOOPBACK_ONLY !== '1') return;
  const host = endpoint ? new URL(endpoint).hostname.replace(/^\[|\]$/g, '') : '';
  if (!/^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(host)) {
    throw new UsageError(`${provider}: SWARMFORM_LOOPBACK_ONLY is set and the API endpoint ${endpoint ?? '(the real cloud)'} is not on loopback`, {
      hint: `set providers.${provider}.endpoint to the test's stub`,
    });
  }
}

/** Sleeps, unless aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CancelledError('cancelled', { cause: signal.reason }));
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      reject(new CancelledError('cancelled', { cause: signal.reason }));
    }, { once: true });
  });
}
