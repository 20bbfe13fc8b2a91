/** One SSH connection per host for the whole run, opened in parallel with backoff while hosts boot. */
import type { EventBus, Phase } from '../base/events.js';
import type { Machine } from '../base/machine.js';
import type { Session } from '../remote/remote.js';
import { providerFor } from '../providers/registry.js';
import { HostStepError } from '../base/errors.js';
import { resolveSsh, type ResolvedSsh } from '../remote/ssh-config.js';
import { connectSsh, type HostKeyStore, HostKeyMismatchError } from '../remote/ssh-remote.js';
import { fanout } from '../run/fanout.js';
import { retry } from '../run/retry.js';


export class Sessions {
  private readonly open = new Map<string, Session>();

  constructor(
    private readonly hostKeys: HostKeyStore & { flush(): Promise<void> },
    private readonly events: EventBus,
  ) {}

  /** The connection of a host opened earlier in this run. */
  get(name: string): Session | undefined {
    const r = this.open.get(name);
    return r && !r.isClosed ? r : undefined;
  }

  /** Opens (or reuses) one connection per machine, waiting for SSH with backoff up to `timeoutS`; failures are returned. */
  async connect(machines: Machine[], opts: { phase: Phase; timeoutS: number; concurrency?: number; signal?: AbortSignal }) {
    const result = await fanout(machines, (m) => this.connectOne(m, opts.timeoutS), {
      phase: opts.phase, step: 'ssh', key: (m) => m.name, concurrency: opts.concurrency ?? 64, events: this.events, signal: opts.signal, quiet: true,
    });
    await this.flushHostKeys();
    return result;
  }

  /**
   * Opens (or reuses) one machine's connection, waiting for SSH with backoff up to `timeoutS`; throws on failure.
   * For callers that connect inside their own fan-out: they call {@link flushHostKeys} once at the end.
   */
  async connectOne(m: Machine, timeoutS: number): Promise<Session> {
    const have = this.get(m.name);
    if (have) return have;
    const deadline = Date.now() + timeoutS * 1000;
    // A provider with its own transport (the simulation) is reached through it instead of SSH.
    const provider = providerFor(m.provider);
    const via = provider.connect?.bind(provider);
    // The OpenSSH config (HostName, User, Port, IdentityFile, ProxyJump) fills what the inventory left unset.
    let target: ResolvedSsh | undefined;
    if (!via) {
      try {
        target = resolveSsh(m.ssh);
      } catch (err) {
        throw new HostStepError(m.name, 'ssh', `cannot use the OpenSSH config: ${(err as Error).message}`, { cause: err });
      }
    }
    const remote = await retry(
      () => via ? via(m) : connectSsh({ name: m.name, ...target! }, this.hostKeys, { readyTimeoutMs: 15_000 }),
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
  }

  /** Writes host keys learned by {@link connectOne} to the state (known_hosts). */
  flushHostKeys(): Promise<void> {
    return this.hostKeys.flush();
  }

  /** Closes every connection. */
  closeAll(): void {
    for (const r of this.open.values()) r.close();
    this.open.clear();
  }
}
