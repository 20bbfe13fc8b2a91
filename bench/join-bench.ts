/**
 * Join pacing benchmark on one large lab cluster (not a test): forms the swarm again and again on the same hosts with
 * different pacing, so the figures compare within one run on one machine, as a shared, noisy machine requires.
 *
 *   sudo node --import tsx bench/join-bench.ts [--workers 117] [--inventory inventories/lab-150.yml] [--shared] \
 *     [--keep] [--home DIR] [fixed:10 adaptive:30 adaptive:30:noingress ...]
 *   (a round is PACING:JOINCONCURRENCY[:noingress]; default: fixed:10 adaptive:30 fixed:10:noingress
 *   adaptive:30:noingress; SWARMFORM_DIST picks the build; --home reuses the hosts of a --keep run)
 *
 * It runs `up` once (3 managers + N workers, every node a real dockerd), then for each round: every host leaves its
 * swarm, the inventory gets the round's `swarm.joinPacing`, `swarm.joinConcurrency` and `swarm.ingress`, and `swarmform swarm --force`
 * forms the swarm again; `docker node ls` on a manager counts the Ready nodes. Per round it records the swarm phase's
 * wall time, joins per second, failed joins, joins the engine gave up waiting for (finished in the background), the
 * pacer's summary line, and a join timeline (SVG). Then `down`. Figures go to bench/out/join-bench.{json,md}.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, deriveInventory, machinesOf, ROOT, testHome } from '../test/support/lab.js';
import { benchArgs, countReady, joinFigures, leaveAll, refuseBusyMachine } from './join-figures.js';
import { readEvents, timelineSvg } from './timeline.js';
import { timedCli } from './timed-cli.js';

const { args, opt } = benchArgs();
const from = opt('--inventory', 'inventories/lab-150.yml');
const workers = Number(opt('--workers', '117'));
const cluster = opt('--cluster', 'join-bench');
const subnet = opt('--subnet', '198.18.62.0/24');
const shared = args.includes('--shared');
/** Reuse the hosts a killed or --keep run left in this SWARMFORM_HOME (no `up`), and keep them at the end. */
const reuse = opt('--home', '');
const keep = args.includes('--keep') || Boolean(reuse);
const rounds = args.filter((a) => /^(adaptive|fixed):\d+(:noingress)?$/.test(a)).map((a) => {
  const [pacing, n, ingress] = a.split(':');
  return { pacing: pacing as 'adaptive' | 'fixed', concurrency: Number(n), ingress: ingress !== 'noingress' };
});
if (rounds.length === 0) rounds.push(...['fixed:10', 'adaptive:30', 'fixed:10:noingress', 'adaptive:30:noingress'].map((a) => ({ pacing: a.split(':')[0] as 'adaptive' | 'fixed', concurrency: Number(a.split(':')[1]), ingress: !a.endsWith('noingress') })));
const outDir = join(ROOT, 'bench/out');
mkdirSync(outDir, { recursive: true });

refuseBusyMachine(cluster, shared);

const home = reuse || testHome();
const env = { SWARMFORM_HOME: home };
const size = (t: string) => t.replace(/name: worker-\[[^\]]*\]/, `name: worker-[001:${String(workers).padStart(3, '0')}]`);
/** The inventory with a round's pacing (the keys are rewritten or added under `swarm:`). */
function writeRound(pacing: string, concurrency: number, ingress = true): string {
  return deriveInventory(home, from, cluster, subnet, (t) => {
    let s = size(t).replace(/^\s*joinPacing:.*\n/m, '').replace(/^\s*ingress:.*\n/m, '');
    s = s.replace(/^swarm:\n/m, `swarm:\n  ingress: ${ingress}\n`);
    s = /^\s*joinConcurrency:/m.test(s) ? s.replace(/^(\s*)joinConcurrency:.*$/m, `$1joinConcurrency: ${concurrency}`) : s.replace(/^swarm:\n/m, `swarm:\n  joinConcurrency: ${concurrency}\n`);
    return s.replace(/^(\s*)joinConcurrency:.*$/m, `$&\n$1joinPacing: ${pacing}`);
  });
}

const rows: Record<string, unknown>[] = [];
let inventory = writeRound(rounds[0]!.pacing, rounds[0]!.concurrency);
if (!reuse) await cli(['down', '--force', '-i', inventory], env);
try {
  if (!reuse) {
    const up = await timedCli(['up', '--json', '-i', inventory], env);
    writeFileSync(join(outDir, `join-bench-up.jsonl`), up.stdout);
    if (up.code !== 0 && up.code !== 3) throw new Error(`up failed (exit ${up.code}): ${up.stderr.slice(-3000)}`);
    const lead = machinesOf(home, cluster).find((m) => m.role === 'manager')!;
    rows.push({ round: `up (${rounds[0]!.pacing}:${rounds[0]!.concurrency})`, exit: up.code, ...joinFigures(up.stdout), ready: `${await countReady(lead)}/${workers + 3}`, loadAvg: readFileSync('/proc/loadavg', 'utf8').split(' ')[0] });
    console.log(JSON.stringify(rows.at(-1)));
  }
  const machines = machinesOf(home, cluster);
  const lead = machines.find((m) => m.role === 'manager')!;
  for (const [i, r] of rounds.entries()) {
    await leaveAll(machines);
    inventory = writeRound(r.pacing, r.concurrency, r.ingress);
    const run = await timedCli(['swarm', '--json', '--force', '-i', inventory], env);
    const name = `${r.pacing}:${r.concurrency}${r.ingress ? '' : ':noingress'}`;
    const file = join(outDir, `join-bench-${i + 1}-${name.replace(/:/g, '-')}.jsonl`);
    writeFileSync(file, run.stdout);
    writeFileSync(file.replace(/\.jsonl$/, '.svg'), timelineSvg(readEvents(file), `swarm phase, 3 + ${workers} lab hosts, ${r.pacing} pacing, joinConcurrency ${r.concurrency}${r.ingress ? '' : ', no ingress network'}`));
    // Ready as Docker sees it, a few seconds after the phase (joins that finished in the background count here).
    const ready = await countReady(lead);
    rows.push({ round: `${i + 1}: ${name}`, exit: run.code, ...joinFigures(run.stdout), ready: `${ready}/${machines.length}`, toolCpuS: +run.cpuS.toFixed(1), loadAvg: readFileSync('/proc/loadavg', 'utf8').split(' ')[0] });
    console.log(JSON.stringify(rows.at(-1)));
  }
} finally {
  if (!keep) {
    const d = await cli(['down', '--force', '-i', inventory], env);
    if (d.code !== 0) console.error(d.stderr);
  } else console.log(`hosts kept: SWARMFORM_HOME=${home} bin/swarmform down --force -i ${inventory}`);
}

const lines = [
  '| round | swarm phase | joins/s | failed joins | timed out (finished in background) | Ready | pacer |',
  '|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.round} | ${Number(r.swarmS).toFixed(1)} s | ${Number(r.joinsPerS).toFixed(2)} | ${r.failed} | ${r.timedOut} | ${r.ready} | ${String(r.paced).replace(/^worker joins paced:? ?/, '')} |`),
];
const md = `${lines.join('\n')}\n\n3 managers + ${workers} workers from ${from}; load average after each round: ${rows.map((r) => r.loadAvg).join(', ')}; ${new Date().toISOString()}\n`;
writeFileSync(join(outDir, 'join-bench.md'), md);
writeFileSync(join(outDir, 'join-bench.json'), JSON.stringify(rows, null, 2));
console.log(`\n${md}`);
