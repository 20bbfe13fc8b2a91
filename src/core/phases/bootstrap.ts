/**
 * prepare and bootstrap: the install plan per provider is decided once (engine bundle, packages, daemon.json,
 * firewall) before the first machine can arrive; then each machine is bootstrapped as it arrives, beside provision.
 */
import { HostStepError } from '../../base/errors.js';
import type { Machine } from '../../base/machine.js';
import { type BootstrapPlan, bootstrapHost, openFirewall } from '../../bootstrap/bootstrap-host.js';
import { daemonConfigFor } from '../../bootstrap/daemon-config.js';
import type { HostFacts } from '../../bootstrap/facts.js';
import { SWARM_PORTS } from '../../bootstrap/firewall.js';
import { bundleRef } from '../../bootstrap/install-engine.js';
import type { Context } from '../../cluster/context.js';
import type { ImageSpec } from '../../inventory/types.js';
import type { Remote } from '../../remote/remote.js';
import { fanout, succeeded } from '../../run/fanout.js';
import { Feed } from '../../run/feed.js';
import { reaches, type UpPhaseStep, type UpRun } from './phase.js';

export const preparePhase: UpPhaseStep = {
  name: 'prepare',
  title: 'decide the install plan and build or find the engine bundle',
  shouldRun: (run) => reaches(run.opts, 'bootstrap'),
  run: async (run) => {
    run.prepared = await prepareBootstrap(run.ctx, () => run.memberCidrs);
  },
  dryRun: () => undefined,
};

export const bootstrapPhase: UpPhaseStep = {
  name: 'bootstrap',
  title: 'install and configure the engine on each machine as it arrives',
  shouldRun: (run) => reaches(run.opts, 'bootstrap'),
  total: (run) => run.ctx.inventory.hosts.length,
  run: async (run) => {
    run.ready = await bootstrapAll(run);
  },
  dryRun: (ctx, plan) => {
    const inv = ctx.inventory;
    const from = inv.swarm.advertise.kind === 'cidr' ? inv.swarm.advertise.cidr : 'cluster members only';
    plan.firewall = inv.swarm.firewall ? SWARM_PORTS.map((p) => ({ ...p, from })) : [];
  },
};

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

/**
 * Bootstraps machines as they arrive, `swarm.bootstrapConcurrency` at once (32 by default: SSH fan-out from a
 * laptop). Each host connects in its own slot and goes straight on, so no host waits for the slowest one to answer
 * SSH. Hosts that got there before the member list was known have their firewall opened in a second, light fan-out
 * that waits for the list (it holds no bootstrap slot, so the slow steps of others keep going).
 */
async function bootstrapAll(run: UpRun): Promise<Machine[]> {
  const { ctx, sessions, signal } = run;
  const { inventory, events } = ctx;
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
        const cidrs = await (run.provisioned ?? Promise.reject()).then(() => run.memberCidrs, () => undefined);
        if (!cidrs) throw new HostStepError(m.name, 'firewall', 'not opened: provisioning did not finish', { hint: 'run `up` again once the machines exist' });
        if (await openFirewall(remote, m, f, cidrs, events)) changed.add(m.name);
      } catch (err) {
        firewallFailed.set(m.name, err as Error);
      }
    },
    // Its own events are the firewall step's; quiet keeps the fan-out from adding rows of its own.
    { phase: 'bootstrap', step: 'firewall', key: (x) => x.m.name, concurrency: bootstrapConcurrency, events, signal, quiet: true },
  );
  const r = await fanout(
    run.arrived,
    async (m) => {
      const remote = await sessions.connectOne(m, connectTimeout).catch((err: Error) => {
        unreachable.add(m.name);
        throw err;
      });
      const out = await bootstrapHost(remote, m, run.prepared.plans.get(m.provider)!, events);
      run.facts.set(m.name, out.facts);
      if (out.firewallPending) later.push({ m, remote, facts: out.facts });
      if (out.unchanged) return { skipped: true as const, message: `engine ${out.engineVersion}, nothing to change` };
      changed.add(m.name);
      return `engine ${out.engineVersion}`;
    },
    { phase: 'bootstrap', step: 'bootstrap', key: (m) => m.name, concurrency: bootstrapConcurrency, events, signal },
  );
  later.close();
  const f = await firewalls;
  await sessions.flushHostKeys();
  for (const x of r.failed) run.fail(x.item.name, unreachable.has(x.item.name) ? 'ssh' : 'bootstrap', x.error);
  for (const x of f.failed) firewallFailed.set(x.item.m.name, x.error);
  for (const [name, error] of firewallFailed) run.fail(name, 'firewall', error);
  run.result.changes.bootstrap = changed.size;
  return succeeded(r).filter((m) => !firewallFailed.has(m.name));
}
