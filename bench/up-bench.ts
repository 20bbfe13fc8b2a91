/**
 * Benchmark of `up` on lab clusters (not a test): per-phase wall time, the tool's own CPU time and peak memory, and
 * the swarm phase against the same joins issued directly on the hosts with the docker CLI.
 *
 *   sudo node --import tsx bench/up-bench.ts [--ansible] [workers ...]   (default: 3 30; needs /usr/bin/time from Debian's `time`)
 *
 * For each size it: runs `up` from nothing (timed phases); makes every node leave the swarm and forms it again with raw
 * `docker swarm init/join` over ssh (managers one at a time, workers all at once, as lab.md measured); makes every
 * node leave again and runs swarmform's `swarm` phase on the same hosts; with --ansible (Debian's `ansible` and
 * `python3-docker` installed), every node leaves once more and bench/ansible/swarm.yml forms the swarm with forks=50;
 * then `down`. Figures go to bench/out/.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cli, deriveInventory, machinesOf, onHost, ROOT, testHome, type StateMachine } from '../test/support/lab.js';
import { timedCli } from './timed-cli.js';

const execFileP = promisify(execFile);
const withAnsible = process.argv.includes('--ansible');
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const workerCounts = sizes.length ? sizes : [3, 30];
const outDir = join(ROOT, 'bench/out');
mkdirSync(outDir, { recursive: true });

function resultOf(stdout: string): { phaseMs: Record<string, number>; changed: number } {
  const line = stdout.trim().split('\n').reverse().find((l) => l.includes('"type":"result"'));
  if (!line) throw new Error(`no result line in:\n${stdout.slice(-2000)}`);
  return JSON.parse(line);
}

async function leaveAll(machines: StateMachine[]): Promise<void> {
  await Promise.all(machines.map((m) => onHost(m, 'docker swarm leave --force >/dev/null 2>&1; true')));
}

/** The same joins, issued directly: init, managers one by one, then every worker at once; until all Ready. */
async function rawJoins(machines: StateMachine[]): Promise<number> {
  const [lead, ...others] = machines.filter((m) => m.role === 'manager');
  const workers = machines.filter((m) => m.role === 'worker');
  const t0 = performance.now();
  await must(onHost(lead!, `docker swarm init --advertise-addr ${lead!.privateAddress} >/dev/null`));
  const wt = (await must(onHost(lead!, 'docker swarm join-token -q worker'))).trim();
  const mt = (await must(onHost(lead!, 'docker swarm join-token -q manager'))).trim();
  for (const m of others) await must(onHost(m, `docker swarm join --advertise-addr ${m.privateAddress} --token ${mt} ${lead!.privateAddress}:2377 >/dev/null`));
  await Promise.all(workers.map((w) => onHost(w, `docker swarm join --advertise-addr ${w.privateAddress} --token ${wt} ${lead!.privateAddress}:2377 >/dev/null 2>&1`)));
  for (;;) {
    const out = await onHost(lead!, "docker node ls --format '{{.Status}}'");
    const ready = out.stdout.split('\n').filter((l) => l === 'Ready').length;
    if (ready >= machines.length) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return (performance.now() - t0) / 1000;
}

/** bench/ansible/swarm.yml with forks=50 on the same hosts, until every node is Ready. */
async function ansibleJoins(machines: StateMachine[], dir: string): Promise<number> {
  const line = (m: StateMachine) => `${m.name} ansible_host=${m.privateAddress}`;
  const inv = join(dir, 'ansible-hosts.ini');
  writeFileSync(
    inv,
    [
      '[managers]', ...machines.filter((m) => m.role === 'manager').map(line),
      '[workers]', ...machines.filter((m) => m.role === 'worker').map(line),
      '[all:vars]', 'ansible_user=root', `ansible_ssh_private_key_file=${machines[0]!.ssh.keyPath}`,
      "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'",
      'ansible_python_interpreter=/usr/bin/python3',
    ].join('\n'),
  );
  const lead = machines.find((m) => m.role === 'manager')!;
  const t0 = performance.now();
  await execFileP('ansible-playbook', ['-f', '50', '-i', inv, join(ROOT, 'bench/ansible/swarm.yml')], {
    env: { ...process.env, ANSIBLE_HOST_KEY_CHECKING: 'False' },
    maxBuffer: 64 << 20,
  });
  for (;;) {
    const out = await onHost(lead, "docker node ls --format '{{.Status}}'");
    if (out.stdout.split('\n').filter((l) => l === 'Ready').length >= machines.length) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return (performance.now() - t0) / 1000;
}

async function must(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout;
}

const rows: Record<string, unknown>[] = [];
for (const workers of workerCounts) {
  const cluster = `bench-${workers}`;
  const home = testHome();
  const env = { SWARMFORM_HOME: home };
  const inventory = deriveInventory(home, 'inventories/lab.yml', cluster, '198.18.30.0/24', (t) =>
    t.replace('name: worker-[1:3]', `name: worker-[1:${workers}]`).replace('replicas: 3', `replicas: ${Math.min(workers, 6)}`),
  );
  await cli(['down', '--force', '-i', inventory], env);
  try {
    const upRun = await timedCli(['up', '--json', '-i', inventory], env);
    if (upRun.code !== 0) throw new Error(`up failed: ${upRun.stderr.slice(-3000)}`);
    const up = resultOf(upRun.stdout);
    writeFileSync(join(outDir, `up-3+${workers}.jsonl`), upRun.stdout);
    const machines = machinesOf(home, cluster);
    const again = await timedCli(['up', '--json', '-i', inventory], env);

    await leaveAll(machines);
    const rawS = await rawJoins(machines);
    await leaveAll(machines);
    const swarmRun = await timedCli(['swarm', '--json', '--force', '-i', inventory], env);
    if (swarmRun.code !== 0) throw new Error(`swarm failed: ${swarmRun.stderr.slice(-3000)}`);
    const swarmS = resultOf(swarmRun.stdout).phaseMs.swarm! / 1000;
    let ansibleS = NaN;
    if (withAnsible) {
      await leaveAll(machines);
      ansibleS = await ansibleJoins(machines, home);
    }
    const row = {
      hosts: `3+${workers}`,
      upS: +upRun.wallS.toFixed(1),
      provisionS: +(up.phaseMs.provision! / 1000).toFixed(1),
      bootstrapS: +(up.phaseMs.bootstrap! / 1000).toFixed(1),
      imagesS: +(up.phaseMs.images! / 1000).toFixed(1),
      swarmS: +(up.phaseMs.swarm! / 1000).toFixed(1),
      workloadsS: +(up.phaseMs.workloads! / 1000).toFixed(1),
      cpuS: +upRun.cpuS.toFixed(1),
      maxRssMb: Math.round(upRun.maxRssMb),
      rawJoinsS: +rawS.toFixed(1),
      swarmAgainS: +swarmS.toFixed(1),
      swarmOverRaw: +(swarmS / rawS).toFixed(2),
      ansibleS: +ansibleS.toFixed(1),
      ansibleOverSwarm: +(ansibleS / swarmS).toFixed(1),
      secondUpS: +again.wallS.toFixed(1),
      secondUpChanged: resultOf(again.stdout).changed,
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  } finally {
    const d = await cli(['down', '--force', '-i', inventory], env);
    if (d.code !== 0) console.error(d.stderr);
  }
}

const head = `| hosts | up total | provision | bootstrap | images | swarm | workloads | tool CPU | tool peak RSS | raw joins | swarm phase (same hosts) | swarm / raw | second up |${withAnsible ? ' Ansible docker_swarm, forks=50 | Ansible / swarm |' : ''}`;
const lines = [head, `|${'---|'.repeat(withAnsible ? 15 : 13)}`];
for (const r of rows) {
  lines.push(
    `| ${r.hosts} | ${r.upS} s | ${r.provisionS} s | ${r.bootstrapS} s | ${r.imagesS} s | ${r.swarmS} s | ${r.workloadsS} s | ${r.cpuS} s | ${r.maxRssMb} MB | ${r.rawJoinsS} s | ${r.swarmAgainS} s | ${r.swarmOverRaw} | ${r.secondUpS} s (${r.secondUpChanged} changes) |` +
      (withAnsible ? ` ${r.ansibleS} s | ${r.ansibleOverSwarm} |` : ''),
  );
}
const { stdout: cpu } = await execFileP('sh', ['-c', "nproc; grep MemTotal /proc/meminfo"]);
const md = `${lines.join('\n')}\n\nMachine: ${cpu.trim().replace(/\n/g, ' cores, ')}; ${new Date().toISOString()}\n`;
writeFileSync(join(outDir, 'up-bench.md'), md);
writeFileSync(join(outDir, 'up-bench.json'), JSON.stringify(rows, null, 2));
console.log(`\n${md}`);
