/**
 * The `virtualbox` provider: VMs cloned from a base VM (or imported from an appliance) with a NAT adapter that
 * forwards a loopback port to SSH and a host-only adapter the swarm advertises, started headless; addresses come
 * from guest properties (the Guest Additions). Teardown powers off, unregisters and deletes. One VM at a time per
 * call: VBoxManage has no batch create, and cloning is disk-bound anyway.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { z } from 'zod';
import { HostStepError, UsageError } from '../../base/errors.js';
import type { HostSpec, Inventory } from '../../inventory/types.js';
import type { BatchResult, Provider, ProviderArtifacts, ProviderContext, ProviderInfo } from '../provider.js';
import type { Machine } from '../../base/machine.js';
import { inventorySsh } from '../ssh/index.js';
import { sleep, waitForSsh } from '../cloud/common.js';
import { extradata, records, vbox, vmNames } from './vboxmanage.js';

const ipv4 = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}$/, 'must be an IPv4 address');

const shape = {
  /** Name or UUID of the VM to clone (it needs sshd and the Guest Additions). */
  base: z.string().min(1).optional(),
  /** Clone from this snapshot of the base as a linked clone (fast, thin). */
  snapshot: z.string().min(1).optional(),
  /** An .ova/.ovf appliance to import instead of cloning. */
  image: z.string().min(1).optional(),
  cpus: z.number().int().min(1).max(64).optional(),
  memory: z.number().int().min(256).max(1 << 20).optional(),
};

export const vboxSettingsSchema = z.strictObject({
  ...shape,
  cpus: shape.cpus.default(2),
  memory: shape.memory.default(2048),
  /** The host-only interface; created (and removed on teardown) when it does not exist. */
  hostOnly: z
    .strictObject({ adapter: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('vboxnet0'), ip: ipv4.default('192.168.56.1'), netmask: ipv4.default('255.255.255.0') })
    .prefault({}),
  /** First loopback port forwarded to a VM's SSH (NAT rule 127.0.0.1:port -> 22). */
  sshPortBase: z.number().int().min(1024).max(65000).default(52200),
  /** Reach SSH through the NAT rule (127.0.0.1:port) or on the host-only address. */
  sshVia: z.enum(['nat', 'hostonly']).default('nat'),
  /** Path of VBoxManage when it is not on PATH. */
  vboxmanage: z.string().min(1).default('VBoxManage'),
  concurrency: z.number().int().min(1).max(8).default(2),
  retries: z.number().int().min(0).max(5).default(1),
  waitTimeout: z.number().int().min(1).max(7200).default(600),
});

export const vboxOptionsSchema = z.strictObject(shape);

type VboxSettings = z.output<typeof vboxSettingsSchema>;

function settings(inv: Inventory): VboxSettings {
  const parsed = vboxSettingsSchema.safeParse(inv.providers?.virtualbox ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new UsageError(`providers.virtualbox.${issue.path.map(String).join('.')}: ${issue.message}`);
  }
  return parsed.data;
}

function vmShape(s: VboxSettings, h: HostSpec) {
  const o = (h.options ?? {}) as z.output<typeof vboxOptionsSchema>;
  const image = o.image ?? (o.base ? undefined : s.image);
  return { base: image ? undefined : (o.base ?? s.base), snapshot: o.snapshot ?? s.snapshot, image, cpus: o.cpus ?? s.cpus, memory: o.memory ?? s.memory };
}

/** VM name of a host: cluster-scoped so clusters never collide in one VirtualBox. */
export function vmName(cluster: string, host: string): string {
  return `sf-${cluster}-${host}`;
}

/** One extradata key holds what swarmform needs to find and describe a VM (one VBoxManage call to write it). */
const META = 'swarmform/machine';
const KEY = { cluster: 'cluster', name: 'name', role: 'role', group: 'group', port: 'sshPort' } as const;
const IP_PROP = '/VirtualBox/GuestInfo/Net/1/V4/IP';

interface VmInfo {
  vm: string;
  data: Record<string, string>;
}

export class VirtualBoxProvider implements Provider {
  readonly name = 'virtualbox';
  readonly schemas = { settings: vboxSettingsSchema, options: vboxOptionsSchema };

  info(): ProviderInfo {
    return { name: 'virtualbox', batchSize: 1, concurrency: 2, userData: false, defaultInstall: 'packages', ownsMachines: true, needsRoot: false, ingressMesh: true };
  }

  validate(hosts: HostSpec[], ctx: ProviderContext): void {
    const s = settings(ctx.inventory);
    for (const h of hosts) {
      const v = vmShape(s, h);
      if (!v.base && !v.image) throw new UsageError(`groups.${h.group}: virtualbox host ${h.name} has nothing to start from: set providers.virtualbox.base (a VM to clone) or image (an .ova)`);
    }
  }

  async preflight(ctx: ProviderContext): Promise<void> {
    await vbox(settings(ctx.inventory).vboxmanage, ['--version'], 30_000);
  }

  plan(hosts: HostSpec[], ctx: ProviderContext): string[] {
    const s = settings(ctx.inventory);
    const clones = hosts.filter((h) => vmShape(s, h).base).length;
    return [
      `virtualbox: ${hosts.length} VM(s) (${clones} cloned${clones < hosts.length ? `, ${hosts.length - clones} imported` : ''}), ${s.concurrency} at a time, one VBoxManage clone/import + modifyvm + setextradata + startvm per VM`,
      `virtualbox: host-only ${s.hostOnly.adapter} ${s.hostOnly.ip}/${s.hostOnly.netmask} (advertised), NAT rule 127.0.0.1:${s.sshPortBase}+ -> 22 per VM (SSH via ${s.sshVia})`,
      'virtualbox: no cloud firewall: the swarm ports are opened to the members in each VM by bootstrap; the host-only network is not reachable from other machines',
    ];
  }

  async artifacts(): Promise<ProviderArtifacts> {
    return {};
  }

  async network(ctx: ProviderContext): Promise<void> {
    const s = settings(ctx.inventory);
    const ifs = records(await vbox(s.vboxmanage, ['list', 'hostonlyifs']));
    if (ifs.some((r) => r.Name === s.hostOnly.adapter)) return;
    const out = await vbox(s.vboxmanage, ['hostonlyif', 'create']);
    const made = /'([^']+)'/.exec(out)?.[1] ?? s.hostOnly.adapter;
    if (made !== s.hostOnly.adapter) {
      await vbox(s.vboxmanage, ['hostonlyif', 'remove', made]).catch(() => undefined);
      throw new UsageError(`providers.virtualbox.hostOnly.adapter: ${s.hostOnly.adapter} does not exist and VirtualBox named the new interface ${made}; set adapter: ${made}`);
    }
    await vbox(s.vboxmanage, ['hostonlyif', 'ipconfig', made, '--ip', s.hostOnly.ip, '--netmask', s.hostOnly.netmask]);
    await fs.mkdir(ctx.stateDir, { recursive: true });
    await fs.writeFile(path.join(ctx.stateDir, 'virtualbox-hostonly'), `${made}\n`, { mode: 0o600 });
  }

  /** Every swarmform VM (name prefix `sf-`, confirmed by its extradata), of any cluster. */
  private async allVms(s: VboxSettings): Promise<VmInfo[]> {
    const out: VmInfo[] = [];
    for (const vm of vmNames(await vbox(s.vboxmanage, ['list', 'vms'])).filter((n) => n.startsWith('sf-'))) {
      const raw = extradata(await vbox(s.vboxmanage, ['getextradata', vm, 'enumerate']).catch(() => ''))[META];
      try {
        if (raw) out.push({ vm, data: JSON.parse(raw) as Record<string, string> });
      } catch {
        // not ours after all
      }
    }
    return out;
  }

  /** The cluster's VMs. */
  private async vms(s: VboxSettings, cluster: string): Promise<VmInfo[]> {
    return (await this.allVms(s)).filter((v) => v.data[KEY.cluster] === cluster && v.vm.startsWith(`sf-${cluster}-`));
  }

  async create(hosts: HostSpec[], ctx: ProviderContext, ready?: (machine: Machine) => void): Promise<BatchResult> {
    const s = settings(ctx.inventory);
    const cluster = ctx.inventory.cluster;
    await this.network(ctx);
    const all = await this.allVms(s);
    const existing = new Set(all.filter((v) => v.data[KEY.cluster] === cluster).map((v) => v.data[KEY.name]));
    const used = new Set(all.map((v) => Number(v.data[KEY.port])).filter(Boolean));
    const nextPort = () => {
      let p = s.sshPortBase;
      while (used.has(p)) p++;
      used.add(p);
      return p;
    };
    const result: BatchResult = { done: [], failed: [] };
    const limit = pLimit(s.concurrency);
    await Promise.all(
      hosts
        .filter((h) => !existing.has(h.name))
        .map((h) =>
          limit(async () => {
            const started = Date.now();
            let last: Error | undefined;
            for (let attempt = 1; attempt <= s.retries + 1; attempt++) {
              ctx.events.emit({ type: 'step', phase: 'provision', host: h.name, step: 'create vm', status: attempt === 1 ? 'start' : 'retry', attempt });
              const port = nextPort();
              try {
                const m = await this.createOne(s, ctx, h, port);
                result.done.push(m);
                ctx.events.emit({ type: 'step', phase: 'provision', host: h.name, step: 'create vm', status: 'ok', message: `${m.providerId} at ${m.privateAddress}, ssh 127.0.0.1:${port}`, ms: Date.now() - started });
                ready?.(m);
                return;
              } catch (e) {
                last = e as Error;
                if (e instanceof UsageError) break;
                await this.removeVm(s, vmName(cluster, h.name)).catch(() => undefined);
              }
            }
            result.failed.push({ name: h.name, error: last! });
            ctx.events.emit({ type: 'step', phase: 'provision', host: h.name, step: 'create vm', status: 'fail', message: last!.message, ms: Date.now() - started });
          }),
        ),
    );
    return result;
  }

  private async createOne(s: VboxSettings, ctx: ProviderContext, h: HostSpec, port: number): Promise<Machine> {
    const cluster = ctx.inventory.cluster;
    const vm = vmName(cluster, h.name);
    const v = vmShape(s, h);
    const V = (args: string[]) => vbox(s.vboxmanage, args);
    if (v.image) {
      const image = path.resolve(path.dirname(ctx.inventory.file), v.image);
      await V(['import', image, '--vsys', '0', '--vmname', vm]);
    } else {
      await V(['clonevm', v.base!, '--name', vm, '--register', ...(v.snapshot ? ['--snapshot', v.snapshot, '--options', 'link'] : [])]);
    }
    await V([
      'modifyvm', vm,
      '--cpus', String(v.cpus),
      '--memory', String(v.memory),
      '--nic1', 'nat',
      '--natpf1', `ssh,tcp,127.0.0.1,${port},,22`,
      '--nic2', 'hostonly',
      '--hostonlyadapter2', s.hostOnly.adapter,
    ]);
    await V(['setextradata', vm, META, JSON.stringify({ [KEY.cluster]: cluster, [KEY.name]: h.name, [KEY.role]: h.role, [KEY.group]: h.group, [KEY.port]: String(port) })]);
    await V(['startvm', vm, '--type', 'headless']);
    const deadline = Date.now() + s.waitTimeout * 1000;
    let ip: string | undefined;
    for (let delay = 500; !ip; delay = Math.min(delay * 2, 5_000)) {
      ip = /^Value:\s*(\S+)/m.exec(await V(['guestproperty', 'get', vm, IP_PROP]))?.[1];
      if (ip) break;
      if (Date.now() > deadline) {
        throw new HostStepError(h.name, 'create vm', `VM ${vm} has no address in guest property ${IP_PROP} after ${s.waitTimeout} s`, {
          hint: 'install the VirtualBox Guest Additions in the base VM (they report its address), or raise providers.virtualbox.waitTimeout',
        });
      }
      await sleep(delay, ctx.signal);
    }
    const m = machineOf(vm, { [KEY.name]: h.name, [KEY.role]: h.role, [KEY.group]: h.group, [KEY.port]: String(port) }, ip, h, s);
    await waitForSsh(m.ssh.host, m.ssh.port, Math.max(1000, deadline - Date.now()), ctx.signal);
    return m;
  }

  async list(ctx: ProviderContext): Promise<Machine[]> {
    const s = settings(ctx.inventory);
    const specs = new Map(ctx.inventory.hosts.map((h) => [h.name, h]));
    const out: Machine[] = [];
    for (const { vm, data } of await this.vms(s, ctx.inventory.cluster)) {
      const ip = /^Value:\s*(\S+)/m.exec(await vbox(s.vboxmanage, ['guestproperty', 'get', vm, IP_PROP]).catch(() => ''))?.[1] ?? '';
      out.push(machineOf(vm, data, ip, specs.get(data[KEY.name]!) ?? ctx.inventory.hosts.find((h) => h.provider === 'virtualbox'), s));
    }
    return out;
  }

  private async removeVm(s: VboxSettings, vm: string): Promise<void> {
    await vbox(s.vboxmanage, ['controlvm', vm, 'poweroff']).catch(() => undefined);
    for (let i = 0; ; i++) {
      try {
        await vbox(s.vboxmanage, ['unregistervm', vm, '--delete']);
        return;
      } catch (e) {
        const msg = (e as Error).message;
        if (/Could not find a registered machine|VBOX_E_OBJECT_NOT_FOUND/.test(msg)) return;
        // The session lock is released a moment after poweroff.
        if (i < 5 && /locked|session/i.test(msg)) {
          await sleep(1000 * (i + 1));
          continue;
        }
        throw e;
      }
    }
  }

  async destroy(machines: Machine[], ctx: ProviderContext): Promise<BatchResult<string>> {
    const s = settings(ctx.inventory);
    const result: BatchResult<string> = { done: [], failed: [] };
    const limit = pLimit(s.concurrency);
    await Promise.all(
      machines.map((m) =>
        limit(async () => {
          ctx.events.emit({ type: 'step', phase: 'teardown', host: m.name, step: 'delete vm', status: 'start' });
          try {
            await this.removeVm(s, m.providerId);
            result.done.push(m.name);
            ctx.events.emit({ type: 'step', phase: 'teardown', host: m.name, step: 'delete vm', status: 'ok', message: m.providerId });
          } catch (e) {
            result.failed.push({ name: m.name, error: e as Error });
            ctx.events.emit({ type: 'step', phase: 'teardown', host: m.name, step: 'delete vm', status: 'fail', message: (e as Error).message });
          }
        }),
      ),
    );
    return result;
  }

  async teardown(ctx: ProviderContext, _opts: { force: boolean }): Promise<void> {
    const s = settings(ctx.inventory);
    for (const { vm } of await this.vms(s, ctx.inventory.cluster)) await this.removeVm(s, vm);
    // The host-only interface goes only if this cluster made it and no other swarmform VM still uses it.
    const marker = path.join(ctx.stateDir, 'virtualbox-hostonly');
    const made = (await fs.readFile(marker, 'utf8').catch(() => '')).trim();
    if (made && (await this.allVms(s)).length === 0) {
      await vbox(s.vboxmanage, ['hostonlyif', 'remove', made]).catch(() => undefined);
      await fs.rm(marker, { force: true });
    }
  }
}

/** inventorySsh for a VM reached through its NAT rule: the port is never a default. */
function natSsh(spec: HostSpec | undefined): ReturnType<typeof inventorySsh> {
  const extra = inventorySsh(spec?.ssh);
  const defaults = extra.defaults?.filter((d) => d !== 'port');
  return { ...extra, defaults: defaults?.length ? defaults : undefined };
}

function machineOf(vm: string, data: Record<string, string>, ip: string, spec: HostSpec | undefined, s: VboxSettings): Machine {
  const port = Number(data[KEY.port]) || 22;
  return {
    name: data[KEY.name] ?? vm,
    role: (data[KEY.role] as Machine['role']) ?? 'worker',
    group: data[KEY.group] ?? '',
    provider: 'virtualbox',
    providerId: vm,
    privateAddress: ip,
    ssh:
      s.sshVia === 'nat'
        ? // The NAT rule's port is the provider's, not a default the OpenSSH config may replace.
          { host: '127.0.0.1', port, user: spec?.ssh.user ?? 'root', keyPath: spec?.ssh.key, ...natSsh(spec) }
        : { host: ip, port: spec?.ssh.port ?? 22, user: spec?.ssh.user ?? 'root', keyPath: spec?.ssh.key, ...inventorySsh(spec?.ssh) },
    labels: { ...(spec?.labels ?? {}) },
    init: 'detect',
  };
}

export const virtualBoxProvider: Provider = new VirtualBoxProvider();
