/**
 * The host's sshd: the first process of the host's mount and UTS namespaces, started detached so it outlives the
 * swarmform run. Every SSH session (and so everything bootstrap starts: dockerd, containerd, containers) inherits
 * the host's namespaces from it.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ExternalError } from '../../base/errors.js';
import type { MaskOverlay } from './engine-mask.js';
import { tail } from './exec.js';
import { netnsPath } from './netns.js';
import { HOST_MOUNTS, type HostPaths } from './paths.js';
import { isAlive } from './processes.js';

/**
 * Runs inside the new mount + UTS namespace, then becomes sshd. Arguments: hostname, sshd_config, then operations:
 * `bind SRC DST` or `overlay TARGET LOWERDIRS UPPER WORK`. Names and paths come in as positional
 * parameters, never spliced into the script text.
 *
 * First it drops the copies of network-namespace mounts (nsfs) the new mount namespace inherited: hosts created in
 * parallel would otherwise hold each other's netns alive (and with it the veth) after `ip netns del`.
 */
const HOST_INIT_SCRIPT = `set -e
name=$1; cfg=$2; shift 2
for mp in $(awk '{ for (i = 7; i < NF; i++) if ($i == "-") { if ($(i + 1) == "nsfs") print $5; break } }' /proc/self/mountinfo); do
  umount -l "$mp" 2>/dev/null || true
done
while [ $# -gt 0 ]; do
  case "$1" in
    bind) [ -d "$3" ] || mkdir -p "$3"; mount --bind "$2" "$3"; shift 3 ;;
    overlay) mount -t overlay overlay -o "lowerdir=$3,upperdir=$4,workdir=$5" "$2"; shift 5 ;;
    *) echo "swarmform lab: unknown mount operation $1" >&2; exit 1 ;;
  esac
done
hostname "$name"
exec /usr/sbin/sshd -D -e -f "$cfg"
`;

function quote(p: string): string {
  return `"${p}"`;
}

/** The host's sshd_config: key-only root login on the host's address, SFTP built in, no PAM (no init system). */
export function renderSshdConfig(address: string, paths: HostPaths): string {
  return [
    '# Written by swarmform (lab provider); rewritten on every start.',
    `ListenAddress ${address}:22`,
    `HostKey ${quote(paths.hostKey)}`,
    `AuthorizedKeysFile ${quote(paths.authorizedKeys)}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // Inside the host /run is the host's own directory.
    'PidFile /run/sshd.pid',
    'MaxSessions 64',
    'MaxStartups 100:30:200',
    'AllowStreamLocalForwarding yes',
    'AllowTcpForwarding yes',
    'X11Forwarding no',
    'StrictModes yes',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    'AcceptEnv LANG LC_*',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n');
}

/** Starts the host's namespaces and sshd; resolves with sshd's pid once it listens, or after a short grace period. */
export async function startSshd(opts: {
  netns: string;
  hostname: string;
  address: string;
  paths: HostPaths;
  overlays: MaskOverlay[];
}): Promise<number> {
  const { paths } = opts;
  const ops = [
    ...opts.overlays.flatMap((o) => ['overlay', o.target, o.lowers, o.upper, o.work]),
    // A directory mounted as an overlay (the preinstalled engine's /usr/local) is not bind-mounted over again.
    ...HOST_MOUNTS.filter((m) => !opts.overlays.some((o) => o.target === m.target)).flatMap((m) => ['bind', path.join(paths.fsDir, m.dir), m.target]),
  ];
  const log = await fs.open(paths.sshdLog, 'a', 0o640);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  try {
    const child = spawn(
      'nsenter',
      [
        `--net=${netnsPath(opts.netns)}`,
        'unshare',
        '--mount',
        '--uts',
        '--propagation',
        'private',
        '--',
        '/bin/sh',
        '-c',
        HOST_INIT_SCRIPT,
        'swarmform-lab-host',
        opts.hostname,
        paths.sshdConfig,
        ...ops,
      ],
      {
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
        // sshd builds its sessions' environment itself; pass only what the init script needs.
        env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' },
      },
    );
    child.on('error', (e) => (spawnError = e));
    child.on('exit', (code, signal) => (exited = { code, signal }));
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new ExternalError(`could not start sshd: ${spawnError?.message ?? 'no pid'}`, { hint: 'apt-get install -y openssh-server' });
    await fs.writeFile(paths.pidFile, `${pid}\n`, { mode: 0o644 });
    // A quick check only: bootstrap waits for SSH with backoff, but an sshd that dies at once (bad config, mount
    // failure) should fail the host here with its log.
    const until = Date.now() + 2_000;
    while (Date.now() < until) {
      if (spawnError || exited || !(await isAlive(pid))) {
        const text = await fs.readFile(paths.sshdLog, 'utf8').catch(() => '');
        const how = spawnError ? spawnError.message : exited ? `exited ${exited.code ?? exited.signal}` : 'died';
        throw new ExternalError(`sshd ${how}${text ? `: ${tail(text)}` : ''}`, { hint: `its log is ${paths.sshdLog}` });
      }
      if (await canConnect(opts.address, 22, 300)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return pid;
  } finally {
    await log.close();
  }
}

/** True when a TCP connection to address:port succeeds within `ms`. */
export function canConnect(address: string, port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: address, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(ms, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}
