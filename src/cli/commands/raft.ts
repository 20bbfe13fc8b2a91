/** `swarmform raft ...`: the managers' Raft group: status, replace, recover, backup, restore, unlock. */
import type { Argv, CommandModule } from 'yargs';
import { raftBackup, raftRestore } from '../../raft/backup.js';
import { raftRecover, type RecoverResult } from '../../raft/recover.js';
import { raftReplace } from '../../raft/replace.js';
import { raftStatus, STATUS_EXIT, type RaftStatus } from '../../raft/status.js';
import { raftUnlock } from '../../raft/unlock.js';
import { redact } from '../../state/redact.js';
import { type Common, run, typed } from '../command-kit.js';
import { table } from '../table.js';

/** Human-readable `raft status`. */
export function formatRaftStatus(s: RaftStatus): string {
  const head =
    s.health === 'lost'
      ? `Raft: quorum LOST (${s.reachable} of ${s.count} managers reachable, ${s.quorum} needed): the swarm cannot take changes`
      : `Raft: ${s.health === 'healthy' ? 'healthy' : 'DEGRADED'}, leader ${s.leader}, ${s.reachable} of ${s.count} managers reachable, quorum ${s.quorum}, ` +
        `tolerates ${s.tolerates} more loss(es) now`;
  const out = [`Cluster ${s.cluster}${s.swarmId ? ` (swarm ${s.swarmId.slice(0, 12)}${s.readFrom ? `, read from ${s.readFrom}` : ''})` : ''}`, head, ''];
  out.push(
    table(
      ['MANAGER', 'RAFT', 'ENGINE', 'ADDRESS', 'CERT EXPIRES', 'NOTE'],
      s.managers.map((m) => [m.host, m.raft, m.engine, m.address ?? '', m.certExpires?.slice(0, 10) ?? '', m.message ?? '']),
    ),
  );
  if (s.settings) {
    const x = s.settings;
    out.push(
      '',
      `Settings: autolock ${x.autolock ? 'on' : 'off'}, snapshot every ${x.snapshotInterval} entries, keep ${x.keepOldSnapshots} old snapshot(s), ` +
        `${x.logEntriesForSlowFollowers} log entries for slow followers, election/heartbeat ticks ${x.electionTick ?? '?'}/${x.heartbeatTick ?? '?'}, ` +
        `dispatcher heartbeat ${x.heartbeatPeriodS} s, node certificates ${x.certExpiryHours !== undefined ? `${Math.round(x.certExpiryHours)} h` : 'default'}, ` +
        `task history ${x.taskHistoryLimit}`,
    );
  }
  if (s.locked.length) out.push(`Locked (autolock): ${s.locked.join(', ')}: run \`swarmform raft unlock\``);
  for (const w of s.warnings) out.push(`warning: ${w}`);
  return out.join('\n');
}

function formatRecover(r: RecoverResult): string {
  const p = r.plan;
  const out = [`${r.dryRun ? 'Plan (dry run, nothing changed)' : 'Recovered'}: rebuild from ${p.survivor} (${p.why})`, ...p.steps.map((s, i) => `  ${i + 1}. ${s}`)];
  if (!r.dryRun) out.push(`Managers now: ${r.managers.join(', ')} (leader ${r.leader}).`);
  return out.join('\n');
}

export const raftCommand: CommandModule<Common, Common> = {
  command: 'raft <command>',
  describe: 'the managers\' Raft group: status, replace, recover, backup, restore, unlock',
  builder: (y: Argv<Common>) =>
    y
      .command({
        command: 'status',
        describe: 'leader, each manager\'s reachability, quorum and tolerance, settings, certificates; exits 1 when degraded, 4 when lost',
        handler: (a) => {
          const argv = typed<Common>(a);
          return run(argv, async (ctx) => {
            const s = await raftStatus(ctx);
            process.stdout.write(`${redact(argv.json ? JSON.stringify(s) : formatRaftStatus(s))}\n`);
            return STATUS_EXIT[s.health];
          }, { render: false });
        },
      })
      .command({
        command: 'replace <dead>',
        describe: 'remove a dead manager and promote a worker (or join --with HOST) to restore the manager count',
        builder: (b: Argv<Common>) =>
          b
            .positional('dead', { type: 'string', describe: 'the dead manager (inventory host name)' })
            .option('with', { type: 'string', describe: 'the host to take its place (default: a Ready worker, another zone first)' })
            .option('force', { type: 'boolean', default: false, describe: 'replace it even though the swarm sees it reachable' }),
        handler: (a) => {
          const argv = typed<Common & { dead: string; with?: string; force: boolean }>(a);
          return run(argv, async (ctx) => {
            const r = await raftReplace(ctx, argv.dead, { with: argv.with, force: argv.force });
            return argv.json
              ? { type: 'result', command: 'raft replace', ...r }
              : `Replaced ${r.removed} with ${r.replacement} (${r.how}); managers: ${r.managers.join(', ')}.` +
                  (r.cleared ? ` ${r.removed}'s old swarm state was cleared.` : ` ${r.removed} did not answer: clear its swarm state before it comes back.`) +
                  `\nThe move is recorded; update the inventory's roles to match when convenient.`;
          });
        },
      })
      .command({
        command: 'recover',
        describe: 'after losing the majority: force a new cluster on the best survivor, clear stale managers, restore the count',
        builder: (b: Argv<Common>) =>
          b
            .option('dry-run', { type: 'boolean', default: false, describe: 'show the plan, change nothing' })
            .option('from', { type: 'string', describe: 'the surviving manager to rebuild from (default: the newest Raft log)' })
            .option('force', { type: 'boolean', default: false, describe: 'recover even though a quorum answers' }),
        handler: (a) => {
          const argv = typed<Common & { dryRun: boolean; from?: string; force: boolean }>(a);
          return run(argv, async (ctx) => {
            const r = await raftRecover(ctx, { dryRun: argv.dryRun, from: argv.from, force: argv.force });
            return argv.json ? { type: 'result', command: 'raft recover', ...r } : formatRecover(r);
          });
        },
      })
      .command({
        command: 'backup',
        describe: 'archive the swarm state from a manager that is not the leader (its engine stops for the copy)',
        builder: (b: Argv<Common>) =>
          b
            .option('from', { type: 'string', describe: 'the manager to copy from (default: a reachable non-leader)' })
            .option('out', { alias: 'o', type: 'string', describe: 'archive file (default: CLUSTER-raft-TIME.tar in this directory); written 0600' }),
        handler: (a) => {
          const argv = typed<Common & { from?: string; out?: string }>(a);
          return run(argv, async (ctx) => {
            const r = await raftBackup(ctx, { from: argv.from, out: argv.out });
            return argv.json
              ? { type: 'result', command: 'raft backup', ...r }
              : `Backup of ${r.from}'s swarm state: ${r.archive} (${r.bytes} bytes, sha256 ${r.sha256.slice(0, 16)}..., mode 0600${r.autolock ? ', with the unlock key' : ''}); ` +
                  `engine down ${r.engineDownS.toFixed(1)} s.\n${r.contents.services.length} service(s), ${r.contents.networks.length} network(s), ${r.contents.secrets.length} secret(s), ${r.contents.configs.length} config(s).`;
          });
        },
      })
      .command({
        command: 'restore <archive>',
        describe: 'build a new swarm from a backup on a fresh host of this inventory',
        builder: (b: Argv<Common>) =>
          b
            .positional('archive', { type: 'string' })
            .option('to', { type: 'string', demandOption: true, describe: 'the host to restore onto (created by `swarmform bootstrap`)' })
            .option('force', { type: 'boolean', default: false, describe: 'replace the host\'s current swarm state' }),
        handler: (a) => {
          const argv = typed<Common & { archive: string; to: string; force: boolean }>(a);
          return run(argv, async (ctx) => {
            const r = await raftRestore(ctx, argv.archive, { to: argv.to, force: argv.force });
            return argv.json
              ? { type: 'result', command: 'raft restore', ...r }
              : `Restored cluster ${r.fromCluster}'s swarm onto ${r.to} (swarm ${r.swarmId.slice(0, 12)}): ${r.services.length} service(s): ${r.services.join(', ') || 'none'}. ` +
                  `Removed ${r.removedNodes} node(s) of the old cluster. ` +
                  (r.readdressed ? `Moved its Raft address from ${r.readdressed.from} to ${r.readdressed.to} (through ${r.readdressed.via}, which left again). ` : '') +
                  'Run `up` to join the other hosts.';
          });
        },
      })
      .command({
        command: 'unlock',
        describe: 'unlock managers that an engine restart locked (autolock), with the key kept in the state',
        handler: (a) => {
          const argv = typed<Common>(a);
          return run(argv, async (ctx) => {
            const r = await raftUnlock(ctx);
            if (argv.json) process.stdout.write(`${JSON.stringify({ type: 'result', command: 'raft unlock', ...r })}\n`);
            else {
              process.stdout.write(
                `${r.unlocked.length ? `Unlocked ${r.unlocked.join(', ')}.` : 'No manager was locked.'}${r.alreadyActive.length ? ` Active already: ${r.alreadyActive.join(', ')}.` : ''}\n`,
              );
              for (const f of r.failed) process.stderr.write(`${redact(`${f.host}: ${f.message}`)}\n`);
            }
            return r.failed.length ? 1 : 0;
          });
        },
      })
      .demandCommand(1, 'name a raft command: status, replace, recover, backup, restore, unlock'),
  handler: () => undefined,
};
