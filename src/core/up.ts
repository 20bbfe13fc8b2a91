/**
 * `up`: inventory -> provision -> bootstrap -> images -> swarm -> workloads -> status, as a plain list of actions
 * sharing one context (kind's shape); provision and bootstrap overlap (each machine is bootstrapped as it arrives).
 * Each action observes before it changes, so a second run changes nothing; hosts that fail are reported and left
 * out of later actions while the rest go on (exit 3, partial).
 */
import { collapseToCidrs } from '../bootstrap/cidrs.js';
import { type BootstrapPlan, bootstrapHost, openFirewall } from '../bootstrap/bootstrap-host.js';
import { daemonConfigFor } from '../bootstrap/daemon-config.js';
import type { HostFacts } from '../bootstrap/facts.js';
import { bundleRef } from '../bootstrap/install-engine.js';
import type { ImageSpec } from '../inventory/types.js';
import type { Machine } from '../base/machine.js';
import type { Remote } from '../remote/remote.js';
import { checkReachability } from '../providers/reachability.js';
import { throwIfCancelled } from '../run/cancelled.js';
import { Feed } from '../run/feed.js';
import { fanout, succeeded } from '../run/fanout.js';
import { phase } from '../run/phase.js';
import { advertiseAddress } from '../swarm/advertise.js';
import { formSwarm } from '../swarm/form-swarm.js';
import { ensureImages, imageTags } from '../swarm/images.js';
import type { Member } from '../swarm/members.js';
import { applyServices, waitServicesConverged } from '../swarm/services.js';
import { type ClusterStatus, readStatus } from '../swarm/status.js';
import type { Context } from '../cluster/context.js';
import { type HostFailure, PartialError, type SwarmformError, UsageError } from '../base/errors.js';
import type { Phase } from '../base/events.js';
import { afterSwarm, beforeSwarm, initSpec, rolesForUp } from '../raft/formation.js';
import { Sessions } from '../cluster/sessions.js';
import { applyInventoryStacks, planInventoryStacks } from './stack.js';

export type UpPhase = 'provision' | 'bootstrap' | 'swarm' | 'workloads';

export interface UpOptions {
  /** Stop after this phase (the phase subcommands); default: all. */
  until?: UpPhase;
  /** Make hosts that belong to another swarm leave it. */
  force?: boolean;
}

export interface UpResult {
  cluster: string;
  /** How many things changed; 0 means the cluster already matched the inventory. */
  changed: number;
  changes: { provision: number; bootstrap: number; images: number; swarm: number; workloads: number };
  failures: HostFailure[];
  status?: ClusterStatus;
  /** Where published ports answer: `http://address:port` per host-mode port and node running a task. */
  endpoints: { service: string; url: string }[];
  phaseMs: Record<string, number>;
}

const ORDER: UpPhase[] = ['provision', 'bootstrap', 'swarm', 'workloads'];

/** Runs the pipeline; throws PartialError (exit 3) when some hosts failed but the rest are done. */
export async function up(ctx: Context, opts: UpOptions = {}): Promise<UpResult> {
  const { inventory, events, state } = ctx;
  const last = ORDER.indexOf(opts.until ?? 'workloads');
  const result: UpResult = {
    cluster: inventory.cluster,
    changed: 0,
    changes: { provision: 0, bootstrap: 0, images: 0, swarm: 0, workloads: 0 },
    failures: [],
    endpoints: [],
    phaseMs: {},
  };
  const fail = (host: string, step: string, err: Error) => {
    const hint = (err as SwarmformError).hint;
    result.failures.push({ host, step, message: err.message, ...(hint ? { hint } : {}) });
  };
  /** One phase: start and end events (hosts counted once each, from their step events) and its wall time. */
  const timed = async <T>(name: Phase, total: number, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await phase(events, name, total, fn);
    } finally {
      result.phaseMs[name] = Date.now() - t0;
    }
  };

  // Hosts whose advertise addresses cannot reach each other would be created and then fail every join: refused
  // before anything is touched (the same offline check `plan` prints).
  const reach = checkReachability(inventory, ctx.providers.map(({ provider, hosts }) => ({ name: provider.name, hosts })));
  if (!reach.ok) {
    throw new UsageError(`${inventory.file}: the hosts could not reach each other over the swarm ports:\n  ${reach.lines.join('\n  ')}`, {
      hint: 'fix swarm.advertise or providers.<name>.swarmFrom as said above; `swarmform plan` shows the check',
    });
  }
  // Compose stacks are loaded and validated in full before anything is touched.
  const stacks = last >= ORDER.indexOf('workloads') ? planInventoryStacks(ctx) : [];
  for (const { provider } of ctx.providers) await provider.preflight(ctx.providerContext);
  const release = await state.lock();
  const sessions = new Sessions(await state.knownHosts(), events);
  try {
    // provision and bootstrap run together: a machine is bootstrapped as soon as it answers (one that exists at once)
    // while the others are still being created, so no host waits for the slowest boot. The firewall, which needs
    // every member's address, is opened on hosts that got there early once the last machine exists.
    const bootstrapping = last >= ORDER.indexOf('bootstrap');
    let memberCidrs: string[] | undefined = inventory.swarm.advertise.kind === 'cidr' ? [inventory.swarm.advertise.cidr] : undefined;
    // Engine bundles and base images are built (or found cached) before the first machine can arrive.
    const prepared = bootstrapping ? await prepareBootstrap(ctx, () => memberCidrs) : { plans: new Map<string, BootstrapPlan>(), images: [] };
    const arrived = new Feed<Machine>();
    // Whichever of the two phases throws stops the other from starting more hosts.
    const stop = new AbortController();
    const signal = ctx.signal ? AbortSignal.any([ctx.signal, stop.signal]) : stop.signal;
    const provisioning = timed('provision', inventory.hosts.length, async () => {
      // Machines a provider handed over before a failure or a signal cut its batch short: saved on the way out, so
      // the state knows them even when the provider's own listing would not find them.
      const handedMachines: Machine[] = [];
      try {
        const all: Machine[] = [];
        const providerContext = { ...ctx.providerContext, signal };
        for (const { provider, hosts } of ctx.providers) {
          await provider.network(providerContext);
          // Find what exists (provider discovery, not only local state), create what is missing.
          const existing = new Map((await provider.list(providerContext)).map((m) => [m.name, m]));
          // Stopped machines go to create too, which starts them (a provider that reports them: EC2).
          const missing = hosts.filter((h) => !existing.has(h.name) || existing.get(h.name)!.stopped);
          const wanted = new Set(hosts.map((h) => h.name));
          for (const m of existing.values()) {
            if (!wanted.has(m.name) || m.stopped) continue;
            all.push(m);
            arrived.push(m);
            events.emit({ type: 'step', phase: 'provision', host: m.name, step: 'machine', status: 'skip', message: 'exists' });
          }
          const handed = new Set<string>();
          const created = missing.length
            ? await provider.create(missing, providerContext, (m) => {
                handed.add(m.name);
                handedMachines.push(m);
                arrived.push(m);
              })
            : { done: [], failed: [] };
          if (provider.info().ownsMachines) result.changes.provision += created.done.length;
          for (const f of created.failed) fail(f.name, 'provision', f.error);
          // A provider that hands machines over only at the end (or skipped some) is caught up here.
          for (const m of created.done) if (!handed.has(m.name)) arrived.push(m);
          all.push(...created.done);
        }
        memberCidrs ??= collapseToCidrs(all.map((m) => (inventory.swarm.advertise.kind === 'public' ? (m.publicAddress ?? m.privateAddress) : m.privateAddress)));
        await state.saveMachines(all);
        return all;
      } catch (err) {
        stop.abort(err);
        if (handedMachines.length) await state.saveMachines(handedMachines).catch(() => undefined);
        throw err;
      } finally {
        arrived.close();
      }
    });
    const facts = new Map<string, HostFacts>();
    const bootstrapped = bootstrapping
      ? timed('bootstrap', inventory.hosts.length, () => bootstrapAll(arrived, prepared.plans, facts, signal)).catch((err: unknown) => {
          stop.abort(err);
          throw err;
        })
      : Promise.resolve([]);
    const [provisioned, booted] = await Promise.allSettled([provisioning, bootstrapped]);
    if (provisioned.status === 'rejected') throw provisioned.reason;
    if (booted.status === 'rejected') throw booted.reason;
    if (!bootstrapping) return await finish();
    throwIfCancelled(ctx.signal);
    const ready = booted.value;

    // images: provider base images and the inventory's tarballs, loaded where missing, all hosts in parallel.
    const specs: ImageSpec[] = [...prepared.images, ...inventory.images];
    if (specs.length > 0 && ready.length > 0) await timed('images', ready.length, async () => {
      const withTags = await Promise.all(specs.map(async (spec) => ({ spec, tags: await imageTags(spec) })));
      const r = await fanout(
        ready,
        async (m) => {
          const loaded = await ensureImages(sessions.get(m.name)!, withTags);
          if (loaded.length === 0) return { skipped: true as const, message: 'all images present' };
          result.changes.images++;
          return `loaded ${loaded.join(', ')}`;
        },
        { phase: 'images', step: 'load images', key: (m) => m.name, concurrency: 16, events, signal: ctx.signal },
      );
      for (const f of r.failed) fail(f.item.name, 'images', f.error);
    });
    if (last < ORDER.indexOf('swarm')) return await finish();
    throwIfCancelled(ctx.signal);

    // swarm: init or find, managers one at a time, workers in parallel spread over managers.
    // Roles in force: the inventory's, with moves made by `raft replace`/`recover` (provider records may be older).
    const roles = await rolesForUp(ctx);
    const members: Member[] = ready.map((m) => ({
      machine: { ...m, role: roles.get(m.name) ?? m.role },
      remote: sessions.get(m.name)!,
      advertise: advertiseAddress(m, inventory.swarm.advertise, facts.get(m.name)?.addresses),
    }));
    const formed = await timed('swarm', members.length, async () => {
      const saved = await state.read();
      // Managers the inventory now wants are promoted first (one at a time, confirmed); locked managers unlocked.
      const before = await beforeSwarm(ctx, members);
      const f = await formSwarm(members, {
        events,
        joinConcurrency: inventory.swarm.joinConcurrency,
        joinPacing: inventory.swarm.joinPacing,
        ingress: inventory.swarm.ingress,
        drainManagers: inventory.swarm.drainManagers || inventory.swarm.profile === 'large',
        spec: initSpec(ctx),
        force: Boolean(opts.force),
        knownClusterId: saved.swarm?.clusterId,
        signal: ctx.signal,
      });
      for (const x of f.failed) fail(x.host, 'swarm', x.error);
      // Then managers it no longer wants are demoted (the leader last), and the swarm settings applied.
      const after = await afterSwarm(ctx, members, f.swarm.lead);
      f.swarm.lead = after.lead;
      result.changes.swarm = f.changed + before.promoted.length + after.reconcile.promoted.length + after.reconcile.demoted.length + (after.settings.length ? 1 : 0);
      await state.writeSecrets({ ...(await state.readSecrets()), workerToken: f.swarm.tokens.worker, managerToken: f.swarm.tokens.manager });
      await state.update((st) => ({ ...st, swarm: { clusterId: f.swarm.clusterId, createdAt: saved.swarm?.createdAt ?? new Date().toISOString() } }));
      return f;
    });
    if (last < ORDER.indexOf('workloads')) return await finish(formed.swarm.lead);
    throwIfCancelled(ctx.signal);

    // workloads: services through the leader's Engine API; wait for every task to run.
    if (inventory.services.length + stacks.length > 0) await timed('workloads', inventory.services.length + stacks.length, async () => {
      if (ctx.providers.some((p) => p.provider.name === 'lab')) {
        for (const s of inventory.services) {
          if (s.ports.some((p) => p.mode === 'ingress')) {
            events.warn(`service ${s.name} publishes in ingress mode: the lab kernel has no IPVS, so the routing mesh does not answer there; use mode: host`);
          }
        }
      }
      const applied = await applyServices(formed.swarm.lead, inventory.services, inventory.cluster, events);
      result.changes.workloads = applied.created.length + applied.updated.length;
      await waitServicesConverged(formed.swarm.lead, inventory.services.map((s) => s.name), events);
      // Then the inventory's compose stacks (validated before anything was touched), each waited for.
      result.changes.workloads += await applyInventoryStacks(formed.swarm.lead, stacks, events);
    });
    return await finish(formed.swarm.lead);

    /**
     * Bootstraps machines as they arrive, `swarm.bootstrapConcurrency` at once (32 by default: SSH fan-out from a
     * laptop). Each host connects in its own slot and goes straight on, so no host waits for the slowest one to answer
     * SSH. Hosts that got there before the member list was known have their firewall opened in a second, light
     * fan-out that waits for the list (it holds no bootstrap slot, so the slow steps of others keep going).
     */
    async function bootstrapAll(machines: Feed<Machine>, plansBy: Map<string, BootstrapPlan>, factsOf: Map<string, HostFacts>, stopSignal: AbortSignal): Promise<Machine[]> {
      const connectTimeout = Math.max(...inventory.hosts.map((h) => h.ssh.connectTimeout));
      const bootstrapConcurrency = inventory.swarm.bootstrapConcurrency ?? 32; // ?? for inventories built in code
      const unreachable = new Set<string>();
      const changed = new Set<string>();
      const later = new Feed<{ m: Machine; remote: Remote; facts: HostFacts }>();
      const firewallFailed = new Map<string, Error>();
      const firewalls = fanout(
        later,
        async ({ m, remote, facts: f }) => {
          try {
            const cidrs = await provisioning.then(() => memberCidrs, () => undefined);
            if (!cidrs) throw new Error('not opened: provisioning did not finish');
            if (await openFirewall(remote, m, f, cidrs, events)) changed.add(m.name);
          } catch (err) {
            firewallFailed.set(m.name, err as Error);
          }
        },
        // Its own events are the firewall step's; quiet keeps the fan-out from adding rows of its own.
        { phase: 'bootstrap', step: 'firewall', key: (x) => x.m.name, concurrency: bootstrapConcurrency, events, signal: stopSignal, quiet: true },
      );
      const r = await fanout(
        machines,
        async (m) => {
          const remote = await sessions.connectOne(m, connectTimeout).catch((err: Error) => {
            unreachable.add(m.name);
            throw err;
          });
          const out = await bootstrapHost(remote, m, plansBy.get(m.provider)!, events);
          factsOf.set(m.name, out.facts);
          if (out.firewallPending) later.push({ m, remote, facts: out.facts });
          if (out.unchanged) return { skipped: true as const, message: `engine ${out.engineVersion}, nothing to change` };
          changed.add(m.name);
          return `engine ${out.engineVersion}`;
        },
        { phase: 'bootstrap', step: 'bootstrap', key: (m) => m.name, concurrency: bootstrapConcurrency, events, signal: stopSignal },
      );
      later.close();
      const f = await firewalls;
      await sessions.flushHostKeys();
      for (const x of r.failed) fail(x.item.name, unreachable.has(x.item.name) ? 'ssh' : 'bootstrap', x.error);
      for (const x of f.failed) firewallFailed.set(x.item.m.name, x.error);
      for (const [name, error] of firewallFailed) fail(name, 'firewall', error);
      result.changes.bootstrap = changed.size;
      return succeeded(r).filter((m) => !firewallFailed.has(m.name));
    }

    async function finish(lead?: Member): Promise<UpResult> {
      result.changed = Object.values(result.changes).reduce((a, b) => a + b, 0);
      if (lead) {
        result.status = await readStatus(lead.remote.engine(), inventory.cluster, lead.machine.name);
        result.endpoints = await endpoints(lead, result.status);
      }
      if (result.failures.length > 0) {
        const err = new PartialError(
          `${new Set(result.failures.map((f) => f.host)).size} host(s) failed; the rest are done and recorded. Run \`up\` again to finish them.`,
          result.failures,
        );
        (err as PartialError & { result?: UpResult }).result = result;
        throw err;
      }
      return result;
    }
  } finally {
    sessions.closeAll();
    await release();
  }
}

/**
 * What bootstrap needs before the first machine arrives, decided once per provider: install method, engine bundle
 * (the provider's, or the inventory's own for an air-gapped fleet), daemon.json, firewall; and the providers' base
 * images for the images phase.
 */
async function prepareBootstrap(ctx: Context, memberCidrs: () => string[] | undefined): Promise<{ plans: Map<string, BootstrapPlan>; images: ImageSpec[] }> {
  const { inventory } = ctx;
  const plans = new Map<string, BootstrapPlan>();
  const images: ImageSpec[] = [];
  for (const { provider } of ctx.providers) {
    const a = await provider.artifacts(ctx.providerContext);
    images.push(...(a.images ?? []));
    const install = inventory.swarm.install === 'auto' ? provider.info().defaultInstall : inventory.swarm.install;
    // The inventory's own bundle wins over the provider's (an air-gapped fleet brings its engine).
    const gzip = inventory.swarm.bundle ?? a.bundle;
    const zstd = inventory.swarm.bundle ? undefined : a.bundleZstd;
    plans.set(provider.name, {
      install,
      bundle: install === 'bundle' && gzip ? await bundleRef(gzip, zstd) : undefined,
      packages: { settings: inventory.swarm.packages, providerMirrors: a.packageMirrors },
      daemon: daemonConfigFor(inventory.swarm),
      firewall: inventory.swarm.firewall,
      memberCidrs,
    });
  }
  return { plans, images };
}

/** `http://address:port` for each host-mode port on each node running one of the service's tasks. */
async function endpoints(lead: Member, status: ClusterStatus): Promise<{ service: string; url: string }[]> {
  const engine = lead.remote.engine();
  const services = (await engine.listServices()) as {
    ID: string;
    Spec: { Name: string; EndpointSpec?: { Ports?: { PublishedPort: number; PublishMode?: string; Protocol: string }[] } };
  }[];
  const withHostPorts = services.filter((s) => s.Spec.EndpointSpec?.Ports?.some((p) => p.PublishMode === 'host' && p.Protocol === 'tcp'));
  if (withHostPorts.length === 0) return [];
  const tasks = (await engine.listTasks({ filters: JSON.stringify({ 'desired-state': ['running'] }) } as object)) as {
    ServiceID: string;
    NodeID: string;
    Status: { State: string };
  }[];
  const addr = new Map(status.nodes.map((n) => [n.id, n.address]));
  const out: { service: string; url: string }[] = [];
  for (const s of withHostPorts) {
    for (const t of tasks.filter((t) => t.ServiceID === s.ID && t.Status.State === 'running')) {
      for (const p of s.Spec.EndpointSpec!.Ports!.filter((p) => p.PublishMode === 'host' && p.Protocol === 'tcp')) {
        const a = addr.get(t.NodeID);
        if (a) out.push({ service: s.Spec.Name, url: `http://${a}:${p.PublishedPort}/` });
      }
    }
  }
  return out.sort((a, b) => a.url.localeCompare(b.url, undefined, { numeric: true }));
}
