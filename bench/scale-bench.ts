/**
 * Scale benchmark of `up` on large lab clusters (not a test): 3 managers + N workers, real dockerd in every host.
 *
 *   sudo node --import tsx bench/scale-bench.ts [--inventory inventories/lab-150.yml] [--raw-window 25] [workers ...]
 *   (default sizes: 30 75 150; needs /usr/bin/time from Debian's `time`; SWARMFORM_DIST picks the build)
 *
 * For each size it: runs `up` from nothing with --json (per-phase wall time, the tool's CPU time and peak RSS, joins
 * per second, the managers' dockerd CPU during the swarm phase, sampled from /proc); measures memory per host by
 * process type (RSS and PSS from /proc/PID/smaps_rollup); times `status`; draws the join timeline (SVG) from the
 * events; makes every node leave and forms the swarm again with raw `docker swarm join` over ssh, `--raw-window` joins
 * in flight spread over the managers (all at once below 40 workers, as lab.md measured); makes every node leave again
 * and times swarmform's `swarm` phase alone on the same hosts; then `down`. Figures go to bench/out/scale-*.
 * Run it on a quiet machine: it checks that no lab host of another cluster is up and stops if one is (--shared to skip).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cli, deriveInventory, machinesOf, onHost, ROOT, testHome, type StateMachine } from '../test/support/lab.js';
import { readEvents, timelineSvg } from './timeline.js';
import { benchArgs, countReady, joinFigures, leaveAll, refuseBusyMachine } from './join-figures.js';
import { timedCli } from './timed-cli.js';

const execFileP = promisify(execFile);
const { args, opt } = benchArgs();
const from = opt('--inventory', 'inventories/lab-150.yml');
const rawWindow = Number(opt('--raw-window', '25'));
const cluster = opt('--cluster', 'scale-bench');
const subnet = opt('--subnet', '198.18.61.0/24');
const shared = args.includes('--shared');
const sizes = args.filter((a) => /^\d+$/.test(a)).map(Number);
const workerCounts = sizes.length ? sizes : [30, 75, 150];
const outDir = join(ROOT, 'bench/out');
mkdirSync(outDir, { recursive: true });
const CLK_TCK = 100;

function resultOf(stdout: string): { phaseMs: Record<string, number>; changed: number; failures: unknown[] } {
  const line = stdout.trim().split('\n').reverse().find((l) => l.includes('"type":"result"'));
  if (!line) throw new Error(`no result line in:\n${stdout.slice(-2000)}`);
  return JSON.parse(line);
}

/** Inode of a named network namespace, or undefined. */
function netnsIno(name: string): number | undefined {
  try {
    return statSync(`/run/netns/${name}`).ino;
  } catch {
    return undefined;
  }
}

/** Processes whose network namespace is one of `inos`: pid, comm, utime+stime ticks. */
function procsIn(inos: Set<number>): { pid: number; comm: string; ticks: number; ino: number }[] {
  const out: { pid: number; comm: string; ticks: number; ino: number }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const m = /net:\[(\d+)\]/.exec(readlinkSync(`/proc/${d}/ns/net`));
      const ino = m ? Number(m[1]) : NaN;
      if (!inos.has(ino)) continue;
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const f = stat.slice(close + 2).split(' ');
      out.push({ pid: Number(d), comm, ticks: Number(f[11]) + Number(f[12]), ino });
    } catch {
      // ended while we looked
    }
  }
  return out;
}

/**
 * Samples the managers' dockerd and containerd CPU (ticks, cumulative per pid) once a second while `up` runs; the
 * swarm phase's share is the difference between the samples around its start and end events.
 */
function sampleManagers(managerNetns: string[]): { stop: () => { ts: number; ticks: number }[] } {
  const samples: { ts: number; ticks: number }[] = [];
  const last = new Map<number, number>();
  const tick = () => {
    const inos = new Set(managerNetns.map(netnsIno).filter((x): x is number => x !== undefined));
    if (inos.size === 0) return;
    for (const p of procsIn(inos)) if (p.comm === 'dockerd' || p.comm === 'containerd') last.set(p.pid, p.ticks);
    samples.push({ ts: Date.now(), ticks: [...last.values()].reduce((a, b) => a + b, 0) });
  };
  const timer = setInterval(tick, 1000);
  return {
    stop: () => {
      clearInterval(timer);
      tick();
      return samples;
    },
  };
}

/** CPU seconds used between two times, from cumulative samples. */
function cpuBetween(samples: { ts: number; ticks: number }[], t0: number, t1: number): number {
  const at = (t: number) => {
    let best = samples[0];
    for (const s of samples) if (s.ts <= t) best = s;
    return best?.ticks ?? 0;
  };
  return (at(t1) - at(t0)) / CLK_TCK;
}

/** RSS and PSS (MB) by process name over the cluster's processes, and their count. */
function memoryByType(inos: Set<number>): Record<string, { n: number; rssMb: number; pssMb: number }> {
  const out: Record<string, { n: number; rssMb: number; pssMb: number }> = {};
  for (const p of procsIn(inos)) {
    try {
      const s = readFileSync(`/proc/${p.pid}/smaps_rollup`, 'utf8');
      const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
      const e = (out[p.comm] ??= { n: 0, rssMb: 0, pssMb: 0 });
      e.n++;
      e.rssMb += kb('Rss') / 1024;
      e.pssMb += kb('Pss') / 1024;
    } catch {
      // ended while we looked
    }
  }
  return out;
}

async function memUsedMb(): Promise<number> {
  const { stdout } = await execFileP('free', ['-m']);
  return Number(stdout.split('\n')[1]!.trim().split(/\s+/)[2]);
}

async function must(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout;
}


/**
 * The same joins issued directly with the docker CLI over ssh: init, managers one by one, then the workers with at
 * most `window` in flight spread over the managers (all at once under 40 workers); until all Ready.
 */
async function rawJoins(machines: StateMachine[], window: number, ingress: boolean): Promise<{ s: number; failed: number }> {
  const managers = machines.filter((m) => m.role === 'manager');
  const [lead, ...others] = managers;
  const workers = machines.filter((m) => m.role === 'worker');
  const t0 = performance.now();
  await must(onHost(lead!, `docker swarm init --advertise-addr ${lead!.privateAddress} >/dev/null`));
  const wt = (await must(onHost(lead!, 'docker swarm join-token -q worker'))).trim();
  const mt = (await must(onHost(lead!, 'docker swarm join-token -q manager'))).trim();
  for (const m of others) await must(onHost(m, `docker swarm join --advertise-addr ${m.privateAddress} --token ${mt} ${lead!.privateAddress}:2377 >/dev/null`));
  // The same swarm as the inventory's: without the ingress network when `swarm.ingress: false`.
  if (!ingress) await must(onHost(lead!, 'echo y | docker network rm ingress >/dev/null'));
  const inFlight = workers.length < 40 ? workers.length : window;
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let i = next++; i < workers.length; i = next++) {
        const w = workers[i]!;
        const via = managers[i % managers.length]!;
        const r = await onHost(w, `docker swarm join --advertise-addr ${w.privateAddress} --token ${wt} ${via.privateAddress}:2377 >/dev/null 2>&1`);
        if (r.code !== 0) failed++; // Usually "Timeout was reached": the join goes on in the background.
      }
    }),
  );
  const deadline = Date.now() + 300_000;
  while ((await countReady(lead!)) < machines.length) {
    if (Date.now() > deadline) throw new Error('raw joins: not all Ready after 300 s');
    await new Promise((r) => setTimeout(r, 250));
  }
  return { s: (performance.now() - t0) / 1000, failed };
}

refuseBusyMachine(cluster, shared);

const rows: Record<string, unknown>[] = [];
for (const workers of workerCounts) {
  const home = testHome();
  const env = { SWARMFORM_HOME: home };
  const inventory = deriveInventory(home, from, cluster, subnet, (t) => t.replace(/name: worker-\[[^\]]*\]/, `name: worker-[001:${String(workers).padStart(3, '0')}]`));
  const hosts = workers + 3;
  await cli(['down', '--force', '-i', inventory], env);
  const memBefore = await memUsedMb();
  try {
    const sampler = sampleManagers([1, 2, 3].map((i) => `sf-${cluster}-mgr-${i}`));
    const upRun = await timedCli(['up', '--json', '-i', inventory], env);
    const samples = sampler.stop();
    writeFileSync(join(outDir, `scale-3+${workers}.jsonl`), upRun.stdout);
    if (upRun.code !== 0) throw new Error(`up failed (exit ${upRun.code}): ${upRun.stderr.slice(-3000)}`);
    const up = resultOf(upRun.stdout);
    const events = readEvents(join(outDir, `scale-3+${workers}.jsonl`));
    writeFileSync(join(outDir, `scale-3+${workers}-timeline.svg`), timelineSvg(events, `swarmform up, 3 managers + ${workers} workers (lab, 2 cores)`));
    const swarmStart = events.find((e) => e.type === 'phase' && e.phase === 'swarm' && e.status === 'start')!.ts!;
    const swarmEnd = events.find((e) => e.type === 'phase' && e.phase === 'swarm' && e.status === 'end')!.ts!;
    const mgrCpuS = cpuBetween(samples, swarmStart, swarmEnd);
    const jf = joinFigures(upRun.stdout);

    const machines = machinesOf(home, cluster);
    const lead = machines.find((m) => m.role === 'manager')!;
    const ready = await countReady(lead);
    const clusterInos = new Set(machines.map((m) => netnsIno(`sf-${cluster}-${m.name}`)).filter((x): x is number => x !== undefined));
    const mem = memoryByType(clusterInos);
    const memAfter = await memUsedMb();
    const status = await timedCli(['status', '-i', inventory], env);

    await leaveAll(machines);
    const raw = await rawJoins(machines, rawWindow, !/^\s*ingress:\s*false/m.test(readFileSync(inventory, 'utf8')));
    await leaveAll(machines);
    const swarmRun = await timedCli(['swarm', '--json', '--force', '-i', inventory], env);
    writeFileSync(join(outDir, `scale-3+${workers}-swarm.jsonl`), swarmRun.stdout);
    if (swarmRun.code !== 0) throw new Error(`swarm failed: ${swarmRun.stderr.slice(-3000)}`);
    const again = joinFigures(swarmRun.stdout);
    const perHost = (k: string) => (mem[k] ? mem[k]!.pssMb / hosts : 0);
    const row = {
      hosts: `3+${workers}`,
      upS: +upRun.wallS.toFixed(1),
      provisionS: +(up.phaseMs.provision! / 1000).toFixed(1),
      bootstrapS: +(up.phaseMs.bootstrap! / 1000).toFixed(1),
      imagesS: +(up.phaseMs.images! / 1000).toFixed(1),
      swarmS: +(up.phaseMs.swarm! / 1000).toFixed(1),
      workloadsS: +((up.phaseMs.workloads ?? 0) / 1000).toFixed(1),
      joinsPerS: +jf.joinsPerS.toFixed(2),
      joinFailures: jf.failed,
      joinTimeouts: jf.timedOut,
      paced: jf.paced,
      readyAfterUp: `${ready}/${hosts}`,
      toolCpuS: +upRun.cpuS.toFixed(1),
      toolPeakRssMb: Math.round(upRun.maxRssMb),
      mgrCpuS: +mgrCpuS.toFixed(1),
      mgrCores: +(mgrCpuS / ((swarmEnd - swarmStart) / 1000)).toFixed(2),
      statusS: +status.wallS.toFixed(1),
      statusExit: status.code,
      pssPerHostMb: {
        dockerd: +perHost('dockerd').toFixed(1),
        containerd: +perHost('containerd').toFixed(1),
        sshd: +perHost('sshd').toFixed(1),
        total: +Object.values(mem).reduce((a, e) => a + e.pssMb / hosts, 0).toFixed(1),
      },
      rssPerHostMb: +Object.values(mem).reduce((a, e) => a + e.rssMb / hosts, 0).toFixed(1),
      usedPerHostMb: +((memAfter - memBefore) / hosts).toFixed(1),
      rawJoinsS: +raw.s.toFixed(1),
      rawWindow: workers < 40 ? workers : rawWindow,
      rawFailed: raw.failed,
      swarmAgainS: +again.swarmS.toFixed(1),
      swarmAgainFailed: again.failed,
      swarmOverRaw: +(again.swarmS / raw.s).toFixed(2),
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  } finally {
    const d = await cli(['down', '--force', '-i', inventory], env);
    if (d.code !== 0) console.error(d.stderr);
  }
}

const lines = [
  '| hosts | up total | provision | bootstrap | images | swarm | joins/s | join failures | Ready | tool CPU | tool peak RSS | managers CPU in swarm phase | status | memory per host (PSS) | raw joins (window) | swarm phase again | swarm / raw |',
  `|${'---|'.repeat(17)}`,
];
for (const r of rows) {
  const pss = r.pssPerHostMb as Record<string, number>;
  lines.push(
    `| ${r.hosts} | ${r.upS} s | ${r.provisionS} s | ${r.bootstrapS} s | ${r.imagesS} s | ${r.swarmS} s | ${r.joinsPerS} | ${r.joinFailures} (${r.joinTimeouts} timed out) | ${r.readyAfterUp} | ${r.toolCpuS} s | ${r.toolPeakRssMb} MB |` +
      ` ${r.mgrCpuS} s (${r.mgrCores} cores) | ${r.statusS} s | ${pss.total} MB (dockerd ${pss.dockerd}, containerd ${pss.containerd}, sshd ${pss.sshd}) |` +
      ` ${r.rawJoinsS} s (${r.rawWindow}${r.rawFailed ? `, ${r.rawFailed} timed out` : ''}) | ${r.swarmAgainS} s | ${r.swarmOverRaw} |`,
  );
}
const { stdout: cpu } = await execFileP('sh', ['-c', 'nproc; grep MemTotal /proc/meminfo']);
const md = `${lines.join('\n')}\n\nInventory ${from} (sizes changed by the bench); machine: ${cpu.trim().replace(/\n/g, ' cores, ')}; ${new Date().toISOString()}\n`;
writeFileSync(join(outDir, 'scale-bench.md'), md);
writeFileSync(join(outDir, 'scale-bench.json'), JSON.stringify(rows, null, 2));
console.log(`\n${md}`);
