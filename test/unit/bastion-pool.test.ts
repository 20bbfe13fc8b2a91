/**
 * BastionPool against a real SSH server in this process (ssh2's Server on 127.0.0.1, nothing else reached): hosts
 * that share a bastion share one connection to it, counted by reference and closed when the last host lets go; a
 * failing bastion is named and leaves nothing referenced; a changed bastion host key is refused as a mismatch.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import ssh2 from 'ssh2';
import { BastionError, BastionPool, type HostKeyStore } from '../../src/remote/ssh-jump.js';

const { Server, utils } = ssh2;
const clientKey = Buffer.from(utils.generateKeyPairSync('ed25519').private);
let server: InstanceType<typeof Server>;
let port = 0;
let handshakes = 0;
let open = 0;

before(async () => {
  server = new Server({ hostKeys: [utils.generateKeyPairSync('ed25519').private] }, (client) => {
    client.on('authentication', (ctx) => (ctx.method === 'publickey' ? ctx.accept() : ctx.reject(['publickey'])));
    client.on('ready', () => {
      handshakes++;
      open++;
    });
    client.on('close', () => open--);
    client.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

function store(): HostKeyStore & { keys: Map<string, string> } {
  const keys = new Map<string, string>();
  return {
    keys,
    check: ({ host, port: p, key }) => {
      const have = keys.get(`${host}:${p}`);
      return have === undefined ? 'new' : have === key.toString('base64') ? 'match' : 'mismatch';
    },
    record: ({ host, port: p, key }) => void keys.set(`${host}:${p}`, key.toString('base64')),
  };
}

const waitFor = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), 'condition reached');
};

test('30 hosts behind one bastion share one connection, released when the last host lets go', async () => {
  const pool = new BastionPool();
  const chain = [{ host: '127.0.0.1', port, user: 'jump' }];
  const before = handshakes;
  const leases = await Promise.all(Array.from({ length: 30 }, () => pool.lease(chain, store(), { readyTimeoutMs: 5000, key: async () => clientKey })));
  assert.equal(handshakes - before, 1, 'one handshake with the bastion');
  assert.equal(pool.size, 1);
  assert.equal(pool.refs(chain), 30);
  assert.ok(leases.every((l) => l.conn === leases[0]!.conn));
  for (const l of leases.slice(0, 29)) l.release();
  leases[0]!.release();
  assert.equal(pool.refs(chain), 1, 'a second release of the same lease counts once');
  leases[29]!.release();
  assert.equal(pool.size, 0);
  await waitFor(() => open === 0);
});

test('a bastion that cannot be reached is named, and nothing stays referenced', async () => {
  const pool = new BastionPool();
  const chain = [{ host: '127.0.0.1', port: 1, user: 'jump' }];
  await assert.rejects(pool.lease(chain, store(), { readyTimeoutMs: 2000, key: async () => clientKey }), (err: unknown) => {
    assert.ok(err instanceof BastionError);
    assert.match(err.message, /^via bastion jump@127\.0\.0\.1:1: .*ECONNREFUSED/);
    assert.equal(err.mismatch, false);
    return true;
  });
  assert.equal(pool.size, 0);
});

test("a bastion whose host key changed is refused as a mismatch", async () => {
  const pool = new BastionPool();
  const chain = [{ host: '127.0.0.1', port, user: 'jump' }];
  const keys = store();
  keys.record({ host: '127.0.0.1', port, key: Buffer.from('another key') });
  await assert.rejects(pool.lease(chain, keys, { readyTimeoutMs: 5000, key: async () => clientKey }), (err: unknown) => {
    assert.ok(err instanceof BastionError);
    assert.equal(err.mismatch, true);
    assert.match(err.message, /host key of 127\.0\.0\.1:\d+ differs from the one recorded/);
    return true;
  });
  assert.equal(pool.size, 0);
  await waitFor(() => open === 0);
});

test('a server that closes the connection after the key was accepted (pam_nologin while booting) fails the handshake at once', async () => {
  const { handshake, HandshakeError } = await import('../../src/remote/ssh-jump.js');
  // As sshd does for a non-root login while /run/nologin exists: the key is fine, then the connection ends.
  const closing = new Server({ hostKeys: [utils.generateKeyPairSync('ed25519').private] }, (client) => {
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey') return ctx.reject(['publickey']);
      client.end();
    });
    client.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => closing.listen(0, '127.0.0.1', resolve));
  try {
    const p = (closing.address() as AddressInfo).port;
    const t0 = Date.now();
    // A long ready timeout: only noticing the close can end this quickly (it used to wait for ever).
    const err = await handshake({ host: '127.0.0.1', port: p, user: 'admin' }, store(), { readyTimeoutMs: 60_000, privateKey: clientKey }).then(
      (c) => (c.end(), undefined),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HandshakeError, String(err));
    assert.equal(err.mismatch, false, 'retryable: the host may finish booting');
    assert.match(err.message, /closed the connection before the session was ready.*still booting/);
    assert.ok(Date.now() - t0 < 10_000, `settled in ${Date.now() - t0} ms`);
  } finally {
    await new Promise<void>((resolve) => closing.close(() => resolve()));
  }
});
