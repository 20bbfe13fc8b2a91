/**
 * One way to find the members: after `raft replace` moved the manager role (recorded in raft.json) the providers
 * and the state still say the old roles; every command must go by the roles in force. Checked through
 * resolveMembers, the `managers` selector of exec, and withManager's choice of the managers it probes.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import type Docker from 'dockerode';
import { EventBus } from '../../src/base/events.js';
import type { Machine, Role } from '../../src/base/machine.js';
import type { Context } from '../../src/cluster/context.js';
import { resolveMembers, selectMachines } from '../../src/cluster/machines.js';
import { withManager } from '../../src/cluster/manager.js';
import { recordRoles } from '../../src/cluster/roles.js';
import { execOn } from '../../src/core/exec.js';
import type { HostSpec, Inventory } from '../../src/inventory/types.js';
import type { Provider } from '../../src/providers/provider.js';
import { providers } from '../../src/providers/registry.js';
import type { Session } from '../../src/remote/remote.js';
import { openState } from '../../src/state/store.js';
import { tempDir } from '../support/tmp.js';

const NAMES: [string, Role][] = [['mgr-1', 'manager'], ['mgr-2', 'manager'], ['mgr-3', 'manager'], ['worker-1', 'worker'], ['worker-2', 'worker']];

/** After `raft replace mgr-3 --with worker-1`: worker-1 is a manager, mgr-3 a worker; the machines' records are older. */
const IN_FORCE: Record<string, Role> = { 'mgr-1': 'manager', 'mgr-2': 'manager', 'mgr-3': 'worker', 'worker-1': 'manager', 'worker-2': 'worker' };

function machine(name: string, role: Role): Machine {
  return {
    name, role, group: role === 'manager' ? 'managers' : 'workers', provider: 'fake-members', providerId: name, privateAddress: '127.0.0.1',
    ssh: { host: '127.0.0.1', port: 22, user: 'root' }, labels: {}, init: 'none',
  };
}

/** An engine that answers as the node it is after the replace; worker-1 is the leader. */
function session(m: Machine, probed: string[]): Session {
  const manager = IN_FORCE[m.name] === 'manager';
  const engine = {
    info: async () => {
      probed.push(m.name);
      return { Swarm: { LocalNodeState: 'active', NodeID: `id-${m.name}`, ControlAvailable: manager, Cluster: manager ? { ID: 'c1' } : undefined } };
    },
    getNode: () => ({ inspect: async () => ({ ManagerStatus: { Leader: m.name === 'worker-1' } }) }),
  } as unknown as Docker;
  return {
    name: m.name,
    isClosed: false,
    engine: () => engine,
    run: async (command: string) => ({ code: 0, stdout: `${m.name} ran ${command}\n`, stderr: '' }),
    close: () => undefined,
  } as unknown as Session;
}

async function context(probed: string[]): Promise<Context> {
  const hosts = NAMES.map(([name, role]) => ({ name, role, group: role === 'manager' ? 'managers' : 'workers', provider: 'fake-members', labels: {}, options: {} }) as unknown as HostSpec);
  const fake = {
    name: 'fake-members',
    schemas: {},
    info: () => ({ name: 'fake-members', batchSize: 1, concurrency: 1, userData: false, defaultInstall: 'packages', ownsMachines: false, needsRoot: false, ingressMesh: true }),
    // The provider's records still carry the roles from before the replace.
    list: async () => NAMES.map(([name, role]) => machine(name, role)),
    connect: async (m: Machine) => session(m, probed),
  } as unknown as Provider;
  providers['fake-members'] = fake;
  const state = await openState('members-test', { env: { SWARMFORM_HOME: tempDir('swarmform-members-') } });
  const events = new EventBus();
  const inventory = { cluster: 'members-test', hosts } as unknown as Inventory;
  await recordRoles(state, { 'mgr-3': 'worker', 'worker-1': 'manager' });
  return { inventory, state, events, providers: [{ provider: fake, hosts }], providerContext: { inventory, stateDir: state.dir, events } };
}

describe('members after raft replace', () => {
  it('resolveMembers gives the roles in force, in inventory order', async () => {
    const ctx = await context([]);
    const members = await resolveMembers(ctx);
    assert.deepEqual(members.map((m) => [m.name, m.role]), Object.entries(IN_FORCE));
    assert.deepEqual(selectMachines(members, 'managers').map((m) => m.name), ['mgr-1', 'mgr-2', 'worker-1']);
  });

  it('exec managers runs on the managers in force', async () => {
    const ctx = await context([]);
    const out = await execOn(ctx, 'managers', 'hostname');
    assert.deepEqual(out.map((o) => o.stdout.trim()), ['mgr-1 ran hostname', 'mgr-2 ran hostname', 'worker-1 ran hostname']);
  });

  it('withManager probes the managers in force and finds the new leader', async () => {
    const probed: string[] = [];
    const ctx = await context(probed);
    const chosen = await withManager(ctx, async (h) => ({ name: h.machine.name, leader: h.isLeader, unreachable: h.unreachable }));
    assert.deepEqual(probed.sort(), ['mgr-1', 'mgr-2', 'worker-1']);
    assert.deepEqual(chosen, { name: 'worker-1', leader: true, unreachable: [] });
  });
});
