/** One SSH connection per host for the whole run, opened in parallel with backoff while hosts boot. */
import type { EventBus, Phase } from './events.js';
import type { Machine } from '../providers/provider.js';
import { connectSsh, type HostKeyStore, HostKeyMismatchError, type SshRemote } from '../remote/ssh-remote.js';
import { fanout } from '../run/fanout.js';
import { retry } from '../run/retry.js';

export class Sessions {
  private readonly open = new Map<string, SshRemote>();

  constructor(
    private readonly hostKeys: HostKeyStore & { flush(): Promise<void> },
    private readonly events: EventBus,
  ) {}

  /** The connection of a host opened earlier in this run. */
  get(name: string): SshRemote | undefined {
    const r = this.open.get(name);
    return r && !r.isClosed ? r : undefined;
  }

  /** Opens (or reuses) one connection per machine, waiting for SSH with backoff up to `timeoutS`; failures are returned. */
  async connect(machines: Machine[], opts: { phase: Phase; timeoutS: number; concurrency?: number; signal?: AbortSignal }) {
    const result = await fanout(
      machines,
      async (m) => {
        const have = this.get(m.name);
        if (have) return have;
        const deadline = Date.now() + opts.timeoutS * 1000;
        const remote = await retry(
          () => connectSsh({ name: m.name, host: m.ssh.host, port: m.ssh.port, user: m.ssh.user, keyPath: m.ssh.keyPath }, this.hostKeys, { readyTimeoutMs: 15_000 }),
          {
            retries: 1000,
            minMs: 200,
            maxMs: 3000,
            factor: 1.6,
            deadlineMs: deadline,
            retryable: (e) => !(e instanceof HostKeyMismatchError) && Date.now() < deadline,
          },
        );
        this.open.set(m.name, remote);
        return remote;
      },
      { phase: opts.phase, step: 'ssh', key: (m) => m.name, concurrency: opts.concurrency ?? 64, events: this.events, signal: opts.signal, quiet: true },
    );
    await this.hostKeys.flush();
    return result;
  }

  /** Closes every connection. */
  closeAll(): void {
    for (const r of this.open.values()) r.close();
    this.open.clear();
  }
}
