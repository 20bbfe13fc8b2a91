/**
 * The Raft, dispatcher, CA and orchestration settings the inventory asks for, with the `profile: large` preset,
 * turned into the Engine API's swarm spec (applied at init and with `swarm update` when they differ) and the per-node
 * daemon.json keys (the Raft ticks, which SwarmKit reads only from the engine's own configuration).
 */
import type { SwarmSettings } from './types.js';

const NS_PER_S = 1_000_000_000;

/** The settings in force for a cluster: the inventory's own values over the profile's preset. */
export interface EffectiveSettings {
  autolock: boolean;
  drainManagers: boolean;
  snapshotInterval?: number;
  keepOldSnapshots?: number;
  logEntriesForSlowFollowers?: number;
  electionTick?: number;
  heartbeatTick?: number;
  /** Seconds. */
  heartbeatPeriod?: number;
  certExpiryHours?: number;
  taskHistoryLimit?: number;
}

/**
 * `profile: large`: settings for clusters of thousands of nodes (Swarm2k/Swarm3k lessons, see the README):
 * drained managers (they are CPU-bound), a 20 s dispatcher heartbeat (fewer heartbeats per second to the managers),
 * one finished task kept per slot and a wider snapshot interval (a smaller store and fewer full snapshots: snapshots
 * over 4 MB broke adding managers), old snapshots kept for recovery, and more log entries for slow followers (a
 * follower catches up from the log instead of a large snapshot).
 */
export const LARGE_PROFILE: Omit<EffectiveSettings, 'autolock'> = {
  drainManagers: true,
  heartbeatPeriod: 20,
  taskHistoryLimit: 1,
  snapshotInterval: 20_000,
  keepOldSnapshots: 2,
  logEntriesForSlowFollowers: 2_000,
};

/** Merges the inventory's settings over the profile's preset; keys neither sets stay undefined (left as they are). */
export function effectiveSettings(s: SwarmSettings): EffectiveSettings {
  const preset: Partial<EffectiveSettings> = s.profile === 'large' ? LARGE_PROFILE : {};
  const pick = <T>(own: T | undefined, p: T | undefined): T | undefined => (own !== undefined ? own : p);
  return {
    autolock: s.autolock,
    drainManagers: s.drainManagers || Boolean(preset.drainManagers),
    snapshotInterval: pick(s.raft?.snapshotInterval, preset.snapshotInterval),
    keepOldSnapshots: pick(s.raft?.keepOldSnapshots, preset.keepOldSnapshots),
    logEntriesForSlowFollowers: pick(s.raft?.logEntriesForSlowFollowers, preset.logEntriesForSlowFollowers),
    electionTick: pick(s.raft?.electionTick, preset.electionTick),
    heartbeatTick: pick(s.raft?.heartbeatTick, preset.heartbeatTick),
    heartbeatPeriod: pick(s.dispatcher?.heartbeatPeriod, preset.heartbeatPeriod),
    certExpiryHours: pick(s.certExpiryHours, preset.certExpiryHours),
    taskHistoryLimit: pick(s.taskHistoryLimit, preset.taskHistoryLimit),
  };
}

/** The part of the Engine API's swarm spec swarmform manages. */
export interface ManagedSpec {
  Orchestration?: { TaskHistoryRetentionLimit?: number };
  Raft?: { SnapshotInterval?: number; KeepOldSnapshots?: number; LogEntriesForSlowFollowers?: number };
  Dispatcher?: { HeartbeatPeriod?: number };
  CAConfig?: { NodeCertExpiry?: number };
  EncryptionConfig?: { AutoLockManagers?: boolean };
}

/** The spec fragment for `swarm init` (and the target of `swarm update`): only keys the inventory or profile set, and autolock. */
export function specFor(e: EffectiveSettings): ManagedSpec {
  const spec: ManagedSpec = { EncryptionConfig: { AutoLockManagers: e.autolock } };
  const raft: NonNullable<ManagedSpec['Raft']> = {};
  if (e.snapshotInterval !== undefined) raft.SnapshotInterval = e.snapshotInterval;
  if (e.keepOldSnapshots !== undefined) raft.KeepOldSnapshots = e.keepOldSnapshots;
  if (e.logEntriesForSlowFollowers !== undefined) raft.LogEntriesForSlowFollowers = e.logEntriesForSlowFollowers;
  if (Object.keys(raft).length) spec.Raft = raft;
  if (e.heartbeatPeriod !== undefined) spec.Dispatcher = { HeartbeatPeriod: Math.round(e.heartbeatPeriod * NS_PER_S) };
  if (e.certExpiryHours !== undefined) spec.CAConfig = { NodeCertExpiry: e.certExpiryHours * 3600 * NS_PER_S };
  if (e.taskHistoryLimit !== undefined) spec.Orchestration = { TaskHistoryRetentionLimit: e.taskHistoryLimit };
  return spec;
}

/** The Raft ticks for daemon.json (per node; the engine must restart to take them). */
export function tickDaemonKeys(e: EffectiveSettings): Record<string, number> {
  const out: Record<string, number> = {};
  if (e.heartbeatTick !== undefined) out['swarm-raft-heartbeat-tick'] = e.heartbeatTick;
  if (e.electionTick !== undefined) out['swarm-raft-election-tick'] = e.electionTick;
  return out;
}

/** The full swarm spec with `want` merged in, and the keys that differ (empty when nothing must change). */
export function mergeSpec(current: Record<string, unknown>, want: ManagedSpec): { spec: Record<string, unknown>; changed: string[] } {
  const spec: Record<string, unknown> = { ...current };
  const changed: string[] = [];
  for (const [section, values] of Object.entries(want) as [string, Record<string, unknown>][]) {
    const have = { ...((current[section] as Record<string, unknown> | undefined) ?? {}) };
    for (const [k, v] of Object.entries(values)) {
      const cur = have[k] ?? (k === 'AutoLockManagers' ? false : undefined);
      if (cur !== v) changed.push(`${section}.${k}`);
      have[k] = v;
    }
    spec[section] = have;
  }
  return { spec, changed };
}

/** What the swarm has in force, as `raft status` shows it (seconds and hours rather than nanoseconds). */
export interface SettingsInForce {
  autolock: boolean;
  snapshotInterval?: number;
  keepOldSnapshots?: number;
  logEntriesForSlowFollowers?: number;
  electionTick?: number;
  heartbeatTick?: number;
  heartbeatPeriodS?: number;
  certExpiryHours?: number;
  taskHistoryLimit?: number;
}

/** Reads the settings in force from a swarm inspect result. */
export function settingsInForce(spec: Record<string, any>): SettingsInForce {
  const ns = (v: unknown) => (typeof v === 'number' ? v / NS_PER_S : undefined);
  return {
    autolock: Boolean(spec.EncryptionConfig?.AutoLockManagers),
    snapshotInterval: spec.Raft?.SnapshotInterval,
    keepOldSnapshots: spec.Raft?.KeepOldSnapshots ?? 0,
    logEntriesForSlowFollowers: spec.Raft?.LogEntriesForSlowFollowers,
    electionTick: spec.Raft?.ElectionTick,
    heartbeatTick: spec.Raft?.HeartbeatTick,
    heartbeatPeriodS: ns(spec.Dispatcher?.HeartbeatPeriod),
    certExpiryHours: typeof spec.CAConfig?.NodeCertExpiry === 'number' ? spec.CAConfig.NodeCertExpiry / NS_PER_S / 3600 : undefined,
    taskHistoryLimit: spec.Orchestration?.TaskHistoryRetentionLimit,
  };
}
