/**
 * The `lab` provider: real hosts on the local Linux machine, the way kind makes Kubernetes nodes. Each host has its
 * own network namespace and address on a per-cluster bridge, its own mount and UTS namespaces (hostname, Docker
 * directories), its own sshd and firewall, and starts like a fresh server: no engine, only SSH open.
 */
import { existsSync } from 'node:fs';
import pLimit from 'p-limit';
import { UsageError } from '../../base/errors.js';
import { CancelledError } from '../../run/cancelled.js';
import type { HostSpec } from '../../inventory/types.js';
import type { BatchResult, Provider, ProviderArtifacts, ProviderContext, ProviderInfo } from '../provider.js';
import type { Machine } from '../../base/machine.js';
import { allocateAddresses, capacity, firstAddresses, gatewayOf, isHostAddress } from './addresses.js';
import { baseImage, BASE_IMAGE_TAG } from './base-image.js';
import { ensureBridge, ensureForwardRules, ensureNeighbourCapacity } from './bridge.js';
import { engineBundle, engineBundleZstd, engineLayer } from './bundle.js';
import { prepareMaskLayers } from './engine-mask.js';
import { checkLabRoot, ensureHost, hostNetnsExists, readMachine } from './host.js';
import { ensureClusterKey, readPublicKey } from './keys.js';
import { checkClusterName, checkHostName, defaultBridgeName, netnsName, ruleComment } from './names.js';
import { hostPaths, maskDir } from './paths.js';
import { labPreflight } from './preflight.js';
import { labHostLimit, labOptionsSchema, labSettings, labSettingsSchema, osChoice, type OsChoice } from './settings.js';
import { ensureMirrorServer, MIRROR_PORT, packageMirrors } from './mirror.js';
import { CODENAMES, osImage } from './os-image.js';
import { ensureInotifyCapacity, ensureOsHost, isOsHostDir } from './os-host.js';
import { destroyHosts, hostDirNames, teardownCluster } from './sweep.js';

/** Hosts set up at once: each is a dozen short local commands, mostly waiting on the kernel. */
const CREATE_CONCURRENCY = 16;

function errorOf(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** The lab provider; stateless, so one shared instance serves every cluster. */
export class LabProvider implements Provider {
  readonly name = 'lab';
  readonly schemas = { settings: labSettingsSchema, options: labOptionsSchema };
  readonly hostLimit = labHostLimit;

  info(): ProviderInfo {
    return {
      name: 'lab',
      batchSize: 64,
      concurrency: CREATE_CONCURRENCY,
      userData: false,
      defaultInstall: 'bundle',
      ownsMachines: true,
      needsRoot: true,
      // The lab kernel has no IPVS.
      ingressMesh: false,
    };
  }

  validate(hosts: HostSpec[], ctx: ProviderContext): void {
    const { subnet } = labSettings(ctx.inventory);
    checkClusterName(ctx.inventory.cluster);
    const seen = new Set<string>();
    for (const h of hosts) {
      checkHostName(h.name);
      if (seen.has(h.name)) throw new UsageError(`host name "${h.name}" is used twice`);
      seen.add(h.name);
      osChoice(h, labSettings(ctx.inventory));
    }
    if (hosts.length > capacity(subnet)) {
      throw new UsageError(
        `providers.lab.subnet: ${subnet.cidr} holds ${capacity(subnet)} hosts, the inventory has ${hosts.length}`,
        { hint: 'use a larger subnet inside 198.18.0.0/15, e.g. 198.18.0.0/22' },
      );
    }
  }

  async preflight(_ctx: ProviderContext): Promise<void> {
    labPreflight();
  }

  plan(hosts: HostSpec[], ctx: ProviderContext): string[] {
    const { subnet, bridge } = labSettings(ctx.inventory);
    const addrs = firstAddresses(subnet, hosts.length);
    const range = addrs.length === 0 ? 'no addresses' : `${addrs[0]}-${addrs[addrs.length - 1]}`;
    const noun = hosts.length === 1 ? 'host' : 'hosts';
    return [
      `lab: ${hosts.length} ${noun} on bridge ${bridge} ${subnet.cidr} (${range})`,
      `lab: each host: netns ${netnsName(ctx.inventory.cluster, '<host>')}, sshd on <address>:22, firewall drops all inbound but 22/tcp`,
      ...osPlanLines(hosts, ctx),
      ...(labSettings(ctx.inventory).engine === 'preinstalled' ? ['lab: engine preinstalled in every host from one shared read-only layer (/usr/local)'] : []),
      ...(4 * hosts.length * hosts.length > 1024
        ? [`lab: root namespace: kernel neighbour table (net.ipv4/ipv6.neigh.default.gc_thresh*) raised if below room for ${hosts.length} x ${hosts.length} entries x 4`]
        : []),
      `lab: root namespace: FORWARD accepts ${bridge} to ${bridge} only (comment ${ruleComment(ctx.inventory.cluster)})`,
    ];
  }

  async artifacts(ctx: ProviderContext): Promise<ProviderArtifacts> {
    // The bundle and the busybox image serve OS hosts too: the images phase imports swarmform/busybox on every node.
    const [bundle, image] = await Promise.all([engineBundle(), baseImage()]);
    const bundleZstd = await engineBundleZstd(bundle);
    const out: ProviderArtifacts = { bundle, bundleZstd, images: [{ file: image, kind: 'import', tag: BASE_IMAGE_TAG }] };
    const choices = osChoices(ctx);
    if (choices.length > 0) {
      // Building the images fills the mirror; a built image is only looked up.
      const images = await Promise.all(choices.map((c) => osImage(c, (m) => ctx.events.info(m))));
      out.packageMirrors = packageMirrors(gatewayOf(labSettings(ctx.inventory).subnet), new Set(images.map((i) => i.codename)));
    }
    return out;
  }

  async network(ctx: ProviderContext): Promise<void> {
    const { subnet, bridge } = labSettings(ctx.inventory);
    checkClusterName(ctx.inventory.cluster);
    await ensureBridge(bridge, subnet);
    await ensureForwardRules(bridge, ruleComment(ctx.inventory.cluster));
    // OS hosts install packages from the lab's mirror, served on the bridge's address.
    if (osChoices(ctx).length > 0) await ensureMirrorServer(ctx.inventory.cluster, gatewayOf(subnet));
  }

  async create(hosts: HostSpec[], ctx: ProviderContext, ready?: (machine: Machine) => void): Promise<BatchResult> {
    const cluster = ctx.inventory.cluster;
    const settings = labSettings(ctx.inventory);
    checkClusterName(cluster);
    for (const h of hosts) checkHostName(h.name);
    await checkLabRoot();
    const choices = new Map(hosts.map((h) => [h.name, osChoice(h, settings)]));
    await this.network(ctx);
    if ([...choices.values()].some((c) => c !== undefined)) {
      await ensureMirrorServer(cluster, gatewayOf(settings.subnet));
      checkOsTools();
    }
    const key = await ensureClusterKey(ctx.stateDir, cluster);
    const maskLayers = await prepareMaskLayers(maskDir(cluster));
    const engine = settings.engine === 'preinstalled' ? await engineLayer(await engineBundle()) : undefined;

    // Addresses already recorded in machine.json files stay taken even if addresses.json was lost.
    const reserved: Record<string, string> = {};
    for (const name of await hostDirNames(cluster)) {
      const m = await readMachine(hostPaths(cluster, name).machineJson);
      if (m) reserved[name] = m.privateAddress;
    }
    const addresses = await allocateAddresses(cluster, settings.subnet, hosts.map((h) => h.name), reserved);
    const raised = await ensureNeighbourCapacity(new Set([...Object.keys(reserved), ...hosts.map((h) => h.name)]).size);
    if (raised) ctx.events.info(`lab: ${raised}`);
    // The cluster's OS hosts: those being made and those already booted.
    let osHosts = [...choices.values()].filter((c) => c !== undefined).length;
    for (const name of await hostDirNames(cluster)) if (!choices.has(name) && (await isOsHostDir(cluster, name))) osHosts++;
    const inotify = await ensureInotifyCapacity(osHosts);
    if (inotify) ctx.events.info(`lab: ${inotify}`);

    const result: BatchResult = { done: [], failed: [] };
    const limit = pLimit(CREATE_CONCURRENCY);
    await Promise.all(
      hosts.map((spec) =>
        limit(async () => {
          const started = Date.now();
          ctx.events.emit({ type: 'step', phase: 'provision', host: spec.name, step: 'create host', status: 'start' });
          try {
            if (ctx.signal?.aborted) throw new CancelledError('cancelled before the host was created', { cause: ctx.signal.reason });
            const address = addresses[spec.name];
            if (!isHostAddress(settings.subnet, address)) {
              throw new UsageError(
                `${spec.name}: recorded address ${address} is outside ${settings.subnet.cidr}: ` +
                  'tear the cluster down before changing providers.lab.subnet',
              );
            }
            const publicKeys = [key.publicKey];
            let keyPath = key.keyPath;
            if (spec.ssh?.key) {
              const pub = await readPublicKey(spec.ssh.key);
              if (!pub) throw new UsageError(`${spec.name}: ssh.key ${spec.ssh.key} has no ${spec.ssh.key}.pub to authorize`);
              publicKeys.push(pub);
              keyPath = spec.ssh.key;
            }
            // A host that is up: recorded, reported and handed to `ready`.
            const up = (machine: Machine, message: string) => {
              result.done.push(machine);
              ctx.events.emit({ type: 'step', phase: 'provision', host: spec.name, step: 'create host', status: 'ok', message, ms: Date.now() - started });
              ready?.(machine);
            };
            const choice = choices.get(spec.name);
            if (choice) {
              const image = await osImage(choice, (m) => ctx.events.info(m));
              const os = await ensureOsHost({ cluster, spec, address, subnet: settings.subnet, bridge: settings.bridge, keyPath, publicKeys, image });
              up(os.machine, os.reused ? `already running at ${address}` : `booted ${image.codename} at ${address} (sshd after ${((os.bootMs ?? 0) / 1000).toFixed(1)} s)`);
              return;
            }
            const { machine, reused } = await ensureHost({
              cluster,
              spec,
              address,
              subnet: settings.subnet,
              bridge: settings.bridge,
              keyPath,
              publicKeys,
              maskLayers,
              engineLayer: engine,
            });
            up(machine, reused ? `already running at ${address}` : `created at ${address}`);
          } catch (e) {
            const error = errorOf(e);
            result.failed.push({ name: spec.name, error });
            ctx.events.emit({
              type: 'step',
              phase: 'provision',
              host: spec.name,
              step: 'create host',
              status: 'fail',
              message: error.message,
              ms: Date.now() - started,
            });
          }
        }),
      ),
    );
    return result;
  }

  async list(ctx: ProviderContext): Promise<Machine[]> {
    const cluster = ctx.inventory.cluster;
    checkClusterName(cluster);
    const out: Machine[] = [];
    for (const name of (await hostDirNames(cluster)).sort()) {
      if (!hostNetnsExists(cluster, name)) continue;
      const m = await readMachine(hostPaths(cluster, name).machineJson);
      if (m) out.push(m);
    }
    return out;
  }

  async destroy(machines: Machine[], ctx: ProviderContext): Promise<BatchResult<string>> {
    const cluster = ctx.inventory.cluster;
    checkClusterName(cluster);
    const result: BatchResult<string> = { done: [], failed: [] };
    const names: string[] = [];
    for (const m of machines) {
      try {
        // The name becomes a path that is removed recursively: never accept one that could leave the cluster dir.
        checkHostName(m.name);
        if (m.provider !== 'lab') throw new UsageError(`${m.name} belongs to provider ${m.provider}, not lab`);
        names.push(m.name);
        ctx.events.emit({ type: 'step', phase: 'teardown', host: m.name, step: 'destroy host', status: 'start' });
      } catch (e) {
        result.failed.push({ name: m.name, error: errorOf(e) });
      }
    }
    const r = await destroyHosts(cluster, names);
    for (const name of r.done) {
      ctx.events.emit({ type: 'step', phase: 'teardown', host: name, step: 'destroy host', status: 'ok' });
    }
    for (const f of r.failed) {
      ctx.events.emit({ type: 'step', phase: 'teardown', host: f.name, step: 'destroy host', status: 'fail', message: f.error.message });
    }
    return { done: [...result.done, ...r.done], failed: [...result.failed, ...r.failed] };
  }

  async teardown(ctx: ProviderContext, opts: { force: boolean }): Promise<void> {
    const cluster = ctx.inventory.cluster;
    checkClusterName(cluster);
    const bridges = new Set<string>();
    try {
      bridges.add(labSettings(ctx.inventory).bridge);
    } catch {
      // Unreadable settings must not block cleaning up; the default bridge is still ours.
    }
    if (opts.force || bridges.size === 0) bridges.add(defaultBridgeName(cluster));
    const gateways: string[] = [];
    try {
      gateways.push(gatewayOf(labSettings(ctx.inventory).subnet));
    } catch {
      // As above: the mirror server is still found through its record in the cluster directory.
    }
    await teardownCluster(cluster, [...bridges], opts.force, gateways);
  }
}

/** The distinct OS choices of the inventory's lab hosts (empty: namespace hosts only). */
function osChoices(ctx: ProviderContext): OsChoice[] {
  const settings = labSettings(ctx.inventory);
  const seen = new Map<string, OsChoice>();
  for (const h of ctx.inventory.hosts ?? []) {
    if (h.provider !== 'lab') continue;
    const c = osChoice(h, settings);
    if (c) seen.set(`${c.os}/${c.user}/${c.firewall}/${c.packages.join(',')}`, c);
  }
  return [...seen.values()];
}

/** Plan lines for the OS hosts among `hosts`. */
function osPlanLines(hosts: HostSpec[], ctx: ProviderContext): string[] {
  const settings = labSettings(ctx.inventory);
  const by = new Map<string, number>();
  for (const h of hosts) {
    const c = osChoice(h, settings);
    if (!c) continue;
    const k = `${c.os} (${CODENAMES[c.os]}, ${c.firewall}${c.packages.length ? `, + ${c.packages.join(' ')}` : ''}), login ${c.user} with sudo`;
    by.set(k, (by.get(k) ?? 0) + 1);
  }
  if (by.size === 0) return [];
  return [
    ...[...by].map(([k, n]) => `lab: ${n} OS ${n === 1 ? 'host boots' : 'hosts boot'} ${k}: systemd-nspawn, image built once with mmdebstrap, overlay per host`),
    `lab: package mirror for OS hosts: http://${gatewayOf(settings.subnet)}:${MIRROR_PORT}/<codename> (busybox httpd on the bridge)`,
  ];
}

/** Throws UsageError naming the Debian package that provides a missing tool OS hosts need. */
function checkOsTools(): void {
  const need: [string, string][] = [
    ['mmdebstrap', 'mmdebstrap'],
    ['systemd-nspawn', 'systemd-container'],
    ['dpkg-scanpackages', 'dpkg-dev'],
    ['busybox', 'busybox-static'],
    ['unshare', 'util-linux'],
  ];
  const dirs = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
  const missing = need.filter(([bin]) => !dirs.some((d) => existsSync(`${d}/${bin}`)));
  if (missing.length > 0) {
    throw new UsageError(`lab OS hosts need ${missing.map(([b]) => b).join(', ')}`, {
      hint: `apt-get install ${missing.map(([, p]) => p).join(' ')}`,
    });
  }
}

/** The lab provider instance registered under `lab`. */
export const labProvider: Provider = new LabProvider();
