/**
 * A loopback stub of the EC2 query API (form-encoded `Action=...` in, XML out), enough for the aws provider: VPCs,
 * subnets, images (DescribeImages by id or name filter, the set configurable), security groups, key pairs, instances and tags. The real SDK client talks to it through
 * `providers.aws.endpoint`, so its signing, serialisation, pagination and retry code all run. It only ever hands out
 * the addresses it is given (loopback by default, or lab hosts a test made), and can inject throttling, capacity
 * shortfalls, an account instance limit and instances that die while starting.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Tags = Record<string, string>;

export interface StubInstance {
  id: string;
  imageId: string;
  type: string;
  state: 'pending' | 'running' | 'shutting-down' | 'terminated' | 'stopping' | 'stopped';
  private: string;
  public?: string;
  launchIndex: number;
  reservation: string;
  tags: Tags;
  /** Set when the stub was told this instance dies while starting. */
  dies?: boolean;
  /** DescribeInstances calls left before a pending instance runs. */
  bootCalls: number;
  keyName?: string;
  groups: string[];
}

export interface Ec2StubOptions {
  /** Address of the n-th instance launched (0-based); default 127.0.0.1 for both. */
  address?: (n: number) => { private: string; public?: string };
  /** Answer the next N calls of an action with RequestLimitExceeded (HTTP 503), e.g. `{ RunInstances: 2 }`. */
  throttle?: Record<string, number>;
  /** Most instances alive at once in the account: RunInstances launches up to the rest, then InstanceLimitExceeded. */
  instanceLimit?: number;
  /** Most instances one RunInstances may launch before InsufficientInstanceCapacity (with MinCount=1 it gives this many). */
  capacityPerCall?: number;
  /** Instances (by launch number, 0-based) that go to `terminated` instead of `running`. */
  dies?: (n: number) => boolean;
  /** DescribeInstances calls an instance (by launch number and launch tags) stays pending for; default 1 (running at the next). */
  bootCalls?: (n: number, tags: Tags) => number;
  /** Page size of DescribeInstances when the client asks for more. */
  pageSize?: number;
  /**
   * The images DescribeImages knows (by id, or by a name filter with `*` wildcards); an id not listed is
   * InvalidAMIID.NotFound, as in EC2. Unset: any id is an Ubuntu image, and a name filter gets two dated matches.
   */
  images?: StubImage[];
}

export interface StubImage {
  imageId: string;
  name?: string;
  description?: string;
  /** ISO date; default 2025-01-01. */
  creationDate?: string;
}

export interface Ec2Call {
  action: string;
  params: Record<string, string>;
  /** The Authorization header's credential scope (access key id), kept to check it is what the test set. */
  accessKeyId?: string;
}

export class Ec2Stub {
  server!: Server;
  url = '';
  readonly calls: Ec2Call[] = [];
  readonly instances = new Map<string, StubInstance>();
  readonly groups = new Map<string, { id: string; name: string; vpc: string; tags: Tags; perms: { proto: string; from?: number; to?: number; groups: string[]; cidrs: string[] }[] }>();
  readonly keys = new Map<string, { id: string; name: string; tags: Tags; material: string }>();
  private launched = 0;
  private seq = 0;
  private tokens = new Map<string, string[]>();

  constructor(public opts: Ec2StubOptions = {}) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections?.();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Calls of one action. */
  count(action: string): number {
    return this.calls.filter((c) => c.action === action).length;
  }

  /** Instances not terminated. */
  live(): StubInstance[] {
    return [...this.instances.values()].filter((i) => i.state !== 'terminated');
  }

  /** Resources still carrying a cluster's tag (instances not terminated, groups, keys). */
  tagged(cluster: string): string[] {
    const out: string[] = [];
    for (const i of this.live()) if (i.tags['swarmform:cluster'] === cluster) out.push(`instance ${i.id} (${i.state})`);
    for (const g of this.groups.values()) if (g.tags['swarmform:cluster'] === cluster) out.push(`security-group ${g.id}`);
    for (const k of this.keys.values()) if (k.tags['swarmform:cluster'] === cluster) out.push(`key-pair ${k.name}`);
    return out;
  }

  private id(prefix: string): string {
    return `${prefix}-${(++this.seq).toString(16).padStart(17, '0')}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const c of req) body += c;
    const params = Object.fromEntries(new URLSearchParams(body));
    const action = params.Action ?? '';
    const auth = String(req.headers.authorization ?? '');
    this.calls.push({ action, params, accessKeyId: /Credential=([^/]+)\//.exec(auth)?.[1] });
    const send = (status: number, xml: string) => {
      res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8' });
      res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${xml}`);
    };
    const fail = (status: number, code: string, message: string) =>
      send(status, `<Response><Errors><Error><Code>${code}</Code><Message>${esc(message)}</Message></Error></Errors><RequestID>${this.id('req')}</RequestID></Response>`);
    const left = this.opts.throttle?.[action] ?? 0;
    if (left > 0) {
      this.opts.throttle![action] = left - 1;
      return fail(503, 'RequestLimitExceeded', 'Request limit exceeded.');
    }
    try {
      const out = this.dispatch(action, params);
      send(200, `<${action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${this.id('req')}</requestId>${xml(out)}</${action}Response>`);
    } catch (e) {
      const err = e as { code?: string; status?: number; message: string };
      fail(err.status ?? 400, err.code ?? 'InternalError', err.message);
    }
  }

  private dispatch(action: string, p: Record<string, string>): Record<string, unknown> {
    const filters = parseFilters(p);
    switch (action) {
      case 'DescribeVpcs':
        return { vpcSet: [{ vpcId: 'vpc-0000000000000000a', cidrBlock: '127.16.0.0/16', isDefault: true }] };
      case 'DescribeSubnets':
        return { subnetSet: listOf(p, 'SubnetId').map((id) => ({ subnetId: id, vpcId: 'vpc-0000000000000000a', cidrBlock: '127.16.1.0/24' })) };
      case 'DescribeImages': {
        const ids = listOf(p, 'ImageId');
        const known = this.opts.images;
        if (known) {
          const missing = ids.find((id) => !known.some((i) => i.imageId === id));
          if (missing) throw Object.assign(new Error(`The image id '[${missing}]' does not exist`), { code: 'InvalidAMIID.NotFound' });
          const names = filters.name?.map((n) => new RegExp(`^${n.split('*').map((x) => x.replace(/[.+?^${}()|[\]\\/]/g, '\\$&')).join('.*')}$`));
          return {
            imagesSet: known
              .filter((i) => (!ids.length || ids.includes(i.imageId)) && (!names || names.some((r) => r.test(i.name ?? ''))))
              .map((i) => ({ imageId: i.imageId, name: i.name, description: i.description, creationDate: i.creationDate ?? '2025-01-01T00:00:00.000Z', imageState: 'available' })),
          };
        }
        if (ids.length) {
          return {
            imagesSet: ids.map((imageId) => ({
              imageId,
              name: 'ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20250101',
              description: 'Canonical, Ubuntu, 22.04 LTS, amd64 jammy image',
              creationDate: '2025-01-01T00:00:00.000Z',
              imageState: 'available',
            })),
          };
        }
        const name = filters.name?.[0] ?? '*';
        return {
          imagesSet: [
            { imageId: 'ami-00000000000000001', name: name.replace('*', '20240101'), creationDate: '2024-01-01T00:00:00.000Z', imageState: 'available' },
            { imageId: 'ami-00000000000000002', name: name.replace('*', '20250101'), creationDate: '2025-01-01T00:00:00.000Z', imageState: 'available' },
          ],
        };
      }
      case 'DescribeSecurityGroups':
        return {
          securityGroupInfo: [...this.groups.values()]
            .filter((g) => matchTags(g.tags, filters) && (!filters['vpc-id'] || filters['vpc-id'].includes(g.vpc)))
            .map((g) => ({
              groupId: g.id,
              groupName: g.name,
              vpcId: g.vpc,
              tagSet: tagSet(g.tags),
              ipPermissions: g.perms.map((x) => ({
                ipProtocol: x.proto,
                fromPort: x.from,
                toPort: x.to,
                groups: x.groups.map((groupId) => ({ groupId })),
                ipRanges: x.cidrs.map((cidrIp) => ({ cidrIp })),
              })),
            })),
        };
      case 'CreateSecurityGroup': {
        if ([...this.groups.values()].some((g) => g.name === p.GroupName)) throw Object.assign(new Error(`group ${p.GroupName} exists`), { code: 'InvalidGroup.Duplicate' });
        const id = this.id('sg');
        this.groups.set(id, { id, name: p.GroupName!, vpc: p.VpcId ?? 'vpc-0000000000000000a', tags: specTags(p, 'security-group'), perms: [] });
        return { groupId: id };
      }
      case 'AuthorizeSecurityGroupIngress': {
        const g = this.groups.get(p.GroupId!);
        if (!g) throw Object.assign(new Error('no such group'), { code: 'InvalidGroup.NotFound' });
        for (let i = 1; p[`IpPermissions.${i}.IpProtocol`] !== undefined; i++) {
          const pre = `IpPermissions.${i}.`;
          g.perms.push({
            proto: p[`${pre}IpProtocol`]!,
            from: p[`${pre}FromPort`] === undefined ? undefined : Number(p[`${pre}FromPort`]),
            to: p[`${pre}ToPort`] === undefined ? undefined : Number(p[`${pre}ToPort`]),
            groups: listOf(p, `${pre}Groups`, 'GroupId'),
            cidrs: listOf(p, `${pre}IpRanges`, 'CidrIp'),
          });
        }
        return { return: true };
      }
      case 'DeleteSecurityGroup': {
        const g = this.groups.get(p.GroupId!);
        if (!g) throw Object.assign(new Error('no such group'), { code: 'InvalidGroup.NotFound' });
        if (this.live().some((i) => i.groups.includes(g.id))) throw Object.assign(new Error('resource has a dependent object'), { code: 'DependencyViolation' });
        this.groups.delete(g.id);
        return { return: true };
      }
      case 'DescribeKeyPairs':
        return {
          keySet: [...this.keys.values()]
            .filter((k) => matchTags(k.tags, filters) && (!filters['key-name'] || filters['key-name'].includes(k.name)))
            .map((k) => ({ keyPairId: k.id, keyName: k.name, keyFingerprint: 'stub', tagSet: tagSet(k.tags) })),
        };
      case 'ImportKeyPair': {
        if ([...this.keys.values()].some((k) => k.name === p.KeyName)) throw Object.assign(new Error('key exists'), { code: 'InvalidKeyPair.Duplicate' });
        const id = this.id('key');
        this.keys.set(id, { id, name: p.KeyName!, tags: specTags(p, 'key-pair'), material: Buffer.from(p.PublicKeyMaterial ?? '', 'base64').toString() });
        return { keyPairId: id, keyName: p.KeyName, keyFingerprint: 'stub' };
      }
      case 'DeleteKeyPair':
        for (const k of this.keys.values()) if (k.id === p.KeyPairId || k.name === p.KeyName) this.keys.delete(k.id);
        return { return: true };
      case 'RunInstances':
        return this.run(p);
      case 'CreateTags': {
        const tags: Tags = {};
        for (let i = 1; p[`Tag.${i}.Key`] !== undefined; i++) tags[p[`Tag.${i}.Key`]!] = p[`Tag.${i}.Value`] ?? '';
        for (const id of listOf(p, 'ResourceId')) {
          const inst = this.instances.get(id);
          if (!inst) throw Object.assign(new Error(`The instance ID '${id}' does not exist`), { code: 'InvalidInstanceID.NotFound' });
          Object.assign(inst.tags, tags);
        }
        return { return: true };
      }
      case 'DescribeInstances':
        return this.describe(p, filters);
      case 'StopInstances':
      case 'StartInstances': {
        const ids = listOf(p, 'InstanceId');
        const missing = ids.find((id) => !this.instances.has(id));
        if (missing) throw Object.assign(new Error(`The instance ID '${missing}' does not exist`), { code: 'InvalidInstanceID.NotFound' });
        const [from, to] = action === 'StartInstances' ? (['stopped', 'pending'] as const) : (['running', 'stopping'] as const);
        const wrong = ids.map((id) => this.instances.get(id)!).find((i) => i.state !== from && i.state !== to && !(to === 'pending' && i.state === 'running'));
        if (wrong) throw Object.assign(new Error(`The instance '${wrong.id}' is not in a state from which it can be ${action === 'StartInstances' ? 'started' : 'stopped'}.`), { code: 'IncorrectInstanceState' });
        return {
          instancesSet: ids.map((id) => {
            const i = this.instances.get(id)!;
            const prev = i.state;
            if (i.state === from) i.state = to;
            return { instanceId: id, previousState: state(prev), currentState: state(i.state) };
          }),
        };
      }
      case 'TerminateInstances': {
        const ids = listOf(p, 'InstanceId');
        const missing = ids.find((id) => !this.instances.has(id));
        if (missing) throw Object.assign(new Error(`The instance ID '${missing}' does not exist`), { code: 'InvalidInstanceID.NotFound' });
        return {
          instancesSet: ids.map((id) => {
            const i = this.instances.get(id)!;
            const prev = i.state;
            if (i.state !== 'terminated') i.state = 'shutting-down';
            return { instanceId: id, previousState: state(prev), currentState: state(i.state) };
          }),
        };
      }
      default:
        throw Object.assign(new Error(`the stub does not implement ${action}`), { code: 'InvalidAction' });
    }
  }

  private run(p: Record<string, string>): Record<string, unknown> {
    const min = Number(p.MinCount ?? 1);
    const max = Number(p.MaxCount ?? 1);
    if (p.ClientToken && this.tokens.has(p.ClientToken)) {
      const ids = this.tokens.get(p.ClientToken)!;
      return this.reservation(ids.map((id) => this.instances.get(id)!));
    }
    let n = max;
    if (this.opts.capacityPerCall !== undefined && n > this.opts.capacityPerCall) {
      if (min > this.opts.capacityPerCall) throw Object.assign(new Error('We currently do not have sufficient capacity in the Availability Zone you requested.'), { code: 'InsufficientInstanceCapacity', status: 500 });
      n = this.opts.capacityPerCall;
    }
    if (this.opts.instanceLimit !== undefined) {
      const room = this.opts.instanceLimit - this.live().length;
      if (room < min) throw Object.assign(new Error(`You have requested more instances (${max}) than your current instance limit of ${this.opts.instanceLimit} allows.`), { code: 'InstanceLimitExceeded' });
      n = Math.min(n, room);
    }
    const group = p['SecurityGroupId.1'] ?? p['NetworkInterface.1.SecurityGroupId.1'];
    const reservation = this.id('r');
    const made: StubInstance[] = [];
    for (let k = 0; k < n; k++) {
      const num = this.launched++;
      const addr = this.opts.address?.(num) ?? { private: '127.0.0.1', public: '127.0.0.1' };
      const inst: StubInstance = {
        id: this.id('i'),
        imageId: p.ImageId ?? '',
        type: p.InstanceType ?? 'm1.small',
        state: 'pending',
        private: addr.private,
        public: addr.public,
        launchIndex: k,
        reservation,
        tags: specTags(p, 'instance'),
        dies: this.opts.dies?.(num),
        bootCalls: this.opts.bootCalls?.(num, specTags(p, 'instance')) ?? 1,
        keyName: p.KeyName,
        groups: group ? [group] : [],
      };
      this.instances.set(inst.id, inst);
      made.push(inst);
    }
    if (p.ClientToken) this.tokens.set(p.ClientToken, made.map((i) => i.id));
    return this.reservation(made);
  }

  private reservation(made: StubInstance[]): Record<string, unknown> {
    return { reservationId: made[0]?.reservation ?? this.id('r'), ownerId: '000000000000', instancesSet: made.map(instanceXml) };
  }

  private describe(p: Record<string, string>, filters: Record<string, string[]>): Record<string, unknown> {
    // Time passes between calls: pending instances run (or die), shutting-down ones terminate.
    for (const i of this.instances.values()) {
      if (i.state === 'pending' && --i.bootCalls <= 0) i.state = i.dies ? 'terminated' : 'running';
      else if (i.state === 'shutting-down') i.state = 'terminated';
      else if (i.state === 'stopping') i.state = 'stopped';
    }
    const ids = listOf(p, 'InstanceId');
    if (ids.length) {
      const missing = ids.find((id) => !this.instances.has(id));
      if (missing) throw Object.assign(new Error(`The instance ID '${missing}' does not exist`), { code: 'InvalidInstanceID.NotFound' });
    }
    let found = [...this.instances.values()].filter(
      (i) =>
        (!ids.length || ids.includes(i.id)) &&
        matchTags(i.tags, filters) &&
        (!filters['instance-state-name'] || filters['instance-state-name'].includes(i.state)),
    );
    const size = Math.min(Number(p.MaxResults ?? 1e9), this.opts.pageSize ?? 1000);
    const start = Number(p.NextToken ?? 0);
    const next = start + size < found.length ? String(start + size) : undefined;
    found = found.slice(start, start + size);
    const byRes = new Map<string, StubInstance[]>();
    for (const i of found) byRes.set(i.reservation, [...(byRes.get(i.reservation) ?? []), i]);
    return {
      reservationSet: [...byRes].map(([r, list]) => ({ reservationId: r, ownerId: '000000000000', instancesSet: list.map(instanceXml) })),
      ...(next ? { nextToken: next } : {}),
    };
  }
}

function state(name: StubInstance['state']) {
  return { code: { pending: 0, running: 16, 'shutting-down': 32, terminated: 48, stopping: 64, stopped: 80 }[name], name };
}

function instanceXml(i: StubInstance) {
  return {
    instanceId: i.id,
    imageId: i.imageId,
    instanceState: state(i.state),
    privateIpAddress: i.private,
    ...(i.public ? { ipAddress: i.public } : {}),
    amiLaunchIndex: i.launchIndex,
    instanceType: i.type,
    keyName: i.keyName,
    ...(i.state === 'terminated' && i.dies ? { stateReason: { code: 'Server.InternalError', message: 'Server.InternalError: Internal error on launch' } } : {}),
    groupSet: i.groups.map((groupId) => ({ groupId })),
    tagSet: tagSet(i.tags),
  };
}

function tagSet(tags: Tags) {
  return Object.entries(tags).map(([key, value]) => ({ key, value }));
}

/** `Prefix.1.Member`, `Prefix.2.Member`... (or `Prefix.1`, `Prefix.2`... without a member). */
function listOf(p: Record<string, string>, prefix: string, member?: string): string[] {
  const out: string[] = [];
  for (let i = 1; ; i++) {
    const v = p[member ? `${prefix}.${i}.${member}` : `${prefix}.${i}`];
    if (v === undefined) return out;
    out.push(v);
  }
}

function parseFilters(p: Record<string, string>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 1; p[`Filter.${i}.Name`] !== undefined; i++) out[p[`Filter.${i}.Name`]!] = listOf(p, `Filter.${i}.Value`);
  return out;
}

function matchTags(tags: Tags, filters: Record<string, string[]>): boolean {
  return Object.entries(filters).every(([k, v]) => !k.startsWith('tag:') || v.includes(tags[k.slice(4)] ?? '\0'));
}

function specTags(p: Record<string, string>, type: string): Tags {
  const tags: Tags = {};
  for (let i = 1; p[`TagSpecification.${i}.ResourceType`] !== undefined; i++) {
    if (p[`TagSpecification.${i}.ResourceType`] !== type) continue;
    for (let j = 1; p[`TagSpecification.${i}.Tag.${j}.Key`] !== undefined; j++) tags[p[`TagSpecification.${i}.Tag.${j}.Key`]!] = p[`TagSpecification.${i}.Tag.${j}.Value`] ?? '';
  }
  return tags;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Objects to EC2-style XML: arrays become `<item>` lists. */
function xml(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (Array.isArray(v)) return v.map((x) => `<item>${xml(x)}</item>`).join('');
  if (typeof v === 'object') return Object.entries(v as object).map(([k, x]) => (x === undefined ? '' : `<${k}>${xml(x)}</${k}>`)).join('');
  return esc(String(v));
}
