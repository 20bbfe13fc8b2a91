import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LockedError, SwarmformError, UsageError } from '../../src/base/errors.js';
import type { Machine } from '../../src/base/machine.js';
import { clusterDir, fingerprint, keyType, KnownHosts, lockPath, openState, redact, stateHome } from '../../src/state/index.js';

let home: string;
const env = (): NodeJS.ProcessEnv => ({ SWARMFORM_HOME: home });
const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;

function machine(name: string, extra: Partial<Machine> = {}): Machine {
  return {
    name,
    role: 'worker',
    group: 'workers',
    provider: 'lab',
    providerId: name,
    privateAddress: '10.0.0.1',
    ssh: { host: '10.0.0.1', port: 22, user: 'root' },
    labels: {},
    init: 'systemd',
    ...extra,
  } as Machine;
}

before(async () => {
  home = await mkdtemp(join(tmpdir(), 'swarmform-state-'));
});
after(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('state paths', () => {
  it('uses SWARMFORM_HOME, else XDG_DATA_HOME/swarmform, else ~/.local/share/swarmform', () => {
    assert.equal(stateHome({ SWARMFORM_HOME: '/srv/sf', XDG_DATA_HOME: '/x' }), '/srv/sf');
    assert.equal(stateHome({ XDG_DATA_HOME: '/x' }), '/x/swarmform');
    assert.match(stateHome({}), /\.local\/share\/swarmform$/);
    assert.equal(clusterDir('lab', { SWARMFORM_HOME: '/srv/sf' }), '/srv/sf/lab');
  });

  it('rejects cluster names that are not safe directory names', () => {
    for (const bad of ['', '../etc', 'a/b', '.hidden', 'a..b']) assert.throws(() => clusterDir(bad, env()), UsageError, bad);
  });
});

describe('ClusterState', () => {
  it('creates the cluster directory 0700 and reads an empty default', async () => {
    const s = await openState('empty', { env: env() });
    assert.equal(s.dir, join(home, 'empty'));
    assert.equal(await mode(s.dir), 0o700);
    assert.equal(s.knownHostsPath, join(s.dir, 'known_hosts'));
    const st = await s.read();
    assert.deepEqual({ ...st, updatedAt: undefined }, { version: 1, cluster: 'empty', machines: [], updatedAt: undefined });
  });

  it('writes atomically with mode 0600 and leaves no temporary files', async () => {
    const s = await openState('atomic', { env: env() });
    await s.write({ version: 1, cluster: 'atomic', machines: [machine('m-1')], updatedAt: '' });
    assert.equal(await mode(s.statePath), 0o600);
    const st = await s.read();
    assert.equal(st.machines[0].name, 'm-1');
    assert.notEqual(st.updatedAt, '');
    // A wider mode left by someone else is narrowed on the next write.
    await import('node:fs/promises').then((fs) => fs.chmod(s.statePath, 0o644));
    await s.write({ ...st, swarm: { clusterId: 'abc', createdAt: new Date().toISOString() } });
    assert.equal(await mode(s.statePath), 0o600);
    assert.deepEqual((await readdir(s.dir)).sort(), ['state.json']);
  });

  it('saveMachines merges by name, and concurrent saves all land (coalesced)', async () => {
    const s = await openState('merge', { env: env() });
    await s.saveMachines([machine('a'), machine('b')]);
    await s.saveMachines([machine('b', { privateAddress: '10.0.0.9' }), machine('c')]);
    let st = await s.read();
    assert.deepEqual(st.machines.map((m) => m.name), ['a', 'b', 'c']);
    assert.equal(st.machines[1].privateAddress, '10.0.0.9');

    await Promise.all(Array.from({ length: 300 }, (_, i) => s.saveMachines([machine(`w-${i}`)])));
    st = await s.read();
    assert.equal(st.machines.length, 303);
    await s.forgetMachines(['a', 'w-0']);
    st = await s.read();
    assert.equal(st.machines.length, 301);
    assert.ok(!st.machines.some((m) => m.name === 'a' || m.name === 'w-0'));
  });

  it('keeps secrets in a separate 0600 file, never in state.json', async () => {
    const s = await openState('secrets', { env: env() });
    assert.deepEqual(await s.readSecrets(), {});
    const token = ['SWMTKN', '1', randomBytes(25).toString('hex'), randomBytes(12).toString('hex')].join('-');
    await s.writeSecrets({ workerToken: token, managerToken: `${token}m` });
    await s.saveMachines([machine('m-1')]);
    assert.equal(await mode(join(s.dir, 'secrets.json')), 0o600);
    assert.deepEqual(await s.readSecrets(), { workerToken: token, managerToken: `${token}m` });
    assert.ok(!(await readFile(s.statePath, 'utf8')).includes(token));
  });

  it('a second holder gets LockedError naming the pid and the lock path; after release it can lock', async () => {
    const one = await openState('locked', { env: env() });
    const two = await openState('locked', { env: env() });
    const release = await one.lock();
    await assert.rejects(two.lock(), (err: unknown) => {
      assert.ok(err instanceof LockedError);
      assert.match(err.message, /^cluster locked is locked by another swarmform run \(pid \d+/);
      assert.ok(err.message.includes(`pid ${process.pid}`));
      assert.ok(err.message.includes(`if no run is active, remove ${lockPath(one.dir)}`));
      return true;
    });
    await release();
    await release(); // idempotent
    const again = await two.lock();
    await again();
  });

  it('takes over a lock left by a process that died on this machine', async () => {
    const s = await openState('orphan', { env: env() });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    await mkdir(lockPath(s.dir));
    await writeFile(join(s.dir, 'lock.json'), JSON.stringify({ pid: dead, hostname: hostname(), startedAt: 'earlier' }));
    const release = await s.lock();
    assert.equal(JSON.parse(await readFile(join(s.dir, 'lock.json'), 'utf8')).pid, process.pid);
    await release();
  });

  it('reports a damaged state file with the path', async () => {
    const s = await openState('damaged', { env: env() });
    await writeFile(s.statePath, '{ not json');
    await assert.rejects(s.read(), (err: unknown) => err instanceof SwarmformError && err.message.includes(s.statePath));
    await writeFile(s.statePath, JSON.stringify({ version: 7, machines: [] }));
    await assert.rejects(s.read(), /version 7/);
  });

  it('check() finds a damaged file before anything is written: exit 2, and a hint whose command moves it aside', async () => {
    const s = await openState('damaged-check', { env: env() });
    await writeFile(s.statePath, '{"version": 1, "machines": [');
    const err = await s.check().then(() => undefined, (e: unknown) => e as UsageError);
    assert.ok(err instanceof UsageError, String(err));
    assert.equal(err.exitCode, 2);
    assert.match(err.message, /state\.json is damaged: not valid JSON/);
    const mv = /move it aside \((mv [^)]*)\)/.exec(err.hint ?? '')?.[1];
    assert.ok(mv, err.hint);
    assert.equal(spawnSync('sh', ['-c', mv]).status, 0, mv);
    await s.check();
    assert.deepEqual((await s.read()).machines, []);
    assert.equal(await readFile(`${s.statePath}.damaged`, 'utf8'), '{"version": 1, "machines": [', 'nothing lost: the damaged file is kept aside');
    // secrets.json holds the unlock key: its hint never says to throw it away, and asks for a backup first.
    await writeFile(s.secretsPath, 'garbage');
    await assert.rejects(s.check(), (e: unknown) => e instanceof UsageError && /secrets\.json is damaged/.test(e.message) && /restore it from a backup \(it holds the unlock key/.test(e.hint ?? ''));
  });

  it('remove() deletes the directory, also while locked', async () => {
    const s = await openState('gone', { env: env() });
    const release = await s.lock();
    await s.saveMachines([machine('x')]);
    await s.remove();
    await assert.rejects(stat(s.dir), { code: 'ENOENT' });
    await release();
    await assert.rejects(stat(lockPath(s.dir)), { code: 'ENOENT' });
  });

  it('knownHosts() loads the cluster known_hosts once', async () => {
    const s = await openState('keys', { env: env() });
    const a = await s.knownHosts();
    const b = await s.knownHosts();
    assert.equal(a, b);
    assert.equal(a.path, s.knownHostsPath);
  });
});

/** An SSH public key blob as a server presents it: string type, then key data. */
function keyBlob(type = 'ssh-ed25519'): Buffer {
  const t = Buffer.from(type);
  const data = randomBytes(32);
  const len = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  return Buffer.concat([len(t.length), t, len(data.length), data]);
}

describe('KnownHosts', () => {
  it('says new, then match for the recorded key and mismatch for another', () => {
    const kh = new KnownHosts(join(home, 'unused'));
    const key = keyBlob();
    const hk = { host: '10.0.0.5', port: 22, key };
    assert.equal(kh.check(hk), 'new');
    kh.record(hk);
    assert.equal(kh.check(hk), 'match');
    assert.equal(kh.check({ ...hk, key: keyBlob() }), 'mismatch');
    assert.equal(kh.check({ ...hk, port: 2222 }), 'new', 'ports are separate entries');
    assert.equal(kh.check({ ...hk, host: '10.0.0.6' }), 'new');
    // Recording a new key (machine re-created at the same address) replaces the old one.
    const replaced = keyBlob('ecdsa-sha2-nistp256');
    kh.record({ ...hk, key: replaced });
    assert.equal(kh.check({ ...hk, key: replaced }), 'match');
    assert.equal(kh.check(hk), 'mismatch');
  });

  it('persists on flush() only, as OpenSSH lines, 0600, and reloads', async () => {
    const path = join(home, 'known_hosts_test');
    const kh = await KnownHosts.load(path);
    assert.equal(kh.size, 0);
    const keys = Array.from({ length: 1000 }, (_, i) => ({ host: `10.1.${i >> 8}.${i & 255}`, port: i % 2 ? 2222 : 22, key: keyBlob() }));
    for (const k of keys) kh.record(k);
    assert.equal(kh.unsaved, true);
    await assert.rejects(stat(path), { code: 'ENOENT' }, 'nothing written before flush');
    await Promise.all([kh.flush(), kh.flush()]);
    assert.equal(kh.unsaved, false);
    assert.equal(await mode(path), 0o600);
    const text = await readFile(path, 'utf8');
    const lines = text.trim().split('\n');
    assert.equal(lines.length, 1000);
    assert.equal(lines[0], `10.1.0.0 ssh-ed25519 ${keys[0].key.toString('base64')}`);
    assert.equal(lines[1], `[10.1.0.1]:2222 ssh-ed25519 ${keys[1].key.toString('base64')}`);

    const again = await KnownHosts.load(path);
    assert.equal(again.size, 1000);
    for (const k of keys.slice(0, 50)) assert.equal(again.check(k), 'match');
    assert.equal(again.check({ ...keys[3], key: keyBlob() }), 'mismatch');
  });

  it('reads OpenSSH files: comments kept, comma lists and [host]:port understood', async () => {
    const a = keyBlob();
    const b = keyBlob('ssh-rsa');
    const path = join(home, 'known_hosts_openssh');
    await writeFile(path, `# managed by hand\nnode-1,10.0.0.1 ssh-ed25519 ${a.toString('base64')} comment\n[node-2]:2200 ssh-rsa ${b.toString('base64')}\n`);
    const kh = await KnownHosts.load(path);
    assert.equal(kh.check({ host: 'NODE-1', port: 22, key: a }), 'match');
    assert.equal(kh.check({ host: '10.0.0.1', port: 22, key: a }), 'match');
    assert.equal(kh.check({ host: 'node-2', port: 2200, key: b }), 'match');
    kh.forget('node-2', 2200);
    await kh.flush();
    const text = await readFile(path, 'utf8');
    assert.ok(text.startsWith('# managed by hand\n'));
    assert.ok(!text.includes('node-2'));
  });

  it('reads the key type from the blob and prints OpenSSH fingerprints', () => {
    assert.equal(keyType(keyBlob('ssh-ed25519')), 'ssh-ed25519');
    assert.equal(keyType(Buffer.from('garbage')), 'unknown');
    assert.match(fingerprint(keyBlob()), /^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('redact', () => {
  // Secret-looking values are generated here, never written out literally.
  const base36 = (n: number) => Array.from(randomBytes(n), (b) => (b % 36).toString(36)).join('');
  const upperAlnum = (n: number) => Array.from(randomBytes(n), (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[b % 32]).join('');
  const joinToken = () => ['SWMTKN', '1', base36(50), base36(25)].join('-');
  const unlockKey = () => ['SWMKEY', '1', randomBytes(32).toString('base64')].join('-');
  const awsKeyId = () => `${'AKIA'}${upperAlnum(16)}`;
  const pem = (kind: string) => {
    const body = randomBytes(120).toString('base64').replace(/(.{64})/g, '$1\n');
    return [`-----BEGIN ${kind} PRIVATE KEY-----`, body, `-----END ${kind} PRIVATE KEY-----`].join('\n');
  };

  it('removes join tokens and unlock keys', () => {
    const t = joinToken();
    const k = unlockKey();
    const out = redact(`docker swarm join --token ${t} 10.0.0.1:2377\nunlock key: ${k}`);
    assert.ok(!out.includes(t) && !out.includes(k));
    assert.equal(out, 'docker swarm join --token [redacted] 10.0.0.1:2377\nunlock key: [redacted]');
  });

  it('removes AWS access keys and named secret values', () => {
    const id = awsKeyId();
    const secret = randomBytes(30).toString('base64');
    const out = redact(`AWS_ACCESS_KEY_ID=${id} aws_secret_access_key = ${secret} {"SecretAccessKey": "${secret}"}`);
    assert.ok(!out.includes(id));
    assert.ok(!out.includes(secret));
    assert.ok(out.includes('AWS_ACCESS_KEY_ID=[redacted]'));
  });

  it('removes private key blocks, also when cut off before END', () => {
    const key = pem('OPENSSH');
    const out = redact(`loaded\n${key}\nnext line`);
    assert.equal(out, 'loaded\n[redacted]\nnext line');
    const cut = pem('RSA').slice(0, 90);
    assert.equal(redact(`stderr tail: ${cut}`), 'stderr tail: [redacted]');
  });

  it('works inside JSON text and leaves ordinary text alone', () => {
    const t = joinToken();
    const json = JSON.stringify({ message: `join failed: ${t}`, key: pem('EC') });
    const out = redact(json);
    assert.ok(!out.includes(t));
    assert.deepEqual(JSON.parse(out), { message: 'join failed: [redacted]', key: '[redacted]' });
    const plain = 'worker-7: join worker: connection refused (10.0.0.7:2377) after 3 attempts';
    assert.equal(redact(plain), plain);
  });
});

describe('ClusterState ordering', () => {
  it('read() sees mutations queued before it, so read-modify-write keeps them', async () => {
    const s = await openState('ordering', { env: env() });
    void s.saveMachines([machine('queued-1')]);
    void s.saveMachines([machine('queued-2')]);
    const st = await s.read();
    assert.deepEqual(st.machines.map((m) => m.name), ['queued-1', 'queued-2']);
    await s.write({ ...st, swarm: { clusterId: 'c1', createdAt: 'now' } });
    await s.update((x) => ({ ...x, inventoryFile: '/tmp/lab.yml' }));
    const final = await s.read();
    assert.equal(final.machines.length, 2);
    assert.equal(final.swarm?.clusterId, 'c1');
    assert.equal(final.inventoryFile, '/tmp/lab.yml');
  });
});
