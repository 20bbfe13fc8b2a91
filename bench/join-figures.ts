/** Figures of the swarm phase from an `up --json` or `swarm --json` event stream, and lab helpers the benchmarks share. */
import { execFileSync } from 'node:child_process';
import { onHost, type StateMachine } from '../test/support/lab.js';

/** Join and swarm-phase figures from an events file: joins/s, in-flight peak, timeouts, failures. */
export function joinFigures(stdout: string): { swarmS: number; joinsPerS: number; joins: number; failed: number; timedOut: number; paced: string } {
  const ev = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const joins = ev.filter((e) => e.type === 'step' && e.phase === 'swarm' && e.step === 'join worker');
  const ok = joins.filter((e) => e.status === 'ok');
  const starts = joins.filter((e) => e.status === 'start').map((e) => e.ts as number);
  const ends = ok.map((e) => e.ts as number);
  const spanS = starts.length && ends.length ? (Math.max(...ends) - Math.min(...starts)) / 1000 : NaN;
  const phase = ev.find((e) => e.type === 'phase' && e.phase === 'swarm' && e.status === 'end');
  return {
    swarmS: (phase?.ms as number) / 1000,
    joins: ok.length,
    joinsPerS: ok.length / spanS,
    failed: joins.filter((e) => e.status === 'fail').length,
    timedOut: ok.filter((e) => String(e.message ?? '').includes('timed out')).length,
    paced: String(ev.find((e) => e.type === 'log' && String(e.message).startsWith('worker joins paced'))?.message ?? ''),
  };
}


/** Every host leaves its swarm (managers too): the next `swarm --force` forms a new one on the same hosts. */
export async function leaveAll(machines: StateMachine[]): Promise<void> {
  await Promise.all(machines.map((m) => onHost(m, 'docker swarm leave --force >/dev/null 2>&1; true')));
}

/** Nodes Ready in `docker node ls` on `lead`. */
export async function countReady(lead: StateMachine): Promise<number> {
  const out = await onHost(lead, "docker node ls --format '{{.Status}}'");
  return out.stdout.split('\n').filter((l) => l === 'Ready').length;
}

/** The command line's options: `opt(name, default)` takes `--name VALUE` out of `args`; what is left are the operands. */
export function benchArgs(): { args: string[]; opt: (name: string, dflt: string) => string } {
  const args = process.argv.slice(2);
  const opt = (name: string, dflt: string): string => {
    const i = args.indexOf(name);
    return i >= 0 && args[i + 1] ? args.splice(i, 2)[1]! : dflt;
  };
  return { args, opt };
}

/** Stops (exit 2) when lab hosts of other clusters are up, unless `shared`: their load would skew the figures. */
export function refuseBusyMachine(cluster: string, shared: boolean): void {
  const others = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('sf-') && !l.startsWith(`sf-${cluster}-`));
  if (others.length > 0 && !shared) {
    console.error(`${others.length} lab hosts of other clusters are up (e.g. ${others[0]!.split(' ')[0]}): figures would be skewed. Re-run with --shared to go on.`);
    process.exit(2);
  }
}
