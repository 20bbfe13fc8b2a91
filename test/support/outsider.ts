/**
 * A lab host that is not a cluster member: a bare network namespace the test makes on the cluster's bridge, to probe
 * a member's ports from outside the member list. Removed by `remove()` (and its namespace name starts with the
 * test's own prefix, so labLeftovers does not mistake it for the cluster's).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { defaultBridgeName } from '../../src/providers/lab/names.js';

const execFileP = promisify(execFile);

export interface Outsider {
  address: string;
  /** True when a TCP connection to address:port completes within 3 s. */
  tcpOpen(address: string, port: number): Promise<boolean>;
  remove(): Promise<void>;
}

/** Makes the namespace with address `<subnet base>.<hostByte>` on the cluster's default bridge. */
export async function outsider(cluster: string, subnet: string, hostByte: number): Promise<Outsider> {
  const [base, prefix] = subnet.split('/');
  const address = `${base!.split('.').slice(0, 3).join('.')}.${hostByte}`;
  const ns = `sfx-${process.pid % 100000}-${hostByte}`;
  const veth = `sfx${process.pid % 100000}${hostByte}`.slice(0, 15);
  const remove = async () => {
    await execFileP('ip', ['netns', 'del', ns]).catch(() => undefined);
    await execFileP('ip', ['link', 'del', veth]).catch(() => undefined);
  };
  await remove();
  try {
    await execFileP('ip', ['netns', 'add', ns]);
    await execFileP('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await execFileP('ip', ['link', 'set', veth, 'master', defaultBridgeName(cluster), 'up']);
    await execFileP('ip', ['-n', ns, 'addr', 'add', `${address}/${prefix}`, 'dev', 'eth0']);
    await execFileP('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    await execFileP('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  } catch (e) {
    await remove();
    throw e;
  }
  return {
    address,
    remove,
    async tcpOpen(target: string, port: number) {
      // A dropped SYN times out; a refused one fails at once: both are "not open".
      const r = await execFileP('nsenter', [`--net=/run/netns/${ns}`, 'timeout', '3', 'bash', '-c', `</dev/tcp/${target}/${port}`]).then(
        () => true,
        () => false,
      );
      return r;
    },
  };
}
