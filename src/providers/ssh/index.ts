/**
 * The `ssh` provider: bare metal and any existing host, reached by address, user, key and port. It creates nothing
 * and destroys nothing: `down` only leaves the swarm and removes what swarmform added (done by the core for
 * providers that do not own their machines).
 */
import { isIPv4 } from 'node:net';
import { z } from 'zod';
import { UsageError } from '../../base/errors.js';
import type { HostSpec, SshSettings } from '../../inventory/types.js';
import type { BatchResult, Provider, ProviderContext } from '../provider.js';
import type { Machine } from '../../base/machine.js';

/**
 * The inventory's ssh settings a Machine carries besides host, port, user and key: become, bastions, the OpenSSH
 * config to consult and which values are only defaults. Providers that take ssh.user from the inventory spread it in.
 */
export function inventorySsh(s: SshSettings | undefined): Pick<Machine['ssh'], 'become' | 'jump' | 'config' | 'defaults'> {
  const out: Pick<Machine['ssh'], 'become' | 'jump' | 'config' | 'defaults'> = {};
  if (!s) return out;
  if (s.become !== undefined) out.become = s.become;
  if (s.jump !== undefined) out.jump = s.jump.map((h) => ({ host: h.host, port: h.port, user: h.user, keyPath: h.key }));
  if (s.config !== undefined) out.config = s.config;
  if (s.defaults?.length) out.defaults = [...s.defaults];
  return out;
}

/** Turns an inventory host into the machine it already is. */
export function sshMachine(h: HostSpec): Machine {
  const address = h.address!;
  return {
    name: h.name,
    role: h.role,
    group: h.group,
    provider: 'ssh',
    providerId: address,
    privateAddress: h.privateAddress ?? address,
    publicAddress: address,
    ssh: { host: address, port: h.ssh.port, user: h.ssh.user, keyPath: h.ssh.key, ...inventorySsh(h.ssh) },
    labels: h.labels,
    init: 'detect',
  };
}

export const sshProvider: Provider = {
  name: 'ssh',
  schemas: { settings: z.object({}).strict(), options: z.object({}).strict() },
  info: () => ({ name: 'ssh', batchSize: 1000, concurrency: 64, userData: false, defaultInstall: 'packages', ownsMachines: false, needsRoot: false, ingressMesh: true }),

  validate(hosts: HostSpec[]) {
    const missing = hosts.filter((h) => !h.address);
    if (missing.length > 0) {
      throw new UsageError(`ssh provider: host(s) without an address: ${missing.map((h) => `${h.name} (group ${h.group})`).join(', ')}`, {
        hint: 'give each host of an ssh group `address:` (and `privateAddress:` when the swarm should use another one)',
      });
    }
    const bad = hosts.filter((h) => h.privateAddress && !isIPv4(h.privateAddress));
    if (bad.length > 0) throw new UsageError(`ssh provider: privateAddress must be an IPv4 address: ${bad.map((h) => h.name).join(', ')}`);
  },

  async preflight() {},

  plan(hosts: HostSpec[]) {
    return hosts.length ? [`ssh: ${hosts.length} existing host(s), nothing to create: ${hosts.slice(0, 5).map((h) => `${h.name}=${h.address}`).join(', ')}${hosts.length > 5 ? ', ...' : ''}`] : [];
  },

  async artifacts() {
    return {};
  },

  async network() {},

  async create(hosts: HostSpec[]): Promise<BatchResult> {
    return { done: hosts.map(sshMachine), failed: [] };
  },

  async list(ctx: ProviderContext): Promise<Machine[]> {
    return ctx.inventory.hosts.filter((h) => h.provider === 'ssh').map(sshMachine);
  },

  async destroy(machines: Machine[]): Promise<BatchResult<string>> {
    return { done: machines.map((m) => m.name), failed: [] };
  },

  async teardown() {},
};
