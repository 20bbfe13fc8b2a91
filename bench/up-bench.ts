/**
 * Benchmark of `up` on lab clusters (not a test): per-phase wall time, the tool's own CPU time and peak memory, and
 * the swarm phase against the same joins issued directly on the hosts with the docker CLI.
 *
 *   sudo node --import tsx bench/up-bench.ts [--ansible] [--os [--install bundle]] [workers ...]   (default: 3 30; needs /usr/bin/time from Debian's `time`)
 *
 * With --os the hosts are lab OS hosts (inventories/lab-debian.yml: Debian 12 under systemd, login user admin, every
 * docker command through sudo -n), the engine from packages, or from the bundle with --install bundle.
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
import { netnsName } from '../src/providers/lab/names.js';
import { timedCli } from './timed-cli.js';

const execFileP = promisify(execFile);
const withAnsible = process.argv.includes('--ansible');
const osHosts = process.argv.includes('--os');
const installArg = process.argv.indexOf('--install');
const install = installArg > 0 ? process.argv[installArg + 1] : osHosts ? 'packages' : 'bundle';
if (install !== 'packages' && install !== 'bundle') throw new Error(`--install takes packages or bundle, not ${install}`);
const sizes = process.argv.slice(2).filter((a, i, all) => all[i - 1] !== '--install').map(Number).filter((n) => n > 0);
/** The docker CLI on a host: through sudo on OS hosts, whose login user is not root. */
const docker = osHosts ? 'sudo -n docker' : 'docker';
const workerCounts = sizes.length ? sizes : [3, 30];
const outDir = join(ROOT, 'bench/out');
mkdirSync(outDir, { recursive: true });

function resultOf(stdout: string): { phaseMs: Record<string, number>; changed: number } {
  const line = stdout.trim().split('\n').reverse().find((l) => l.includes('"type":"result"'));
  if (!line) throw new Error(`no result line in:\n${stdout.slice(-2000)}`);
  return JSON.parse(line);
}

async function leaveAll(machines: StateMachine[]): Promise<void> {
  await Promise.all(machines.map((m) => onHost(m, `${docker} swarm leave --force >/dev/null 2>&1; true`)));
}

/** The same joins, issued directly: init, managers one by one, then every worker at once; until all Ready. */
async function rawJoins(machines: StateMachine[]): Promise<number> {
  const [lead, ...others] = machines.filter((m) => m.role === 'manager');
  const workers = machines.filter((m) => m.role === 'worker');
  const t0 = performance.now();
  await must(onHost(lead!, `${docker} swarm init --advertise-addr ${lead!.privateAddress} >/dev/null`));
  const wt = (await must(onHost(lead!, `${docker} swarm join-token -q worker`))).trim();
  const mt = (await must(onHost(lead!, `${docker} swarm join-token -q manager`))).trim();
  for (const m of others) await must(onHost(m, `${docker} swarm join --advertise-addr ${m.privateAddress} --token ${mt} ${lead!.privateAddress}:2377 >/dev/null`));
  await Promise.all(workers.map((w) => onHost(w, `${docker} swarm join --advertise-addr ${w.privateAddress} --token ${wt} ${lead!.privateAddress}:2377 >/dev/null 2>&1`)));
  for (;;) {
    const out = await onHost(lead!, `${docker} node ls --format '{{.Status}}'`);
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
      // The same login as swarmform's: root on namespace hosts, the image's user with sudo (become) on OS hosts.
      '[all:vars]', `ansible_user=${machines[0]!.ssh.user}`, `ansible_ssh_private_key_file=${machines[0]!.ssh.keyPath}`,
      ...(osHosts ? ['ansible_become=true', 'ansible_become_method=sudo'] : []),
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
    const out = await onHost(lead, `${docker} node ls --format '{{.Status}}'`);
    if (out.stdout.split('\n').filter((l) => l === 'Ready').length >= machines.length) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return (performance.now() - t0) / 1000;
}

/**
 * What a host costs this machine once up has finished, averaged over the hosts: memory as the proportional set size
 * (PSS, shared pages split between their users) of every process in the host's network namespace (sshd, engine,
 * containers; an OS host's systemd and services too), and disk as what the host's lab directory holds (an OS host's
 * overlay upper layer, or a namespace host's own directories and engine data; the shared base image not counted).
 */
async function footprint(cluster: string, machines: StateMachine[]): Promise<{ memMb: number; diskMb: number }> {
  const root = process.env.SWARMFORM_LAB_ROOT ?? '/var/lib/swarmform/lab';
  let pss = 0;
  let disk = 0;
  for (const m of machines) {
    const { stdout } = await execFileP('ip', ['netns', 'pids', netnsName(cluster, m.name)]).catch(() => ({ stdout: '' }));
    for (const pid of stdout.split('\n').filter(Boolean)) {
      const rollup = await execFileP('cat', [`/proc/${pid}/smaps_rollup`]).then((r) => r.stdout, () => '');
      pss += Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
    }
    const du = await execFileP('du', ['-skx', join(root, cluster, 'hosts', m.name)]).then((r) => r.stdout, () => '0');
    disk += Number(du.split(/\s/)[0]);
  }
  return { memMb: Math.round(pss / 1024 / machines.length), diskMb: Math.round(disk / 1024 / machines.length) };
}

async function must(p: Promise<{ code: number; stdout: string; stderr: string }>): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout;
}

const rows: Record<string, unknown>[] = [];
for (const workers of workerCounts) {
  const cluster = osHosts ? `bench-os-${workers}` : `bench-${workers}`;
  const home = testHome();
  const env = { SWARMFORM_HOME: home };
  const inventory = deriveInventory(home, osHosts ? 'inventories/lab-debian.yml' : 'inventories/lab.yml', cluster, osHosts ? '198.18.31.0/24' : '198.18.30.0/24', (t) => {
    let sized = t.replace('name: worker-[1:3]', `name: worker-[1:${workers}]`).replace('replicas: 3', `replicas: ${Math.min(workers, 6)}`);
    // community.docker's docker_swarm runs Python on the hosts and talks to the engine with python3-docker.
    if (osHosts && withAnsible) {
      sized = sized
        .replace(/^( {4}options:\n {6}user: admin.*)$/m, '$1\n      packages: [python3, python3-docker]')
        .replace(`name: worker-[1:${workers}]`, `name: worker-[1:${workers}]\n    options: { packages: [python3, python3-docker] }`);
    }
    return osHosts && install === 'bundle' ? sized.replace(/install: packages/, 'install: bundle') : sized;
  });
  await cli(['down', '--force', '-i', inventory], env);
  try {
    const upRun = await timedCli(['up', '--json', '-i', inventory], env);
    if (upRun.code !== 0) throw new Error(`up failed: ${upRun.stderr.slice(-3000)}`);
    const up = resultOf(upRun.stdout);
    writeFileSync(join(outDir, `up-3+${workers}${osHosts ? `-os-${install}` : ''}.jsonl`), upRun.stdout);
    const machines = machinesOf(home, cluster);
    const foot = await footprint(cluster, machines);
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
      hosts: `3+${workers}${osHosts ? ` OS hosts, ${install}` : ''}`,
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
      hostMemMb: foot.memMb,
      hostDiskMb: foot.diskMb,
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

const head = `| hosts | up total | provision | bootstrap | images | swarm | workloads | tool CPU | tool peak RSS | memory per host | disk per host | raw joins | swarm phase (same hosts) | swarm / raw | second up |${withAnsible ? ' Ansible docker_swarm, forks=50 | Ansible / swarm |' : ''}`;
const lines = [head, `|${'---|'.repeat(withAnsible ? 17 : 15)}`];
for (const r of rows) {
  lines.push(
    `| ${r.hosts} | ${r.upS} s | ${r.provisionS} s | ${r.bootstrapS} s | ${r.imagesS} s | ${r.swarmS} s | ${r.workloadsS} s | ${r.cpuS} s | ${r.maxRssMb} MB | ${r.hostMemMb} MB | ${r.hostDiskMb} MB | ${r.rawJoinsS} s | ${r.swarmAgainS} s | ${r.swarmOverRaw} | ${r.secondUpS} s (${r.secondUpChanged} changes) |` +
      (withAnsible ? ` ${r.ansibleS} s | ${r.ansibleOverSwarm} |` : ''),
  );
}
const { stdout: cpu } = await execFileP('sh', ['-c', "nproc; grep MemTotal /proc/meminfo"]);
const md = `${lines.join('\n')}\n\nMachine: ${cpu.trim().replace(/\n/g, ' cores, ')}; ${new Date().toISOString()}\n`;
const base = osHosts ? `up-bench-os-${install}` : 'up-bench';
writeFileSync(join(outDir, `${base}.md`), md);
writeFileSync(join(outDir, `${base}.json`), JSON.stringify(rows, null, 2));
console.log(`\n${md}`);
