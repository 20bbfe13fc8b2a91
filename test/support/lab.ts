/** Helpers for lab integration tests: run the real CLI, reach lab hosts with the system ssh client, find leftovers. */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tempDir } from './tmp.js';

const execFileP = promisify(execFile);
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin/swarmform');

export const isRoot = process.getuid?.() === 0;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A private state home for one test file, so tests never touch the user's clusters. */
export function testHome(): string {
  return tempDir('swarmform-test-');
}

/** Runs bin/swarmform with args; never throws on a non-zero exit. */
export function cli(args: string[], env: Record<string, string>, timeoutMs = 15 * 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 255, stdout, stderr });
    });
  });
}

/** Writes an inventory derived from a shipped one with another cluster name and subnet (so tests never collide). */
export function deriveInventory(dir: string, from: string, cluster: string, subnet: string, edit: (text: string) => string = (t) => t): string {
  let text = readFileSync(join(ROOT, from), 'utf8');
  text = text.replace(/^cluster:.*$/m, `cluster: ${cluster}`).replace(/198\.18\.\d+\.0\/24/g, subnet);
  const path = join(dir, `${cluster}.yml`);
  writeFileSync(path, edit(text));
  return path;
}

export interface StateMachine {
  name: string;
  role: string;
  privateAddress: string;
  ssh: { host: string; port: number; user: string; keyPath?: string };
}

/** Machines recorded for a cluster (used only to find addresses and keys; checks go through Docker itself). */
export function machinesOf(home: string, cluster: string): StateMachine[] {
  const p = join(home, cluster, 'state.json');
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as { machines: StateMachine[] }).machines : [];
}

/** Runs a command on a lab host with the system ssh client. */
export async function onHost(m: StateMachine, command: string): Promise<CliResult> {
  try {
    const { stdout, stderr } = await execFileP(
      'ssh',
      ['-i', m.ssh.keyPath!, '-p', String(m.ssh.port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', `${m.ssh.user}@${m.ssh.host}`, command],
      { timeout: 60_000, maxBuffer: 16 << 20 },
    );
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 255, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/**
 * `docker service ls` on `m` as `NAME RUNNING/DESIRED` lines, polled until it equals `expected` or `timeoutMs` passes;
 * returns the last answer. Running can exceed desired for a few seconds after nodes came back or were replaced (the
 * old task still runs while the orchestrator shuts it down: CI once saw `web 3/2` right after `up`), so a test waits
 * for the settled count instead of reading it once.
 */
export async function settledReplicas(m: StateMachine, expected: string, timeoutMs = 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const seen = (await onHost(m, "docker service ls --format '{{.Name}} {{.Replicas}}'")).stdout.trim();
    if (seen === expected || Date.now() > deadline) return seen;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** What a cluster's lab could have left on this machine: namespaces, processes in them, rules, bridges, dirs. */
export async function labLeftovers(cluster: string): Promise<string[]> {
  const found: string[] = [];
  const { stdout: ns } = await execFileP('ip', ['netns', 'list']);
  for (const line of ns.split('\n')) if (line.startsWith(`sf-${cluster}-`)) found.push(`netns ${line.split(' ')[0]}`);
  const { stdout: rules } = await execFileP('iptables', ['-S', 'FORWARD']).catch(() => ({ stdout: '' }));
  for (const line of rules.split('\n')) if (line.includes(`swarmform:${cluster}`)) found.push(`rule ${line}`);
  const root = process.env.SWARMFORM_LAB_ROOT ?? '/var/lib/swarmform/lab';
  if (existsSync(join(root, cluster))) found.push(`dir ${join(root, cluster)}`);
  // Processes of the cluster's hosts (sshd, dockerd, containerd, shims) live in mount namespaces whose mounts come
  // from the cluster's lab directory.
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/mountinfo`, 'utf8').includes(`/lab/${cluster}/`)) {
        found.push(`process ${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').slice(0, 80)}`);
      }
    } catch {
      // the process ended while we looked
    }
  }
  return found;
}

/** Parses the last JSON line of a --json run that has the given type. */
export function lastJson<T = Record<string, unknown>>(stdout: string, type?: string): T | undefined {
  const lines = stdout.trim().split('\n').reverse();
  for (const l of lines) {
    try {
      const o = JSON.parse(l) as { type?: string };
      if (!type || o.type === type) return o as T;
    } catch {
      /* not JSON */
    }
  }
  return undefined;
}

export interface LabInventory {
  cluster: string;
  subnet: string;
  /** Workers beside the 3 managers (mgr-1..3); default 3. */
  workers?: number;
  /** Replicas of the service `web` (busybox sleeping); default 2. */
  replicas?: number;
  /** Run `web` on workers only (default true). */
  onWorkers?: boolean;
  /** A `swarm:` flow mapping's contents, e.g. `autolock: true`. */
  swarm?: string;
}

/** Writes the usual lab test cluster (3 managers, N workers, one service `web`) to `file`. */
export function writeLabInventory(file: string, o: LabInventory): void {
  writeFileSync(
    file,
    [
      `cluster: ${o.cluster}`,
      `providers: { lab: { subnet: ${o.subnet} } }`,
      ...(o.swarm ? [`swarm: { ${o.swarm} }`] : []),
      'groups:',
      '  managers: { role: manager, name: "mgr-[1:3]" }',
      `  workers: { role: worker, name: "worker-[1:${o.workers ?? 3}]" }`,
      'workloads:',
      '  services:',
      '    - name: web',
      '      image: swarmform/busybox:latest',
      `      replicas: ${o.replicas ?? 2}`,
      '      command: ["sleep", "1000000"]',
      ...(o.onWorkers === false ? [] : ['      constraints: ["node.role == worker"]']),
      '',
    ].join('\n'),
  );
}

/** `down --force` of a test's cluster, then no leftover of it on this machine (for `after`). */
export async function downAndCheck(inventory: string, env: Record<string, string>, cluster: string): Promise<void> {
  if (!isRoot) return;
  const r = await cli(['down', '--force', '-i', inventory], env);
  if (r.code !== 0) console.error(r.stderr);
  assert.deepEqual(await labLeftovers(cluster), []);
}
