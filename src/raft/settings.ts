/** Applying the swarm settings to a running swarm through a manager's Engine API, and the unlock key calls. */
import type Docker from 'dockerode';
import { mergeSpec, type ManagedSpec } from '../inventory/swarm-settings.js';

/** Applies `want` with `swarm update` when it differs; returns the keys changed. */
export async function updateSwarmSpec(engine: Docker, want: ManagedSpec): Promise<string[]> {
  const sw = (await engine.swarmInspect()) as { Version: { Index: number }; Spec: Record<string, unknown> };
  const { spec, changed } = mergeSpec(sw.Spec, want);
  if (changed.length === 0) return [];
  await engine.swarmUpdate({ _query: { version: sw.Version.Index }, _body: spec } as object);
  return changed;
}

/** The swarm's current unlock key (`docker swarm unlock-key -q`); undefined when autolock is off. */
export async function readUnlockKey(engine: Docker): Promise<string | undefined> {
  const r = (await dial(engine, { path: '/swarm/unlockkey', method: 'GET', statusCodes: { 200: true, 503: 'node is not part of a swarm' } })) as { UnlockKey?: string };
  return r?.UnlockKey || undefined;
}

/** Unlocks a locked manager's engine (`docker swarm unlock`). */
export async function unlockEngine(engine: Docker, key: string): Promise<void> {
  await dial(engine, {
    path: '/swarm/unlock',
    method: 'POST',
    options: { UnlockKey: key },
    statusCodes: { 200: true, 400: 'bad parameter', 500: 'server error', 503: 'node is not part of a swarm' },
  });
}

/** A raw Engine API call through dockerode's modem, for endpoints dockerode does not wrap. */
export function dial(engine: Docker, opts: Record<string, unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    (engine.modem as unknown as { dial(o: object, cb: (err: unknown, data: unknown) => void): void }).dial(opts, (err, data) => (err ? reject(err) : resolve(data)));
  });
}
