/**
 * Harness for the orchestration unit tests: the real CLI, run in this process through `main` (src/cli/main.ts), on the
 * simulated provider with its latencies scaled to almost nothing. Every command a simulated host is sent, every file
 * written to it and every Engine API call its engine gets is recorded per host, in order, by wrapping the simulated
 * transport (SimRemote) and the simulated engine's modem: the tests assert on what the hosts saw and ended with, not on
 * swarmform's own bookkeeping.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { SimRemote } from '../../src/providers/sim/remote.js';
import { type SimWorld, worldOf } from '../../src/providers/sim/world.js';
import { tempDir } from './tmp.js';

export interface Seen {
  host: string;
  /** `run`: a shell command (its text); `put`: a file written (its path); `api`: an Engine API call (`METHOD /path`). */
  kind: 'run' | 'put' | 'api';
  what: string;
  /** For `api` calls, the request body (POSTs). */
  body?: unknown;
}

/** Everything every simulated host saw, in the order it arrived (across hosts too). */
export const seen: Seen[] = [];

/** Answers a test puts in front of the simulated engine (return undefined to let the model answer). */
export type EngineHook = (host: string, method: string, path: string, body: unknown) => { status: number; json: unknown } | undefined;
const engineHooks: EngineHook[] = [];
export function onEngine(hook: EngineHook): void {
  engineHooks.push(hook);
}

/** Answers a test gives to shell commands the simulated host does not model (return undefined to let the model answer). */
export type CommandHook = (host: string, command: string) => { code: number; stdout: string; stderr: string } | undefined;
const commandHooks: CommandHook[] = [];
export function onCommand(hook: CommandHook): void {
  commandHooks.push(hook);
}

let installed = false;
function install(): void {
  if (installed) return;
  installed = true;
  const proto = SimRemote.prototype as unknown as Record<string, (...a: unknown[]) => unknown> & { name: string };
  const run = proto.run!;
  const putContent = proto.putContent!;
  const putFile = proto.putFile!;
  const engine = proto.engine!;
  proto.run = async function (this: SimRemote, command: unknown, opts: unknown) {
    seen.push({ host: this.name, kind: 'run', what: String(command).trim() });
    for (const h of commandHooks) {
      const r = h(this.name, String(command).trim());
      if (r) return r;
    }
    return run.call(this, command, opts);
  };
  proto.putContent = async function (this: SimRemote, content: unknown, path: unknown) {
    seen.push({ host: this.name, kind: 'put', what: String(path) });
    return putContent.call(this, content, path);
  };
  proto.putFile = async function (this: SimRemote, local: unknown, path: unknown) {
    seen.push({ host: this.name, kind: 'put', what: String(path) });
    return putFile.call(this, local, path);
  };
  proto.engine = function (this: SimRemote) {
    const docker = engine.call(this) as { modem: { dial: (o: DialOptions, cb: (e: unknown, d: unknown) => void) => void; recorded?: boolean } };
    const modem = docker.modem;
    if (!modem.recorded) {
      modem.recorded = true;
      const dial = modem.dial.bind(modem);
      const host = this.name;
      modem.dial = (o, cb) => {
        const path = o.path.replace(/\?.*$/, '');
        const body = o.method === 'POST' ? ((o.options?._body as unknown) ?? o.options) : undefined;
        seen.push({ host, kind: 'api', what: `${o.method} ${path}`, body });
        for (const h of engineHooks) {
          const a = h(host, o.method, path, body);
          if (a) {
            if (o.statusCodes[a.status] === true) return cb(null, a.json);
            const e = Object.assign(new Error(`(HTTP code ${a.status}) ${String((a.json as { message?: string })?.message ?? '')}`), { statusCode: a.status, json: a.json });
            return cb(e, null);
          }
        }
        dial(o, cb);
      };
    }
    return docker as unknown;
  };
}
interface DialOptions {
  path: string;
  method: string;
  options?: Record<string, unknown>;
  statusCodes: Record<number, boolean | string>;
}

export interface Sim {
  cluster: string;
  inventory: string;
  home: string;
  /** Runs the CLI in this process; its output is captured, its exit code returned (process.exitCode is restored). */
  cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  world(): SimWorld;
  /** What `host` saw since `mark` (an index into `seen`), in order. */
  on(host: string, since?: number): Seen[];
}

let clusters = 0;
/**
 * A simulated cluster of `managers` + `workers` hosts named mgr-N and wrk-N, its inventory in a temporary directory
 * and its state under a private SWARMFORM_HOME. `extra` is appended to the inventory's `providers.sim` block.
 */
export function simCluster(opts: { managers: number; workers: number; extraSim?: string; swarm?: string }): Sim {
  install();
  const dir = tempDir('swarmform-orch-');
  const cluster = `orch${process.pid}x${++clusters}`;
  const inventory = join(dir, `${cluster}.yml`);
  writeFileSync(
    inventory,
    [
      `cluster: ${cluster}`,
      'provider: sim',
      'providers:',
      '  sim:',
      '    seed: 1',
      '    timeScale: 0.0001',
      ...(opts.extraSim ? opts.extraSim.split('\n').map((l) => `    ${l}`) : []),
      'swarm:',
      ...(opts.swarm ? opts.swarm.split('\n').map((l) => `  ${l}`) : ['  joinConcurrency: 4']),
      'groups:',
      '  managers:',
      '    role: manager',
      `    name: mgr-[1:${opts.managers}]`,
      ...(opts.workers
        ? ['  workers:', '    role: worker', `    name: wrk-[1:${opts.workers}]`]
        : []),
      '',
    ].join('\n'),
  );
  const home = join(dir, 'home');
  return {
    cluster,
    inventory,
    home,
    // Before a `--`: the words after it are the remote command.
    cli: (args) => {
      const dd = args.indexOf('--');
      return inProcess(dd < 0 ? [...args, '-i', inventory] : [...args.slice(0, dd), '-i', inventory, ...args.slice(dd)], home);
    },
    world: () => {
      const w = worldOf(cluster);
      if (!w) throw new Error(`no simulated world for ${cluster} in this process`);
      return w;
    },
    on: (host, since = 0) => seen.slice(since).filter((s) => s.host === host),
  };
}

let busy: Promise<unknown> = Promise.resolve();
/** The CLI in this process with stdout and stderr captured; one at a time (process-wide streams and env). */
function inProcess(args: string[], home: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const go = async () => {
    const prevHome = process.env.SWARMFORM_HOME;
    const prevCode = process.exitCode;
    process.env.SWARMFORM_HOME = home;
    process.exitCode = 0;
    let stdout = '';
    let stderr = '';
    const out = process.stdout.write.bind(process.stdout);
    const err = process.stderr.write.bind(process.stderr);
    // Only strings are the CLI's: the test runner's own messages to its parent go out as buffers and must pass.
    process.stdout.write = ((c: string | Uint8Array, ...rest: never[]) => (typeof c === 'string' ? ((stdout += c), true) : out(c, ...rest))) as typeof process.stdout.write;
    process.stderr.write = ((c: string | Uint8Array, ...rest: never[]) => (typeof c === 'string' ? ((stderr += c), true) : err(c, ...rest))) as typeof process.stderr.write;
    try {
      await main(args);
    } finally {
      process.stdout.write = out;
      process.stderr.write = err;
      if (prevHome === undefined) delete process.env.SWARMFORM_HOME;
      else process.env.SWARMFORM_HOME = prevHome;
    }
    const code = Number(process.exitCode ?? 0);
    process.exitCode = prevCode;
    return { code, stdout, stderr };
  };
  const p = busy.then(go, go);
  busy = p.catch(() => undefined);
  return p;
}

/** A short name for one thing a host saw: the bootstrap step a script belongs to, or the API call. */
export function label(s: Seen): string {
  if (s.kind === 'api') return s.what.replace(/\/[0-9a-z]{20,}(?=\/|$)/g, '/{id}');
  if (s.kind === 'put') return `put ${s.what}`;
  const c = s.what;
  if (c.includes('echo "os_id=')) return 'facts';
  if (/apt-get (\S+ )*install /.test(c)) return 'install engine';
  if (c === 'command -v dockerd') return 'which dockerd';
  const ctl = /^systemctl (start|restart|stop) docker$/.exec(c);
  if (ctl) return `systemctl ${ctl[1]} docker`;
  if (c.startsWith('iptables -S SWARMFORM')) return 'firewall read';
  if (c.includes('iptables-restore')) return 'firewall apply';
  if (c.includes('/dev/tcp/') || c.startsWith('nc -z')) return 'port check';
  if (c.startsWith('cat ')) return `read ${c.split(/\s+/)[1]}`;
  if (c.startsWith('mkdir -p')) return 'mkdir';
  if (c.startsWith('systemctl daemon-reload')) return 'enable unit';
  return c.split('\n')[0]!.slice(0, 60);
}

/** Labels of what `host` saw, with consecutive repeats of the same label collapsed (polls, retries). */
export function steps(list: Seen[], filter: (s: Seen) => boolean = () => true): string[] {
  const out: string[] = [];
  for (const s of list.filter(filter)) {
    const l = label(s);
    if (out.at(-1) !== l) out.push(l);
  }
  return out;
}

/** Position of the first thing in `seen` matching, or -1. */
export function firstIndex(pred: (s: Seen) => boolean, from = 0): number {
  for (let i = from; i < seen.length; i++) if (pred(seen[i]!)) return i;
  return -1;
}
