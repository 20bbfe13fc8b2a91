/**
 * Shared by the cloud provider tests: a loopback "SSH" that only sends a banner (what providers wait for before
 * calling a machine up), fake credentials, an operator key pair, and a context built from inventory text through
 * the real loader.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { type Context, openContext } from '../../../src/cluster/context.js';
import { EventBus, type SwarmformEvent } from '../../../src/base/events.js';

/**
 * Fake credentials, made at run time in the providers' formats (so nothing key-shaped is committed) and unique per
 * run, so tests can prove they never show up in any output.
 */
export const FAKE = {
  awsKeyId: `AKIA${randomBytes(10).toString('hex').toUpperCase().slice(0, 16)}`,
  awsSecret: randomBytes(30).toString('base64'),
  doToken: `dop_v1_${randomBytes(32).toString('hex')}`,
};

/** Environment for anything that builds a cloud client in a test: fake credentials, no metadata service, no proxy. */
export function fakeCloudEnv(): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: FAKE.awsKeyId,
    AWS_SECRET_ACCESS_KEY: FAKE.awsSecret,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    DIGITALOCEAN_ACCESS_TOKEN: FAKE.doToken,
    // The providers refuse any API endpoint that is not a loopback stub.
    SWARMFORM_LOOPBACK_ONLY: '1',
    HTTP_PROXY: '',
    HTTPS_PROXY: '',
    http_proxy: '',
    https_proxy: '',
  };
}

/** Applies {@link fakeCloudEnv} to this process. */
export function useFakeCloudEnv(): void {
  Object.assign(process.env, fakeCloudEnv());
  delete process.env.AWS_PROFILE;
}

/** A TCP server on 127.0.0.1 that greets like sshd and hangs up. */
export async function sshBanner(): Promise<{ port: number; server: Server; close: () => Promise<void> }> {
  const server = createServer((s) => s.end('SSH-2.0-OpenSSH_9.2 stub\r\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { port, server, close: () => new Promise((r) => server.close(() => r())) };
}

/** A directory with an operator key pair (`key`, `key.pub`) made by ssh-keygen at run time, so none is committed. */
export function operatorKey(): { dir: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sf-cloud-key-'));
  const key = join(dir, 'key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'operator@test', '-f', key]);
  return { dir, key };
}

/** A context from inventory text (written next to the key), with every event it emits. */
export async function cloudContext(text: string, dir: string): Promise<{ ctx: Context; seen: SwarmformEvent[]; file: string }> {
  const file = join(dir, `inv-${Math.random().toString(16).slice(2, 8)}.yml`);
  writeFileSync(file, text);
  const events = new EventBus();
  const seen: SwarmformEvent[] = [];
  events.on((e) => seen.push(e));
  const ctx = await openContext(file, events);
  return { ctx, seen, file };
}

/** Log and step messages of events, one per line. */
export function messages(seen: SwarmformEvent[]): string {
  return seen
    .map((e) => (e.type === 'log' ? `${e.level}: ${e.message}` : e.type === 'step' ? `${e.host} ${e.step} ${e.status} ${e.message ?? ''}` : ''))
    .filter(Boolean)
    .join('\n');
}
