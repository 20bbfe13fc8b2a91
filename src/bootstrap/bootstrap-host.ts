/**
 * Bootstraps one host over its SSH connection: facts, engine install, service definition, daemon.json, firewall,
 * engine start and ping. Every step observes before it changes, so a second run changes nothing.
 *
 * The firewall needs every member's address. A host bootstrapped while other machines are still being created
 * starts its engine first and gets the rules later, from {@link openFirewall}, once they all exist: a fresh dockerd
 * opens no swarm port before the host joins. When the member list is known in time (a re-run, a member CIDR in the
 * inventory) the rules go in before the engine starts, as a host already in a swarm listens on its ports at once.
 */
import type { EventBus } from '../base/events.js';
import type { Machine } from '../base/machine.js';
import { explainLoss, type Remote } from '../remote/remote.js';
import { ensureDaemonConfig } from './daemon-config.js';
import { type EngineInit, ensureServiceDefinition, startEngine } from './engine-service.js';
import { gatherFacts, type HostFacts } from './facts.js';
import { firewallObservation, openSwarmPorts } from './firewall.js';
import { type BundleRef, installEngine, type PackagePlan } from './install-engine.js';

/** Decided once per run for every host; nothing in it grows per host except the member CIDRs (collapsed blocks). */
export interface BootstrapPlan {
  install: 'packages' | 'bundle';
  bundle?: BundleRef;
  /** Where `install: packages` takes the engine from. */
  packages?: PackagePlan;
  daemon: Record<string, unknown>;
  firewall: boolean;
  /** The blocks the swarm ports are opened to; undefined while machines are still being created. */
  memberCidrs: () => string[] | undefined;
}

export interface BootstrapOutcome {
  facts: HostFacts;
  engineVersion: string;
  /** True when nothing on the host had to change (the firewall included, unless it is still to do). */
  unchanged: boolean;
  /** The firewall is still to be opened (with {@link openFirewall}): the member list was not known yet. */
  firewallPending: boolean;
}

type StepResult<T> = { value: T; message: string; changed: boolean };

/** Runs one named step with its start and end events; returns its value and whether it changed the host. */
async function hostStep<T>(events: EventBus, host: string, name: string, fn: () => Promise<StepResult<T>>, remote?: Remote): Promise<StepResult<T>> {
  const t0 = Date.now();
  events.emit({ type: 'step', phase: 'bootstrap', host, step: name, status: 'start' });
  try {
    const r = await fn();
    // Fact gathering is an observation, not a change: it reads as done, never as skipped.
    const status = r.changed || name === 'facts' ? 'ok' : 'skip';
    events.emit({ type: 'step', phase: 'bootstrap', host, step: name, status, message: r.message, ms: Date.now() - t0 });
    return r;
  } catch (err) {
    const e = explainLoss(err, remote);
    events.emit({ type: 'step', phase: 'bootstrap', host, step: name, status: 'fail', message: e.message, ms: Date.now() - t0 });
    throw e;
  }
}

/** The firewall step: swarm ports open to the member blocks only; returns whether the rules changed. */
export async function openFirewall(remote: Remote, machine: Machine, facts: HostFacts, memberCidrs: string[], events: EventBus): Promise<boolean> {
  const r = await hostStep(events, machine.name, 'firewall', async () => {
    const observe = firewallObservation(facts.firewall);
    const before = await remote.run(observe);
    const message = await openSwarmPorts(remote, facts, memberCidrs);
    const after = await remote.run(observe);
    return { value: undefined, changed: before.stdout !== after.stdout, message };
  }, remote);
  return r.changed;
}

/**
 * Runs every bootstrap step on one host, emitting a step event for each; the firewall too when the member list is
 * known, else it is left pending for {@link openFirewall}.
 */
export async function bootstrapHost(remote: Remote, machine: Machine, plan: BootstrapPlan, events: EventBus): Promise<BootstrapOutcome> {
  const step = async <T>(name: string, fn: () => Promise<StepResult<T>>): Promise<T> => {
    const r = await hostStep(events, machine.name, name, fn, remote);
    if (r.changed) changed = true;
    return r.value;
  };
  let changed = false;

  const facts = await step('facts', async () => {
    const f = await gatherFacts(remote);
    return { value: f, changed: false, message: `${f.osId} ${f.osVersion}, init ${f.init}, engine ${f.engineVersion ?? 'absent'}, firewall ${f.firewall}` };
  });
  const init: EngineInit = machine.init === 'detect' ? facts.init : machine.init;

  // A package's own scripts start the engine (Debian's docker.io does) before daemon.json is written: restart it.
  let installedByPackage = false;
  const dockerd = await step('install engine', async () => {
    const r = await installEngine(remote, facts, plan.install, plan.bundle, plan.packages);
    if ('skipped' in r) return { value: r.dockerd, changed: false, message: r.skipped };
    installedByPackage = Boolean(r.installed);
    return { value: r.dockerd, changed: true, message: r.message };
  });

  const serviceChanged = await step('engine service', async () => {
    const c = await ensureServiceDefinition(remote, init, dockerd, plan.install === 'bundle' && dockerd.startsWith('/usr/local/'));
    return { value: c, changed: c, message: c ? `service definition written (${init})` : `service definition up to date (${init})` };
  });

  const configChanged = await step('daemon config', async () => {
    const c = await ensureDaemonConfig(remote, plan.daemon);
    return { value: c, changed: c, message: c ? 'daemon.json written' : 'daemon.json unchanged' };
  });

  // The rules before the engine when the member list is known already; else after it, or later (see above).
  let firewallDone = false;
  const firewallIfKnown = async (): Promise<void> => {
    const cidrs = plan.firewall && !firewallDone ? plan.memberCidrs() : undefined;
    if (!cidrs) return;
    firewallDone = true;
    if (await openFirewall(remote, machine, facts, cidrs, events)) changed = true;
  };
  await firewallIfKnown();

  const engineVersion = await step('start engine', async () => {
    const running = facts.engineRunning && !serviceChanged;
    if (running && !configChanged) {
      const v = (await remote.engine().version()) as { Version?: string };
      return { value: v.Version ?? 'unknown', changed: false, message: `engine ${v.Version} running` };
    }
    const v = await startEngine(remote, init, running || facts.engineRunning || installedByPackage ? 'restart' : 'start');
    return { value: v, changed: true, message: `engine ${v} ${facts.engineRunning ? 'restarted' : 'started'}` };
  });

  await firewallIfKnown();
  return { facts, engineVersion, unchanged: !changed, firewallPending: plan.firewall && !firewallDone };
}
