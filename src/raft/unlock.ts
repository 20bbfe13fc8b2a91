/** `raft unlock`: unlocks every locked manager (autolock) with the key kept in the state. */
import type { Context } from '../cluster/context.js';
import { unlockOne, withSessions } from './common.js';
import { resolveMembers } from '../cluster/machines.js';
import { probeHosts } from './probe.js';

export interface UnlockResult {
  unlocked: string[];
  alreadyActive: string[];
  failed: { host: string; message: string }[];
}

/** Unlocks every locked manager with the key kept in the state. */
export async function raftUnlock(ctx: Context): Promise<UnlockResult> {
  const machines = await resolveMembers(ctx);
  return withSessions(ctx, async (sessions) => {
    const probes = await probeHosts(ctx, machines.filter((m) => m.role === 'manager'), sessions);
    const out: UnlockResult = { unlocked: [], alreadyActive: [], failed: [] };
    for (const p of probes) {
      if (p.engine !== 'locked') {
        if (p.engine === 'active') out.alreadyActive.push(p.machine.name);
        else out.failed.push({ host: p.machine.name, message: `engine ${p.engine}${p.message ? `: ${p.message}` : ''}` });
        continue;
      }
      try {
        await unlockOne(ctx, p.member!);
        out.unlocked.push(p.machine.name);
      } catch (err) {
        out.failed.push({ host: p.machine.name, message: (err as Error).message });
      }
    }
    return out;
  });
}
