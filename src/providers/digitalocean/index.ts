/**
 * The `digitalocean` provider: droplets created up to 10 names per request, tagged with the cluster, a cloud
 * firewall attached by tag with the swarm ports open to the cluster's own droplets only, the operator's SSH key
 * uploaded when no fingerprint is given. Discovery and teardown go by tag, so they work without local state.
 */
import pLimit from 'p-limit';
import type { Droplet, Firewall, FirewallInboundRule, FirewallOutboundRule, SshKey } from 'digitalocean-js';
import { HostStepError, UsageError } from '../../base/errors.js';
import type { HostSpec, Inventory } from '../../inventory/types.js';
import type { BatchResult, Provider, ProviderArtifacts, ProviderContext, ProviderInfo } from '../provider.js';
import type { Machine } from '../../base/machine.js';
import { inventorySsh } from '../ssh/index.js';
import {
  chunk,
  cloudRules,
  type CreateFailure,
  md5Fingerprint,
  operatorPublicKey,
  renderUserData,
  reportFailures,
  ruleLines,
  settleMachines,
  type SettleVerdict,
  shapeGroups,
  waitUntilGone,
} from '../cloud/common.js';
import { type DoStats, doClient, doToken } from './client.js';
import { type DoSettings, doOptionsSchema, doSettings, doSettingsSchema, doShape, doTags } from './settings.js';

type Client = ReturnType<typeof doClient>;

interface Env {
  s: DoSettings;
  c: Client;
  keyFingerprint?: string;
  firewallReady?: boolean;
}

type Failure = CreateFailure;

/** Droplet-limit answers: later batches would fail the same way, so they are reported at once. */
function isLimit(e: Error): boolean {
  return /droplet limit|exceed your droplet/i.test(e.message);
}

/** The digitalocean provider. */
export class DigitalOceanProvider implements Provider {
  readonly name = 'digitalocean';
  readonly schemas = { settings: doSettingsSchema, options: doOptionsSchema };
  private envs = new WeakMap<ProviderContext, Env>();

  info(): ProviderInfo {
    return { name: 'digitalocean', batchSize: 10, concurrency: 2, userData: true, defaultInstall: 'packages', ownsMachines: true, needsRoot: false, ingressMesh: true };
  }

  validate(hosts: HostSpec[], ctx: ProviderContext): void {
    doSettings(ctx.inventory);
    for (const h of hosts) {
      if (!/^[A-Za-z0-9.-]{1,253}$/.test(h.name)) throw new UsageError(`${h.name} (group ${h.group}): droplet names may only use letters, digits, "." and "-"`);
    }
  }

  async preflight(): Promise<void> {
    doToken();
  }

  plan(hosts: HostSpec[], ctx: ProviderContext): string[] {
    const s = doSettings(ctx.inventory);
    const t = doTags(ctx.inventory.cluster);
    const p = doCallPlan(hosts, s);
    const out = [
      `digitalocean: ${hosts.length} droplet(s) in ${s.region}${s.endpoint ? ` (endpoint ${s.endpoint})` : ''}: ${p.creates} create request(s) of up to ${s.batchSize} names, ${s.concurrency} in flight`,
      ...p.groups.map((g) => `digitalocean:   ${g.group} (${g.role}): ${g.hosts} x ${g.size} from ${g.image}: ${g.batches} request(s)`),
      `digitalocean: API calls for a fresh cluster: ${p.setup} setup (SSH key, firewall), ${p.creates} POST /droplets, ${p.pages}+ GET /droplets pages per poll (200 droplets a page): at least ${p.total}; ` +
        `429s and RateLimit-Remaining are honoured (5,000 requests an hour, 250 a minute)`,
      `digitalocean: cloud firewall swarmform-${ctx.inventory.cluster} attached by tag ${t.cluster}:`,
      ...ruleLines('digitalocean:', cloudRules(`droplets tagged ${t.cluster}`, s.swarmFrom, s.sshFrom).filter((r) => r.protocol !== 'esp')),
      'digitalocean:   outbound: everything (DigitalOcean firewalls drop outbound traffic that no rule allows)',
      'digitalocean:   note: cloud firewalls cannot allow ESP (IP protocol 50): encrypted overlay networks (--opt encrypted) do not pass between droplets',
      `digitalocean: SSH over ${s.sshVia} addresses; the swarm advertises ${ctx.inventory.swarm.advertise.kind === 'cidr' ? `addresses in ${(ctx.inventory.swarm.advertise as { cidr: string }).cidr}` : ctx.inventory.swarm.advertise.kind === 'public' ? 'public addresses' : 'VPC (private) addresses'}`,
    ];
    return out;
  }

  async artifacts(): Promise<ProviderArtifacts> {
    return {};
  }

  private env(ctx: ProviderContext): Env {
    let env = this.envs.get(ctx);
    if (!env) {
      const s = doSettings(ctx.inventory);
      env = { s, c: doClient(s) };
      this.envs.set(ctx, env);
    }
    return env;
  }

  /** Request counts of this process's client (tests and reports). */
  stats(ctx: ProviderContext): DoStats {
    return this.env(ctx).c.stats;
  }

  async network(ctx: ProviderContext): Promise<void> {
    const env = this.env(ctx);
    if (env.firewallReady && env.keyFingerprint) return;
    const { s, c } = env;
    const cluster = ctx.inventory.cluster;
    const t = doTags(cluster);
    // SSH key: the given fingerprint, else the operator's key (uploaded once, found again by fingerprint).
    if (s.sshKey) env.keyFingerprint = s.sshKey;
    else {
      const { key } = await operatorPublicKey(ctx.inventory, doHosts(ctx.inventory), 'providers.digitalocean.sshKey');
      const fp = md5Fingerprint(key);
      const keys = await c.list<SshKey>('/account/keys', 'ssh_keys');
      if (!keys.some((k) => k.fingerprint === fp)) await c.api.ssh.createNewKey({ name: `swarmform-${cluster}`, public_key: key });
      env.keyFingerprint = fp;
    }
    // Firewall by tag: created, or its rules brought back to what they should be.
    const want = firewallSpec(cluster, s);
    const existing = (await c.list<Firewall>('/firewalls', 'firewalls')).find((f) => f.name === want.name);
    if (!existing) await c.api.firewalls.createFirewall(want as Firewall);
    else if (JSON.stringify(normalRules(existing)) !== JSON.stringify(normalRules(want as Firewall)) || !existing.tags?.includes(t.cluster)) {
      await c.api.firewalls.updateFirewall({ ...(want as Firewall), id: existing.id });
    }
    env.firewallReady = true;
  }

  async create(hosts: HostSpec[], ctx: ProviderContext, ready?: (machine: Machine) => void): Promise<BatchResult> {
    const env = this.env(ctx);
    await this.network(ctx);
    const { s, c } = env;
    const cluster = ctx.inventory.cluster;
    const t = doTags(cluster);
    const result: BatchResult = { done: [], failed: [] };
    // A host whose droplet is powered off gets that droplet powered on, not a second one (its disk may hold data).
    const wanted = new Set(hosts.map((h) => h.name));
    const found = await this.droplets(env, cluster);
    const off = found.filter((d) => wanted.has(d.name) && d.status === 'off');
    const present = new Set(found.map((d) => d.name));
    let pending = hosts.filter((h) => !present.has(h.name));
    if (off.length) result.done.push(...(await this.powerOn(env, ctx, hosts, off, result, ready)));
    const finalFailures: Failure[] = [];
    let limitHit: Error | undefined;
    for (let attempt = 1; attempt <= s.retries + 1 && pending.length > 0; attempt++) {
      for (const h of pending) ctx.events.emit({ type: 'step', phase: 'provision', host: h.name, step: 'create droplet', status: attempt === 1 ? 'start' : 'retry', attempt });
      const failures: Failure[] = [];
      const created: { host: HostSpec; id: number }[] = [];
      const limit = pLimit(s.concurrency);
      const batches = shapeGroups(pending).flatMap((g) => chunk(g, s.batchSize));
      await Promise.all(
        batches.map((batch) =>
          limit(async () => {
            if (limitHit) {
              for (const host of batch) failures.push({ host, error: limitHit, retry: false });
              return;
            }
            const first = batch[0]!;
            const shape = doShape(s, first);
            const userData = shape.userData ? await renderUserData(shape.userData, ctx.inventory, { group: first.group, role: first.role, hosts: batch.map((h) => h.name) }) : undefined;
            const before = c.stats.rateLimited;
            try {
              const droplets = await c.api.droplets.createMultipleDroplets({
                names: batch.map((h) => h.name),
                region: s.region,
                size: shape.size,
                image: shape.image,
                ssh_keys: [env.keyFingerprint],
                tags: [t.cluster, t.role(first.role), t.group(first.group), ...shape.tags],
                ...(s.vpc ? { vpc_uuid: s.vpc } : {}),
                ...(userData ? { user_data: userData } : {}),
                monitoring: false,
              } as never);
              const byName = new Map(batch.map((h) => [h.name, h]));
              for (const d of droplets ?? []) {
                const host = byName.get(d.name);
                if (host) created.push({ host, id: d.id });
                byName.delete(d.name);
              }
              for (const host of byName.values()) failures.push({ host, error: new HostStepError(host.name, 'create droplet', 'the API did not return this droplet'), retry: true });
            } catch (e) {
              const error = e as Error;
              if (isLimit(error)) {
                limitHit = error;
                ctx.events.warn(`digitalocean: ${error.message}; the remaining droplets are reported as failed`);
              }
              for (const host of batch) failures.push({ host, error, retry: !isLimit(error) });
            }
            const throttled = c.stats.rateLimited - before;
            if (throttled > 0) ctx.events.warn(`digitalocean: create ${first.name}..${batch[batch.length - 1]!.name} met ${throttled} rate-limit answer(s) (429) while in flight; waited as the API asked`);
          }),
        ),
      );
      // A create that failed without an answer may still have made droplets: look before trying again (no duplicates).
      if (failures.some((f) => f.retry)) {
        const now = new Map((await this.droplets(env, cluster)).map((d) => [d.name, d]));
        for (const f of failures.splice(0)) {
          const d = now.get(f.host.name);
          if (d && !created.some((x) => x.host === f.host)) created.push({ host: f.host, id: d.id });
          else failures.push(f);
        }
      }
      result.done.push(...(await this.settle(env, ctx, created, failures, ready)));
      pending = [];
      for (const f of failures) {
        if (f.retry && attempt <= s.retries) pending.push(f.host);
        else finalFailures.push(f);
      }
    }
    reportFailures(ctx, result, finalFailures, 'create droplet');
    return result;
  }

  /**
   * Powers on the wanted hosts' droplets that are off (`power_on` actions, `concurrency` at once) and waits for them
   * as for new ones. One that does not come up is reported failed and left as it is (never deleted: it is the
   * user's machine, with its disk).
   */
  private async powerOn(env: Env, ctx: ProviderContext, hosts: HostSpec[], off: Droplet[], result: BatchResult, ready?: (m: Machine) => void): Promise<Machine[]> {
    const byName = new Map(hosts.map((h) => [h.name, h]));
    const failures: Failure[] = [];
    const asked: { host: HostSpec; id: number }[] = [];
    const limit = pLimit(env.s.concurrency);
    await Promise.all(
      off.map((d) =>
        limit(async () => {
          const host = byName.get(d.name)!;
          ctx.events.emit({ type: 'step', phase: 'provision', host: host.name, step: 'power on droplet', status: 'start' });
          try {
            await env.c.api.dropletActions.powerOnDroplet(d.id!);
            asked.push({ host, id: d.id! });
          } catch (e) {
            failures.push({ host, error: e as Error, retry: false });
          }
        }),
      ),
    );
    const machines = await this.settle(env, ctx, asked, failures, ready, { step: 'power on droplet', deleteBroken: false });
    reportFailures(ctx, result, failures, 'power on droplet');
    return machines;
  }

  /** Waits for droplets to be active with addresses, then for SSH (each handed to `ready` as it answers); broken ones are deleted and retried. */
  private async settle(
    env: Env,
    ctx: ProviderContext,
    created: { host: HostSpec; id: number }[],
    failures: Failure[],
    ready: ((m: Machine) => void) | undefined,
    opts: { step: string; deleteBroken: boolean } = { step: 'create droplet', deleteBroken: true },
  ): Promise<Machine[]> {
    const { s, c } = env;
    // SSH is waited for on each droplet as soon as it is active, while the others are still starting.
    return settleMachines(ctx, created, failures, {
      step: opts.step,
      deadline: Date.now() + s.waitTimeout * 1000,
      ready,
      pace: { firstMs: 1000, longestMs: 2000, pauseFirst: true },
      poll: async (waiting) => {
        const verdicts = new Map<{ host: HostSpec; id: number }, SettleVerdict>();
        const all = new Map((await this.droplets(env, ctx.inventory.cluster)).map((d) => [d.id, d]));
        for (const x of waiting) {
          const d = all.get(x.id);
          const broken = (what: string) =>
            verdicts.set(x, { error: new HostStepError(x.host.name, opts.step, `droplet ${x.id} ${what}`, { hint: 'look at the droplet in the DigitalOcean control panel, or run `up` again' }) });
          if (!d) broken('disappeared while starting');
          else if (d.status === 'active' && d.networks?.v4?.length) {
            const m = toMachine(d, x.host, s, ctx.inventory);
            verdicts.set(x, { machine: m, message: `droplet ${d.id} at ${m.privateAddress}` });
          } else if (d.status === 'errored' || d.status === 'archive') broken(`is ${d.status}`);
        }
        return verdicts;
      },
      late: (x) =>
        new HostStepError(x.host.name, opts.step, `droplet ${x.id} not active after ${s.waitTimeout} s`, {
          hint: 'look at the droplet in the DigitalOcean control panel, or raise providers.digitalocean.waitTimeout',
        }),
      remove: opts.deleteBroken
        ? async (broken) => {
            for (const b of broken) await c.http.delete(`/droplets/${b.id}`).catch(() => undefined);
          }
        : undefined,
    });
  }

  private droplets(env: Env, cluster: string): Promise<Droplet[]> {
    return env.c.list<Droplet>('/droplets', 'droplets', { tag_name: doTags(cluster).cluster });
  }

  async list(ctx: ProviderContext): Promise<Machine[]> {
    const env = this.env(ctx);
    const specs = new Map(ctx.inventory.hosts.map((h) => [h.name, h]));
    return (await this.droplets(env, ctx.inventory.cluster)).map((d) => toMachine(d, specs.get(d.name), env.s, ctx.inventory));
  }

  async destroy(machines: Machine[], ctx: ProviderContext): Promise<BatchResult<string>> {
    const env = this.env(ctx);
    const result: BatchResult<string> = { done: [], failed: [] };
    const t = doTags(ctx.inventory.cluster);
    const all = await this.droplets(env, ctx.inventory.cluster);
    const ids = new Set(machines.map((m) => Number(m.providerId)));
    for (const m of machines) ctx.events.emit({ type: 'step', phase: 'teardown', host: m.name, step: 'delete droplet', status: 'start' });
    const emit = (m: Machine, error?: Error) => {
      if (error) result.failed.push({ name: m.name, error });
      else result.done.push(m.name);
      ctx.events.emit({ type: 'step', phase: 'teardown', host: m.name, step: 'delete droplet', status: error ? 'fail' : 'ok', message: error?.message ?? `droplet ${m.providerId}` });
    };
    if (all.length > 0 && all.every((d) => ids.has(d.id))) {
      // The whole cluster: one request by tag instead of one per droplet.
      try {
        await env.c.api.droplets.deleteDropletsByTag(t.cluster);
        for (const m of machines) emit(m);
      } catch (e) {
        for (const m of machines) emit(m, e as Error);
      }
      return result;
    }
    const limit = pLimit(env.s.concurrency * 2);
    await Promise.all(
      machines.map((m) =>
        limit(async () => {
          try {
            await env.c.http.delete(`/droplets/${m.providerId}`);
            emit(m);
          } catch (e) {
            if ((e as { status?: number }).status === 404) emit(m);
            else emit(m, e as Error);
          }
        }),
      ),
    );
    return result;
  }

  async teardown(ctx: ProviderContext, _opts: { force: boolean }): Promise<void> {
    const env = this.env(ctx);
    const { c, s } = env;
    const cluster = ctx.inventory.cluster;
    const t = doTags(cluster);
    const left = await this.droplets(env, cluster);
    const tags = new Set<string>([t.cluster, ...left.flatMap((d) => d.tags ?? []).filter((x) => x.startsWith(`${t.cluster}:`))]);
    for (const h of doHosts(ctx.inventory)) {
      tags.add(t.role(h.role));
      tags.add(t.group(h.group));
    }
    if (left.length) await c.api.droplets.deleteDropletsByTag(t.cluster);
    await waitUntilGone(async () => (await this.droplets(env, cluster)).length, s.waitTimeout, () => `droplets tagged ${t.cluster} still exist after ${s.waitTimeout} s`, ctx.signal);
    for (const f of (await c.list<Firewall>('/firewalls', 'firewalls')).filter((f) => f.name === `swarmform-${cluster}`)) {
      await c.api.firewalls.deleteFirewall(f.id!);
    }
    if (!s.sshKey) {
      for (const k of (await c.list<SshKey>('/account/keys', 'ssh_keys')).filter((k) => k.name === `swarmform-${cluster}`)) {
        await c.api.ssh.deleteKey(String(k.id ?? k.fingerprint));
      }
    }
    for (const tag of tags) {
      await c.api.tags.deleteTag(tag).catch((e: { status?: number }) => {
        if (e.status !== 404) throw e;
      });
    }
  }
}

function doHosts(inv: Inventory): HostSpec[] {
  return inv.hosts.filter((h) => h.provider === 'digitalocean');
}

/** The firewall swarmform wants for a cluster (the same rules as the AWS security group, minus ESP). */
export function firewallSpec(cluster: string, s: DoSettings): Omit<Firewall, 'id'> {
  const t = doTags(cluster);
  const none = { addresses: [] as string[], droplet_ids: [] as number[], load_balancer_uids: [] as string[], tags: [] as string[] };
  const members = { ...none, tags: [t.cluster], addresses: [...s.swarmFrom] };
  const inbound: FirewallInboundRule[] = [
    { protocol: 'tcp', ports: '2377', sources: members },
    { protocol: 'tcp', ports: '7946', sources: members },
    { protocol: 'udp', ports: '7946', sources: members },
    { protocol: 'udp', ports: '4789', sources: members },
    { protocol: 'tcp', ports: '22', sources: { ...none, addresses: [...s.sshFrom] } },
  ];
  const world = { ...none, addresses: ['0.0.0.0/0', '::/0'] };
  const outbound: FirewallOutboundRule[] = [
    { protocol: 'tcp', ports: 'all', destinations: world },
    { protocol: 'udp', ports: 'all', destinations: world },
    // ICMP has no ports; the API answers "0" for it.
    { protocol: 'icmp', ports: '0', destinations: world },
  ];
  return { name: `swarmform-${cluster}`, inbound_rules: inbound, outbound_rules: outbound, droplet_ids: [], tags: [t.cluster] };
}

function normalRules(f: Pick<Firewall, 'inbound_rules' | 'outbound_rules'>) {
  const src = (x?: Partial<FirewallInboundRule['sources']>) => ({ a: [...(x?.addresses ?? [])].sort(), t: [...(x?.tags ?? [])].sort() });
  return {
    in: (f.inbound_rules ?? []).map((r) => `${r.protocol}/${r.ports}:${JSON.stringify(src(r.sources))}`).sort(),
    out: (f.outbound_rules ?? []).map((r) => `${r.protocol}/${r.ports === '0' ? 'all' : r.ports}:${JSON.stringify(src(r.destinations))}`).sort(),
  };
}

function toMachine(d: Droplet, spec: HostSpec | undefined, s: DoSettings, inv: Inventory): Machine {
  const v4 = d.networks?.v4 ?? [];
  const pub = v4.find((n) => n.type === 'public')?.ip_address;
  const priv = v4.find((n) => n.type === 'private')?.ip_address ?? pub ?? '';
  const prefix = `swarmform:${inv.cluster}:`;
  const role = (d.tags ?? []).find((x) => x.startsWith(`${prefix}role:`))?.slice(`${prefix}role:`.length);
  const group = (d.tags ?? []).find((x) => x.startsWith(`${prefix}group:`))?.slice(`${prefix}group:`.length);
  const base = spec ?? doHosts(inv)[0];
  // Droplet images log in as root: a user the inventory did not write is root, whatever the loader's default was.
  const user = !base || base.ssh.defaults?.includes('user') ? 'root' : base.ssh.user;
  return {
    name: d.name,
    role: (role as Machine['role']) ?? spec?.role ?? 'worker',
    group: spec?.group ?? group ?? '',
    provider: 'digitalocean',
    providerId: String(d.id),
    privateAddress: priv,
    publicAddress: pub,
    ssh: { host: s.sshVia === 'public' && pub ? pub : priv, port: base?.ssh.port ?? 22, user, keyPath: base?.ssh.key, ...inventorySsh(base?.ssh) },
    labels: { ...(spec?.labels ?? {}) },
    init: 'detect',
    ...(d.status === 'off' ? { stopped: true } : {}),
  };
}

/** Requests `create` makes for a fresh cluster; shared by `plan` and the tests. */
export function doCallPlan(hosts: HostSpec[], s: DoSettings) {
  const groups = shapeGroups(hosts).map((g) => {
    const shape = doShape(s, g[0]!);
    return { group: g[0]!.group, role: g[0]!.role, hosts: g.length, size: shape.size, image: shape.image, batches: Math.ceil(g.length / s.batchSize) };
  });
  const creates = groups.reduce((a, g) => a + g.batches, 0);
  const pages = Math.max(1, Math.ceil(hosts.length / 200));
  // GET keys, POST key, GET firewalls, POST firewall.
  const setup = s.sshKey ? 2 : 4;
  // Discovery before create, then at least one poll.
  return { groups, creates, pages, setup, total: setup + creates + 2 * pages };
}

/** The digitalocean provider instance registered under `digitalocean`. */
export const digitalOceanProvider: Provider = new DigitalOceanProvider();
