/** Checks from a joining host that a manager's swarm port answers, so a blocked port is named instead of a vague timeout. */
import { HostStepError } from '../base/errors.js';
import type { Remote } from '../remote/remote.js';
import { shq } from '../remote/remote.js';
import { sleep } from '../run/retry.js';

/** Resolves when `address:port` accepts a TCP connection from `remote`; throws naming both ends and the port otherwise. */
export async function checkTcpReachable(remote: Remote, target: { name: string; address: string }, port: number, what: string, step: string): Promise<void> {
  const a = shq(target.address);
  const cmd =
    `if command -v bash >/dev/null 2>&1; then timeout 5 bash -c 'exec 3<>/dev/tcp/$0/$1' ${a} ${port}; ` +
    `elif command -v nc >/dev/null 2>&1; then nc -z -w 5 ${a} ${port}; else exit 0; fi`;
  // A manager busy signing certificates, on a loaded machine, can miss one short connect: only a port that stays
  // unreachable over three tries is reported as blocked.
  let r = await remote.run(cmd, { timeoutMs: 10_000 });
  for (let attempt = 2; r.code !== 0 && attempt <= 3; attempt++) {
    await sleep(1000);
    r = await remote.run(cmd, { timeoutMs: 10_000 });
  }
  if (r.code === 0) return;
  const why = r.code === 124 || /timed out/i.test(r.stderr) ? 'connection timed out (packets dropped)' : /refused/i.test(r.stderr) ? 'connection refused' : `exit ${r.code}: ${r.stderr.trim()}`;
  throw new HostStepError(remote.name, step, `cannot reach ${target.name} (${target.address}) on port ${port}/tcp (${what}): ${why}`, {
    hint: `a firewall blocks ${port}/tcp between ${remote.name} and ${target.name}; swarmform opens it unless swarm.firewall is false`,
  });
}
