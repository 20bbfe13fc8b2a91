/**
 * The simulated transport: a Remote for a `sim` machine. Commands are answered from the host's model (the scripts
 * bootstrap sends: facts, package install, daemon.json, firewall, engine start, the port check) and change it, so a
 * re-run finds the work done; the engine is the real dockerode on a simulated Engine API (sim-engine.ts). Every
 * call waits the model's latency, scaled by `providers.sim.timeScale`.
 */
import Docker from 'dockerode';
import { HostStepError } from '../../base/errors.js';
import { notRetryable } from '../../run/retry.js';
import type { Machine } from '../../base/machine.js';
import { fnv1a, sleepUntil } from './model.js';
import { type SimHost, type SimWorld, traceServer, worldOf } from './world.js';
import { type AttachIO, type CommandResult, type Remote, type RunOptions, tail } from '../../remote/remote.js';
import { simDocker } from './engine.js';

/** Opens the simulated connection to a sim machine (`providerId` is `cluster/name`); fails like SSH would. */
export async function connectSim(m: Machine): Promise<SimRemote> {
  const cluster = m.providerId.slice(0, m.providerId.lastIndexOf('/'));
  const world = worldOf(cluster);
  if (!world) throw new HostStepError(m.name, 'ssh', `no simulated world for cluster ${cluster} in this process`);
  const host = world.host(m.name);
  await world.wait(world.settings.ssh.connectTime);
  if (!host) {
    // Not a host that is still booting: it is not in the simulated world at all, so waiting cannot help.
    throw notRetryable(new HostStepError(m.name, 'ssh', `${m.ssh.user}@${m.ssh.host}:${m.ssh.port}: connect ECONNREFUSED (the simulated machine does not exist)`, {
      hint: 'run `up` to create it',
    }));
  }
  if (world.runFault(host, 'ssh-down', world.settings.ssh.failShare)) {
    throw new HostStepError(m.name, 'ssh', `${m.ssh.user}@${m.ssh.host}:${m.ssh.port}: connect ECONNREFUSED`);
  }
  if (world.fault(host, 'ssh-timeout', world.settings.ssh.timeoutShare)) {
    await world.wait(world.settings.ssh.handshakeTimeout);
    throw new HostStepError(m.name, 'ssh', `${m.ssh.user}@${m.ssh.host}:${m.ssh.port}: Timed out while waiting for handshake`);
  }
  return new SimRemote(world, host);
}

const FACTS_MARK = 'echo "os_id=';

/** The chain as `iptables -S` would list it; the script's digest stands for its rules (cached: every host gets the same script). */
const listings = new Map<string, string>();
function ruleListing(script: string): string {
  let l = listings.get(script);
  if (l === undefined) {
    if (listings.size > 64) listings.clear();
    listings.set(script, (l = `-N SWARMFORM\n-A SWARMFORM -m comment --comment "swarmform ${fnv1a(script).toString(16)}"\n`));
  }
  return l;
}

export class SimRemote implements Remote {
  private docker?: Docker;
  private closed = false;

  constructor(
    private readonly world: SimWorld,
    private readonly host: SimHost,
  ) {
    world.connectionOpened();
  }

  get name(): string {
    return this.host.name;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async run(command: string, _opts: RunOptions = {}): Promise<CommandResult> {
    if (this.closed) throw new HostStepError(this.name, 'ssh', 'cannot start a command: the connection is closed');
    await this.world.wait(this.world.settings.ssh.rtt);
    if (!this.world.host(this.host.name)) return { code: 255, stdout: '', stderr: 'Connection closed by remote host' };
    return this.exec(command.trim());
  }

  async check(command: string, step: string, opts?: RunOptions): Promise<string> {
    const r = await this.run(command, opts);
    if (r.code !== 0) {
      const why = tail(r.stderr || r.stdout) || `exit status ${r.code}`;
      throw new HostStepError(this.name, step, `command failed (exit ${r.code}): ${why}`, { command: command.trim().split('\n')[0], stderr: r.stderr });
    }
    return r.stdout;
  }

  async putFile(localPath: string, remotePath: string): Promise<void> {
    await this.world.wait(this.world.settings.ssh.rtt, 2);
    this.host.files[remotePath] = `(uploaded from ${localPath})`;
  }

  async putContent(content: string | Buffer, remotePath: string): Promise<void> {
    await this.world.wait(this.world.settings.ssh.rtt, 2);
    this.host.files[remotePath] = content.toString();
  }

  engine(): Docker {
    this.docker ??= simDocker(this.world, this.host, Docker);
    return this.docker;
  }

  async attach(command: string | undefined, io: AttachIO): Promise<number> {
    if (command === undefined) {
      io.stderr.write(`${this.name} is a simulated host: it runs no shell; pass a command after --\n`);
      return 1;
    }
    const r = await this.run(command);
    if (r.stdout) io.stdout.write(r.stdout);
    if (r.stderr) io.stderr.write(r.stderr);
    return r.code;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.world.connectionClosed();
  }

  /** The host's answer to one command: only what swarmform sends is modelled; anything else is "not found". */
  private async exec(cmd: string): Promise<CommandResult> {
    const { host, world } = this;
    const s = world.settings;
    const okOut = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });
    if (cmd.includes(FACTS_MARK)) return okOut(this.facts());
    if (/apt-get (\S+ )*install /.test(cmd)) {
      // The mirror serves `mirrorConcurrency` installs at once; more queue (scheduled in modelled time: see Servers).
      const install = world.mirror.schedule(world.real(world.rng.latency(s.engine.installTime)), undefined, 0, false);
      traceServer('mirror', s.engine.mirrorConcurrency, install.start, install.end);
      await sleepUntil(install.end);
      if (world.fault(host, 'install', s.engine.installFailShare)) {
        return {
          code: 100,
          stdout: '',
          stderr:
            'E: Failed to fetch http://deb.debian.org/debian/pool/main/d/docker.io/docker.io_20.10.24+dfsg1-1+b3_amd64.deb  503  Service Unavailable\n' +
            'E: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing?\n',
        };
      }
      host.installed = true;
      return okOut();
    }
    if (cmd === 'command -v dockerd') return host.installed ? okOut('/usr/bin/dockerd\n') : { code: 1, stdout: '', stderr: '' };
    const ctl = /^systemctl (start|restart|stop) docker$/.exec(cmd);
    if (ctl) {
      if (!host.installed) return { code: 5, stdout: '', stderr: 'Failed to start docker.service: Unit docker.service not found.\n' };
      if (ctl[1] === 'stop') host.running = false;
      else {
        await world.wait(s.engine.startTime);
        host.running = true;
        world.engineStarted(host);
      }
      return okOut();
    }
    if (cmd.startsWith('iptables -S SWARMFORM')) return host.firewall ? okOut(host.firewall) : { code: 1, stdout: '', stderr: '' };
    if (cmd.includes('iptables-restore')) {
      // The chain as `iptables -S` would list it: one line per rule of the script (its digest stands for the rules).
      host.firewall = ruleListing(cmd);
      return okOut();
    }
    if (cmd.includes('/dev/tcp/') || cmd.startsWith('nc -z')) return okOut();
    // Two files at once, separated by an empty line (the firewall's kept script and its boot unit).
    const cat2 = /^cat (\S+) 2>\/dev\/null; echo; cat (\S+) 2>\/dev\/null$/.exec(cmd);
    if (cat2) return okOut(`${host.files[cat2[1]!] ?? ''}\n${host.files[cat2[2]!] ?? ''}`);
    const cat = /^cat (\S+) 2>\/dev\/null$/.exec(cmd);
    if (cat) {
      const have = host.files[cat[1]!];
      return have === undefined ? { code: 1, stdout: '', stderr: '' } : okOut(have);
    }
    if (/^mkdir -p \S+$/.test(cmd) || cmd.startsWith('mkdir -p $(dirname ')) return okOut();
    if (/^systemctl daemon-reload && systemctl enable [\w.-]+ >\/dev\/null 2>&1$/.test(cmd)) return okOut();
    // `raft replace`/`recover` clearing a host's old swarm state: the engine (stopped first) forgets its swarm.
    if (cmd === 'rm -rf /var/lib/docker/swarm') {
      host.swarm = { state: 'inactive' };
      return okOut();
    }
    if (cmd === 'true' || cmd === ':') return okOut();
    if (cmd === 'hostname') return okOut(`${host.name}\n`);
    if (cmd === 'uptime') return okOut(` 00:00:00 up ${Math.max(1, Math.round((Date.now() - host.createdAt) / 60_000))} min,  0 users,  load average: 0.00, 0.00, 0.00\n`);
    return { code: 127, stdout: '', stderr: `sh: 1: ${cmd.split(/\s/)[0]}: not found (a simulated host models only the commands swarmform sends)\n` };
  }

  private facts(): string {
    const h = this.host;
    return [
      'os_id=debian',
      'os_like=',
      'os_version=12',
      'arch=x86_64',
      'kernel=6.1.0-sim',
      `hostname=${h.name}`,
      'init=systemd',
      ...(h.installed ? ['engine_path=/usr/bin/dockerd', `engine_version=${this.world.settings.engine.version}`] : []),
      `engine_running=${h.installed && h.running ? 'yes' : 'no'}`,
      'bundle_sha=',
      'firewall=iptables',
      `address=${h.address}`,
      '',
    ].join('\n');
  }
}
