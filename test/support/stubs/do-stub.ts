/**
 * A loopback stub of the DigitalOcean API endpoints the digitalocean provider uses: droplets (multi-create, list by
 * tag with pages, delete by id and by tag), firewalls, account SSH keys and tags. It sends the RateLimit-* headers,
 * can answer 429 for a while, enforce a droplet limit, and only hands out the addresses it is given.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DoStubOptions {
  /** Addresses of the n-th droplet created (0-based); default 127.0.0.1 for both. */
  address?: (n: number) => { private: string; public: string };
  /** Answer the next N requests matching `METHOD /path` (ids folded to {id}) with 429. */
  throttle?: Record<string, number>;
  /** Most droplets in the account: a create that would pass it is refused with 422. */
  dropletLimit?: number;
  /** RateLimit-Limit per window. */
  limit?: number;
  /** Droplet list calls a droplet (by name) stays `new` for; default 1 (active at the next). */
  bootCalls?: (name: string) => number;
}

export interface DoStubDroplet {
  id: number;
  name: string;
  status: 'new' | 'active' | 'off';
  /** List calls left before a new droplet is active. */
  bootCalls?: number;
  tags: string[];
  region: string;
  size: string;
  image: string;
  private: string;
  public: string;
  vpc?: string;
  ssh_keys: string[];
}

export interface DoCall {
  method: string;
  path: string;
  /** Path with numeric ids folded to {id}. */
  route: string;
  query: Record<string, string>;
  body?: unknown;
  authorized: boolean;
  /** When the request arrived (ms since the epoch). */
  at: number;
  /** RateLimit-Remaining sent with its answer. */
  remainingAfter: number;
  /** RateLimit-Reset (epoch seconds) sent with its answer. */
  resetSent?: number;
}

export class DoStub {
  server!: Server;
  url = '';
  readonly calls: DoCall[] = [];
  readonly droplets = new Map<number, DoStubDroplet>();
  readonly firewalls = new Map<string, Record<string, unknown>>();
  readonly keys = new Map<number, { id: number; name: string; public_key: string; fingerprint: string }>();
  readonly tags = new Set<string>();
  private created = 0;
  private seq = 1000;
  remaining: number;

  constructor(public token: string, public opts: DoStubOptions = {}) {
    this.remaining = opts.limit ?? 5000;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v2`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections?.();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  count(route: string): number {
    return this.calls.filter((c) => c.route === route).length;
  }

  /** What still carries the cluster's tag, plus the firewall and uploaded key named after it. */
  tagged(cluster: string): string[] {
    const tag = `swarmform:${cluster}`;
    const out: string[] = [];
    for (const d of this.droplets.values()) if (d.tags.includes(tag)) out.push(`droplet ${d.name}`);
    for (const f of this.firewalls.values()) if ((f.tags as string[]).includes(tag) || f.name === `swarmform-${cluster}`) out.push(`firewall ${f.name}`);
    for (const k of this.keys.values()) if (k.name === `swarmform-${cluster}`) out.push(`ssh key ${k.name}`);
    for (const t of this.tags) if (t === tag || t.startsWith(`${tag}:`)) out.push(`tag ${t}`);
    return out;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw = '';
    for await (const c of req) raw += c;
    const u = new URL(req.url ?? '/', 'http://stub');
    const path = u.pathname.replace(/^\/v2/, '');
    const route = `${req.method} ${path.replace(/\/\d+(?=\/|$)/g, '/{id}')}`;
    const query = Object.fromEntries(u.searchParams);
    const body = raw ? JSON.parse(raw) : undefined;
    const authorized = req.headers.authorization === `Bearer ${this.token}`;
    const call: DoCall = { method: req.method ?? '', path, route, query, body, authorized, at: Date.now(), remainingAfter: Infinity };
    this.calls.push(call);
    const reset = Math.floor(Date.now() / 1000) + 1;
    const send = (status: number, data?: unknown, extra: Record<string, string> = {}) => {
      this.remaining = Math.max(0, this.remaining - 1);
      call.remainingAfter = this.remaining;
      call.resetSent = reset;
      res.writeHead(status, {
        'content-type': 'application/json',
        'ratelimit-limit': String(this.opts.limit ?? 5000),
        'ratelimit-remaining': String(this.remaining),
        'ratelimit-reset': String(reset),
        ...extra,
      });
      res.end(data === undefined ? '' : JSON.stringify(data));
    };
    if (!authorized) return send(401, { id: 'unauthorized', message: 'Unable to authenticate you' });
    const left = this.opts.throttle?.[route] ?? 0;
    if (left > 0) {
      this.opts.throttle![route] = left - 1;
      return send(429, { id: 'too_many_requests', message: 'API Rate limit exceeded.' }, { 'retry-after': '0' });
    }
    try {
      const [status, data] = this.route(req.method ?? 'GET', path, query, body);
      send(status, data);
    } catch (e) {
      const err = e as { status?: number; id?: string; message: string };
      send(err.status ?? 500, { id: err.id ?? 'server_error', message: err.message });
    }
  }

  private page<T>(items: T[], field: string, query: Record<string, string>, path: string): [number, unknown] {
    const per = Math.min(200, Number(query.per_page ?? 20));
    const page = Number(query.page ?? 1);
    const slice = items.slice((page - 1) * per, page * per);
    const next = page * per < items.length ? `https://api.digitalocean.com/v2${path}?page=${page + 1}&per_page=${per}` : undefined;
    return [200, { [field]: slice, links: next ? { pages: { next } } : {}, meta: { total: items.length } }];
  }

  private dropletJson(d: DoStubDroplet) {
    return {
      id: d.id,
      name: d.name,
      status: d.status,
      tags: d.tags,
      region: { slug: d.region },
      size_slug: d.size,
      image: { slug: d.image },
      vpc_uuid: d.vpc,
      networks: d.status === 'active' ? { v4: [{ ip_address: d.private, type: 'private' }, { ip_address: d.public, type: 'public' }], v6: [] } : { v4: [], v6: [] },
    };
  }

  private route(method: string, path: string, query: Record<string, string>, body: Record<string, unknown> | undefined): [number, unknown] {
    const err = (status: number, id: string, message: string) => Object.assign(new Error(message), { status, id });
    let m: RegExpExecArray | null;
    if (method === 'GET' && path === '/droplets') {
      // Time passes between calls: new droplets become active.
      for (const d of this.droplets.values()) if (d.status === 'new' && (d.bootCalls === undefined || --d.bootCalls <= 0)) d.status = 'active';
      const list = [...this.droplets.values()].filter((d) => !query.tag_name || d.tags.includes(query.tag_name));
      return this.page(list.map((d) => this.dropletJson(d)), 'droplets', query, path);
    }
    if (method === 'POST' && path === '/droplets') {
      const names = (body?.names as string[] | undefined) ?? (body?.name ? [body.name as string] : []);
      if (names.length > 10) throw err(422, 'unprocessable_entity', 'a maximum of 10 droplets may be created at once');
      if (this.opts.dropletLimit !== undefined && this.droplets.size + names.length > this.opts.dropletLimit) {
        throw err(422, 'forbidden', `creating this/these droplet(s) will exceed your droplet limit (${this.opts.dropletLimit})`);
      }
      const made = names.map((name) => {
        const n = this.created++;
        const a = this.opts.address?.(n) ?? { private: '127.0.0.1', public: '127.0.0.1' };
        const d: DoStubDroplet = {
          id: ++this.seq,
          name,
          status: 'new',
          bootCalls: this.opts.bootCalls?.(name),
          tags: (body?.tags as string[]) ?? [],
          region: String(body?.region),
          size: String(body?.size),
          image: String(body?.image),
          private: a.private,
          public: a.public,
          vpc: body?.vpc_uuid as string | undefined,
          ssh_keys: (body?.ssh_keys as string[]) ?? [],
        };
        for (const t of d.tags) this.tags.add(t);
        this.droplets.set(d.id, d);
        return this.dropletJson(d);
      });
      return [202, { droplets: made }];
    }
    if (method === 'POST' && (m = /^\/droplets\/(\d+)\/actions$/.exec(path))) {
      const d = this.droplets.get(Number(m[1]));
      if (!d) throw err(404, 'not_found', 'The resource you were accessing could not be found.');
      const type = String(body?.type);
      if (type === 'power_on') d.status = d.status === 'off' ? 'new' : d.status;
      else if (type === 'power_off') d.status = 'off';
      else throw err(422, 'unprocessable_entity', `the stub does not implement action ${type}`);
      return [201, { action: { id: ++this.seq, status: 'in-progress', type, resource_id: d.id, resource_type: 'droplet' } }];
    }
    if (method === 'DELETE' && path === '/droplets' && query.tag_name) {
      for (const d of [...this.droplets.values()]) if (d.tags.includes(query.tag_name)) this.droplets.delete(d.id);
      return [204, undefined];
    }
    if (method === 'DELETE' && (m = /^\/droplets\/(\d+)$/.exec(path))) {
      if (!this.droplets.delete(Number(m[1]))) throw err(404, 'not_found', 'The resource you were accessing could not be found.');
      return [204, undefined];
    }
    if (method === 'GET' && path === '/firewalls') return this.page([...this.firewalls.values()], 'firewalls', query, path);
    if (method === 'POST' && path === '/firewalls') {
      const id = `fw-${++this.seq}`;
      const fw = { ...body, id, status: 'succeeded' };
      this.firewalls.set(id, fw);
      return [202, { firewall: fw }];
    }
    if (method === 'PUT' && (m = /^\/firewalls\/([^/]+)$/.exec(path))) {
      if (!this.firewalls.has(m[1]!)) throw err(404, 'not_found', 'no such firewall');
      this.firewalls.set(m[1]!, { ...body, id: m[1] });
      return [200, { firewall: this.firewalls.get(m[1]!) }];
    }
    if (method === 'DELETE' && (m = /^\/firewalls\/([^/]+)$/.exec(path))) {
      if (!this.firewalls.delete(m[1]!)) throw err(404, 'not_found', 'no such firewall');
      return [204, undefined];
    }
    if (method === 'GET' && path === '/account/keys') return this.page([...this.keys.values()], 'ssh_keys', query, path);
    if (method === 'POST' && path === '/account/keys') {
      const key = String(body?.public_key);
      const fp = fingerprint(key);
      if ([...this.keys.values()].some((k) => k.fingerprint === fp)) throw err(422, 'unprocessable_entity', 'SSH Key is already in use on your account');
      const k = { id: ++this.seq, name: String(body?.name), public_key: key, fingerprint: fp };
      this.keys.set(k.id, k);
      return [201, { ssh_key: k }];
    }
    if (method === 'DELETE' && (m = /^\/account\/keys\/(.+)$/.exec(path))) {
      const k = [...this.keys.values()].find((x) => String(x.id) === m![1] || x.fingerprint === decodeURIComponent(m![1]!));
      if (!k) throw err(404, 'not_found', 'no such key');
      this.keys.delete(k.id);
      return [204, undefined];
    }
    if (method === 'DELETE' && (m = /^\/tags\/(.+)$/.exec(path))) {
      const t = decodeURIComponent(m[1]!);
      if (!this.tags.delete(t)) throw err(404, 'not_found', 'no such tag');
      return [204, undefined];
    }
    throw err(404, 'not_found', `the stub does not implement ${method} ${path}`);
  }
}


function fingerprint(key: string): string {
  const blob = Buffer.from(key.trim().split(/\s+/)[1] ?? '', 'base64');
  return createHash('md5').update(blob).digest('hex').match(/../g)!.join(':');
}
