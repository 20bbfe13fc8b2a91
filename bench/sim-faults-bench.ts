/**
 * Faults at scale (issue 14): `up` on the simulated Swarm3k inventory (4,700 hosts), clean and with the fault
 * campaign of test/support/sim-faults.ts (2 % of hosts unreachable over SSH, 1 % of joins timing out, a manager
 * lost after 1,500 joins, a throttling provider), alternated so both see the same machine load; then the re-run
 * that finishes the faulty one. The target: the faulty run ends within 1.5x the clean one, with exit 3.
 *
 *   node --import tsx bench/sim-faults-bench.ts [rounds=2] [timeScale=0.01] [connectTimeout=30]
 *
 * The tool's own waits (SSH connect retries up to ssh.connectTimeout, the Ready wait's 10 s grace before it asks
 * engines that have not turned Ready) are real time, while the model's latencies are scaled: at 0.01 a clean run
 * is seconds, and those waits dominate the ratio. At timeScale 0.1 or 1 the phases take long enough to hide them,
 * as on a real fleet.
 *
 * SWARMFORM_DIST=dist-me runs another build (see bin/swarmform).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanInventory, faultyInventory } from '../test/support/sim-faults.js';
import { timedCli } from './timed-cli.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const rounds = Number(process.argv[2] ?? 2);
const opts = { timeScale: process.argv[3] ? Number(process.argv[3]) : undefined, connectTimeout: process.argv[4] ? Number(process.argv[4]) : undefined };
const home = mkdtempSync(join(tmpdir(), 'swarmform-bench-'));
const env = { SWARMFORM_HOME: home };
const text = readFileSync(join(ROOT, 'inventories/sim-swarm3k.yml'), 'utf8');
const clean = join(home, 'clean.yml');
const faulty = join(home, 'faulty.yml');
writeFileSync(clean, cleanInventory(text, 'b-clean', opts));
writeFileSync(faulty, faultyInventory(text, 'b-faulty', opts));

const rows: string[] = [];
try {
  for (let r = 1; r <= rounds; r++) {
    const c = await timedCli(['up', '-i', clean], env);
    const f = await timedCli(['up', '-i', faulty], env);
    const again = await timedCli(['up', '-i', faulty], env);
    const failed = /error: (\d+) host\(s\) failed/.exec(f.stderr)?.[1] ?? '?';
    rows.push(
      `| ${r} | ${c.wallS.toFixed(1)} s (exit ${c.code}) | ${f.wallS.toFixed(1)} s (exit ${f.code}, ${failed} hosts failed) | ${(f.wallS / c.wallS).toFixed(2)} | ${again.wallS.toFixed(1)} s (exit ${again.code}) |`,
    );
    console.error(rows.at(-1));
    for (const inv of [clean, faulty]) await timedCli(['down', '-i', inv], env);
  }
} finally {
  for (const inv of [clean, faulty]) await timedCli(['down', '-i', inv], env);
  rmSync(home, { recursive: true, force: true });
}
console.log(`timeScale ${opts.timeScale ?? 0.01}, ssh.connectTimeout ${opts.connectTimeout ?? 30} s`);
console.log('| round | clean up | faulty up | faulty / clean | re-run |\n| --- | --- | --- | --- | --- |');
console.log(rows.join('\n'));
