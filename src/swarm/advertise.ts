/** Chooses the address a node advertises to the swarm: private by default, as swarm traffic must stay inside. */
import { inCidr } from '../bootstrap/cidrs.js';
import { HostStepError } from '../base/errors.js';
import type { AdvertiseChoice } from '../inventory/types.js';
import type { Machine } from '../base/machine.js';

/** The address for `machine` under `choice`; `hostAddresses` are the host's own (from facts) for CIDR matching. */
export function advertiseAddress(machine: Machine, choice: AdvertiseChoice, hostAddresses: string[] = []): string {
  if (choice.kind === 'private') return machine.privateAddress;
  if (choice.kind === 'public') {
    if (!machine.publicAddress) throw new HostStepError(machine.name, 'advertise address', 'swarm.advertise is public but the host has no public address');
    return machine.publicAddress;
  }
  const candidates = [machine.privateAddress, machine.publicAddress, ...hostAddresses].filter((a): a is string => Boolean(a));
  const hit = candidates.find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a) && inCidr(a, choice.cidr));
  if (!hit) {
    throw new HostStepError(machine.name, 'advertise address', `no address of the host is inside ${choice.cidr} (has ${candidates.join(', ')})`);
  }
  return hit;
}
