/**
 * Benchmark of `up` on simulated clusters (not a test): the real CLI, in a child process, on 500, 1,000, 2,384 and
 * 4,700 `sim` hosts derived from inventories/sim-swarm3k.yml. For each size it records the tool's CPU time (user +
 * system of the child, from /usr/bin/time) per host, its peak RSS, the wall time per phase, and the model's lower
 * bounds (src/providers/sim/bounds.ts) with the ratio; then a second `up` (nothing to change) and `down`.
 *
 *   node --import tsx bench/sim-bench.ts [sizes ...]      (default: 500 1000 2384 4700; SWARMFORM_DIST picks the build)
 *
 * Figures go to bench/out/sim-bench.json and bench/out/sim-bench.md, and the table is printed.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadInventory } from '../src/inventory/index.js';
import { providers } from '../src/providers/registry.js';
import { boundInputOf, lowerBounds } from '../src/providers/sim/bounds.js';
import { simSettings } from '../src/providers/sim/settings.js';
import { timedCli } from './timed-cli.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const totals = sizes.length ? sizes : [500, 1000, 2384, 4700];
const outDir = join(ROOT, 'bench/out');
mkdirSync(outDir, { recursive: true });
const home = mkdtempSync(join(tmpdir(), 'swarmform-sim-bench-'));

/** `provision: 56 ok, 7 failed, 0 skipped (346ms)` lines of the plain renderer, in seconds. */
function phaseTimes(stderr: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of stderr.matchAll(/\] (\w+): \d+ ok, \d+ failed, \d+ skipped \(([^)]+)\)/g)) out[m[1]!] = seconds(m[2]!);
  return out;
}

function seconds(d: string): number {
  if (d.endsWith('ms')) return Number(d.slice(0, -2)) / 1000;
  if (d.endsWith('s')) return Number(d.slice(0, -1));
  return d.split(':').map(Number).reduce((a, b) => a * 60 + b, 0);
}

/** The Swarm3k inventory with `total` hosts: 3 managers, workers split over the two groups as in the original. */
function inventoryFor(total: number): { path: string } {
  const text = readFileSync(join(ROOT, 'inventories/sim-swarm3k.yml'), 'utf8');
  const workers = total - 3;
  const cloud = Math.round((workers * 2400) / 4697);
  const edited = text
    .replace(/^cluster: .*$/m, `cluster: simbench-${total}`)
    .replace(/(cloud:\n\s+role: worker\n\s+count: )\d+/, `$1${cloud}`)
    .replace(/(volunteers:\n\s+role: worker\n\s+count: )\d+/, `$1${workers - cloud}`);
  const path = join(home, `simbench-${total}.yml`);
  writeFileSync(path, edited);
  return { path };
}

const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '?');

async function main(): Promise<void> {
  // The cost of starting the CLI at all (module loading): `plan` touches nothing remote.
  const base = inventoryFor(totals[0]!);
  const startup = await timedCli(['plan', '-i', base.path], { SWARMFORM_HOME: home });
  process.stderr.write(`startup (plan): ${fmt(startup.cpuS, 2)} s CPU, ${fmt(startup.maxRssMb, 0)} MB peak\n`);
  const rows: Record<string, unknown>[] = [];
  for (const total of totals) {
    const inv = inventoryFor(total);
    // The bounds read the inventory as the tool does (defaults applied): its join and bootstrap windows, replicas.
    const loaded = await loadInventory(inv.path, { providers });
    const bounds = lowerBounds(simSettings(loaded), boundInputOf(loaded));
    process.stderr.write(`\n== ${total} hosts: up\n`);
    const up = await timedCli(['up', '-i', inv.path], { SWARMFORM_HOME: home });
    process.stderr.write(up.stderr.split('\n').filter((l) => /\] \w+: (started|\d+ ok)|error|warning|paced/.test(l)).join('\n') + '\n');
    const again = await timedCli(['up', '-i', inv.path], { SWARMFORM_HOME: home });
    const statusJson = await timedCli(['status', '--json', '-i', inv.path], { SWARMFORM_HOME: home });
    let nodes = -1;
    try {
      nodes = (JSON.parse(statusJson.stdout) as { nodes: unknown[] }).nodes.length;
    } catch {
      // reported as -1
    }
    const down = await timedCli(['down', '-i', inv.path], { SWARMFORM_HOME: home });
    const phases = phaseTimes(up.stderr);
    // The run itself: from the renderer's start (after loading the inventory) to the end of the last phase.
    const runS = Math.max(0, ...[...up.stderr.matchAll(/^\[ *([\d.]+)s\] \w+: \d+ ok/gm)].map((m) => Number(m[1])));
    const row = {
      hosts: total,
      exit: up.code,
      rerunExit: again.code,
      rerunNothingToChange: /Nothing to change/.test(again.stdout),
      statusNodes: nodes,
      downExit: down.code,
      wallS: up.wallS,
      cpuS: up.cpuS,
      cpuMsPerHost: (up.cpuS * 1000) / total,
      cpuMsPerHostAboveStartup: ((up.cpuS - startup.cpuS) * 1000) / total,
      maxRssMb: up.maxRssMb,
      rssKbPerHostAboveStartup: ((up.maxRssMb - startup.maxRssMb) * 1024) / total,
      phases,
      runS,
      lowerBoundS: bounds.model.total / 1000,
      ratio: runS / (bounds.model.total / 1000),
      sequentialBoundS: bounds.model.sequential / 1000,
      windowsBoundS: bounds.windows.total / 1000,
      ratioToWindows: runS / (bounds.windows.total / 1000),
      loadAverage: loadavg()[0],
      bounds,
      rerunWallS: again.wallS,
      rerunCpuS: again.cpuS,
    };
    rows.push(row);
    process.stderr.write(`${JSON.stringify({ ...row, bounds: undefined })}\n`);
    if (up.code !== 0) process.stderr.write(up.stderr.slice(-3000));
  }
  const header =
    '| hosts | exit | process wall s | run wall s | lower bound s (model) | ratio | bound with the windows s | ratio | phases in sequence: bound s | CPU s | CPU ms/host | CPU ms/host above startup | peak RSS MB | RSS KB/host above startup | load avg | re-run |\n' +
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |';
  const lines = rows.map((r) => {
    const x = r as Record<string, number> & { rerunNothingToChange: boolean };
    return `| ${x.hosts} | ${x.exit} | ${fmt(x.wallS)} | ${fmt(x.runS)} | ${fmt(x.lowerBoundS)} | ${fmt(x.ratio, 2)} | ${fmt(x.windowsBoundS)} | ${fmt(x.ratioToWindows, 2)} | ${fmt(x.sequentialBoundS)} | ${fmt(x.cpuS, 2)} | ${fmt(x.cpuMsPerHost, 2)} | ${fmt(x.cpuMsPerHostAboveStartup, 2)} | ${fmt(x.maxRssMb, 0)} | ${fmt(x.rssKbPerHostAboveStartup, 0)} | ${fmt(x.loadAverage, 1)} | ${x.rerunNothingToChange ? 'nothing to change' : `exit ${x.rerunExit}`} |`;
  });
  const phaseLines = rows.map((r) => {
    const x = r as { hosts: number; phases: Record<string, number>; bounds: ReturnType<typeof lowerBounds> };
    const cell = (p: 'provision' | 'bootstrap' | 'swarm' | 'workloads') => `${fmt(x.phases[p] ?? NaN)} / ${fmt(x.bounds.model[p] / 1000)} / ${fmt(x.bounds.windows[p] / 1000)}`;
    return `| ${x.hosts} | ${cell('provision')} | ${cell('bootstrap')} | ${cell('swarm')} | ${cell('workloads')} |`;
  });
  const md = [
    `Startup (\`plan\`, module loading only): ${fmt(startup.cpuS, 2)} s CPU, ${fmt(startup.maxRssMb, 0)} MB peak RSS.`,
    '',
    header,
    ...lines,
    '',
    'Per phase, seconds: measured / model bound / bound with the inventory\'s windows (bootstrap, joins). Bootstrap starts with provision ' +
      '(each machine is bootstrapped as soon as it has booted), so its time and bounds run from the start and cover provision; ' +
      'the lower bound of the run is bootstrap + swarm + workloads.',
    '',
    '| hosts | provision | bootstrap | swarm | workloads |',
    '| ---: | --- | --- | --- | --- |',
    ...phaseLines,
  ].join('\n');
  writeFileSync(join(outDir, 'sim-bench.json'), `${JSON.stringify({ startup: { cpuS: startup.cpuS, maxRssMb: startup.maxRssMb }, rows }, null, 2)}\n`);
  writeFileSync(join(outDir, 'sim-bench.md'), `${md}\n`);
  process.stdout.write(`${md}\n`);
  rmSync(home, { recursive: true, force: true });
}

await main();
