/** `network` verbs as the docker CLI has them, for swarm-scoped networks: create options and `network ls` rows. Pure. */
import { UsageError } from '../base/errors.js';

export interface EngineNetwork {
  Id: string;
  Name: string;
  Driver?: string;
  Scope?: string;
  Attachable?: boolean;
  Internal?: boolean;
  Ingress?: boolean;
  Labels?: Record<string, string>;
  IPAM?: { Config?: { Subnet?: string; Gateway?: string }[] };
}

/** `network create` options. */
export interface NetworkCreateOptions {
  name: string;
  driver: string;
  attachable: boolean;
  internal: boolean;
  subnet: string[];
  gateway: string[];
  label: string[];
  opt: string[];
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function kv(items: string[], flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const it of items) {
    const i = it.indexOf('=');
    if (i === 0) throw new UsageError(`${flag}: invalid "${it}" (expected KEY=value)`);
    out[i < 0 ? it : it.slice(0, i)] = i < 0 ? '' : it.slice(i + 1);
  }
  return out;
}

/** The Engine API body of `network create`; only the overlay driver makes sense across a swarm. */
export function networkCreateBody(o: NetworkCreateOptions): Record<string, unknown> {
  if (!o.name || !NAME.test(o.name)) throw new UsageError(`network create: invalid network name "${o.name}"`);
  if (o.driver !== 'overlay') {
    throw new UsageError(`--driver: "${o.driver}" networks are local to one host; swarm services need -d overlay`);
  }
  if (o.gateway.length > o.subnet.length) throw new UsageError('--gateway: each gateway needs a --subnet');
  for (const s of o.subnet) if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(s)) throw new UsageError(`--subnet: invalid "${s}" (expected a CIDR such as 10.10.0.0/24)`);
  return {
    Name: o.name,
    Driver: o.driver,
    CheckDuplicate: true,
    Attachable: o.attachable,
    Internal: o.internal,
    Labels: kv(o.label, '--label'),
    Options: kv(o.opt, '--opt'),
    ...(o.subnet.length ? { IPAM: { Driver: 'default', Config: o.subnet.map((s, i) => ({ Subnet: s, ...(o.gateway[i] ? { Gateway: o.gateway[i] } : {}) })) } } : {}),
  };
}

/** A row of `network ls`: NETWORK ID, NAME, DRIVER, SCOPE. */
export interface NetworkRow {
  id: string;
  name: string;
  driver: string;
  scope: string;
}

export function networkRows(nets: EngineNetwork[]): NetworkRow[] {
  return nets.map((n) => ({ id: n.Id, name: n.Name, driver: n.Driver ?? '', scope: n.Scope ?? '' })).sort((a, b) => a.name.localeCompare(b.name));
}
