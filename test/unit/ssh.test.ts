/** Command building under sudo, sudo's failures, ProxyJump chains and OpenSSH config resolution (issue 13). */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseProxyJump, resolveSsh } from '../../src/remote/ssh-config.js';
import { acceptKeyHint, sudoCommand, sudoersLine, sudoProblem } from '../../src/remote/ssh-remote.js';
import { KnownHosts } from '../../src/state/known-hosts.js';
import { tempDir } from '../support/tmp.js';

const dir = tempDir('swarmform-ssh-unit-');

describe('sudo', () => {
  it('wraps a command so that the shell behind sudo sees it byte for byte', () => {
    // A stand-in sudo that checks for -n and -- and runs the rest, so the quoting is tested by a real shell.
    const bin = join(dir, 'bin');
    execFileSync('mkdir', ['-p', bin]);
    writeFileSync(join(bin, 'sudo'), '#!/bin/sh\n[ "$1" = -n ] || exit 90\nshift\n[ "$1" = -- ] || exit 91\nshift\nexec "$@"\n');
    chmodSync(join(bin, 'sudo'), 0o755);
    const commands = [
      'echo plain',
      `printf '%s|' "a b" 'c'"'"'d' $((1+2))`,
      'x=1; if [ "$x" = 1 ]; then echo "then"; fi && echo and || echo or',
      `echo "quotes: ' \\" \\\\ and a dollar: \\$HOME"`,
      'cat <<EOF\nline one\n$((2*3))\nEOF',
    ];
    for (const c of commands) {
      const direct = execFileSync('sh', ['-c', c], { encoding: 'utf8' });
      const wrapped = execFileSync('sh', ['-c', sudoCommand(c)], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
      assert.equal(wrapped, direct, c);
    }
    assert.match(sudoCommand('id -u'), /^sudo -n -- sh -c /);
  });

  it('tells sudo failures from the command failing', () => {
    const r = (code: number, stderr: string) => ({ code, stdout: '', stderr });
    assert.match(sudoProblem(r(1, 'sudo: a password is required\n'), 'deploy')!.message, /sudo needs a password for deploy/);
    assert.ok(sudoProblem(r(1, 'sudo: a password is required\n'), 'deploy')!.hint.includes(sudoersLine('deploy')));
    assert.match(sudoProblem(r(1, 'deploy is not in the sudoers file.  This incident will be reported.\n'), 'deploy')!.message, /may not use sudo/);
    assert.match(sudoProblem(r(127, 'sh: 1: sudo: not found\n'), 'deploy')!.message, /no sudo on the host/);
    assert.equal(sudoProblem(r(1, 'grep: nothing\n'), 'deploy'), undefined, 'the command failed, not sudo');
    assert.equal(sudoProblem(r(127, 'sh: docker: not found\n'), 'deploy'), undefined, 'another command was not found');
    assert.equal(sudoProblem(r(0, ''), 'deploy'), undefined);
    assert.equal(sudoersLine('admin'), 'admin ALL=(ALL) NOPASSWD: ALL');
  });
});

describe('ProxyJump', () => {
  it('parses chains the way OpenSSH does', () => {
    assert.deepEqual(parseProxyJump('bastion'), [{ host: 'bastion' }]);
    assert.deepEqual(parseProxyJump('ops@jump.example.org:2222,inner'), [{ host: 'jump.example.org', user: 'ops', port: 2222 }, { host: 'inner' }]);
    assert.deepEqual(parseProxyJump('[fd00::1]:2200, ssh://u@[fd00::2]/'), [{ host: 'fd00::1', port: 2200 }, { host: 'fd00::2', user: 'u' }]);
    assert.deepEqual(parseProxyJump('fd00::3'), [{ host: 'fd00::3' }]);
    assert.deepEqual(parseProxyJump('none'), []);
    assert.deepEqual(parseProxyJump(' '), []);
    assert.throws(() => parseProxyJump('a,,b'), /empty hop/);
    assert.throws(() => parseProxyJump('@host'), /empty user/);
    assert.throws(() => parseProxyJump('host:0'), /bad port/);
    assert.throws(() => parseProxyJump('host:70000'), /bad port/);
    assert.throws(() => parseProxyJump('host:ssh'), /bad port/);
    assert.throws(() => parseProxyJump('a b'), /bad host/);
  });
});

describe('OpenSSH config', () => {
  const key = join(dir, 'id_app');
  writeFileSync(key, 'not a real key', { mode: 0o600 });
  const config = join(dir, 'config');
  writeFileSync(
    config,
    [
      'Host bastion',
      '  HostName 10.0.0.9',
      '  User jump',
      '  Port 2222',
      'Host app*',
      '  HostName %h.internal',
      '  User deploy',
      '  Port 2200',
      '  IdentityFile /nonexistent/first',
      `  IdentityFile ${key}`,
      '  ProxyJump bastion',
      'Host *',
      '  User fallback',
      '',
    ].join('\n'),
  );

  it('fills what the inventory left unset: HostName (%h), User, Port, the first IdentityFile that exists, ProxyJump', () => {
    const r = resolveSsh({ host: 'app1', port: 22, user: 'root', defaults: ['user', 'port'], config });
    assert.deepEqual(r, {
      host: 'app1.internal',
      port: 2200,
      user: 'deploy',
      keyPath: key,
      jump: [{ host: '10.0.0.9', port: 2222, user: 'jump', keyPath: key }],
      become: 'sudo',
    });
  });

  it('the inventory wins over the config; an explicit empty jump list connects directly; root needs no sudo', () => {
    const r = resolveSsh({ host: 'app2', port: 2022, user: 'root', keyPath: '/k', jump: [], config });
    assert.equal(r.user, 'root');
    assert.equal(r.port, 2022);
    assert.equal(r.keyPath, '/k');
    assert.deepEqual(r.jump, []);
    assert.equal(r.become, 'none');
    const j = resolveSsh({ host: 'db1', port: 22, user: 'admin', jump: [{ host: 'bastion', user: 'me' }], config });
    assert.deepEqual(j.jump, [{ host: '10.0.0.9', port: 2222, user: 'me', keyPath: undefined }]);
    assert.equal(j.become, 'sudo');
  });

  it('config: false ignores the file; a missing file is no config', () => {
    const r = resolveSsh({ host: 'app1', port: 22, user: 'root', defaults: ['user', 'port'], config: false });
    assert.deepEqual([r.host, r.port, r.user, r.jump.length], ['app1', 22, 'root', 0]);
    const m = resolveSsh({ host: 'app1', port: 22, user: 'root', defaults: ['user', 'port'], config: join(dir, 'nope') });
    assert.equal(m.host, 'app1');
  });
});

describe('a changed host key', () => {
  it("the hint's ssh-keygen command, run by a shell, removes exactly that host's key from the store", async () => {
    // A directory with a space and a quote, a host on port 22 and one on another port: the command must survive a shell.
    const d = join(dir, "keys o'clock");
    execFileSync('mkdir', ['-p', d]);
    const file = join(d, 'known_hosts');
    const key = (n: number) => {
      // An ed25519 public key blob: string "ssh-ed25519", string of 32 bytes.
      const t = Buffer.from('ssh-ed25519');
      const len = (b: Buffer) => Buffer.from([0, 0, 0, b.length]);
      const k = Buffer.alloc(32, n);
      return Buffer.concat([len(t), t, len(k), k]);
    };
    const kh = new KnownHosts(file);
    kh.record({ host: '198.18.52.7', port: 22, key: key(1) });
    kh.record({ host: '198.18.52.8', port: 2222, key: key(2) });
    kh.record({ host: '198.18.52.9', port: 22, key: key(3) });
    await kh.flush();
    for (const [host, port] of [['198.18.52.7', 22], ['198.18.52.8', 2222]] as const) {
      const hint = acceptKeyHint('machine', host, port, file);
      const cmd = /accept its new key: (.*), then run again$/.exec(hint)?.[1];
      assert.ok(cmd, hint);
      execFileSync('sh', ['-c', `${cmd} 2>/dev/null`]);
      const after = await KnownHosts.load(file);
      assert.equal(after.check({ host, port, key: key(port === 22 ? 1 : 2) }), 'new', `${host}:${port} forgotten by: ${cmd}`);
    }
    const left = await KnownHosts.load(file);
    assert.equal(left.check({ host: '198.18.52.9', port: 22, key: key(3) }), 'match', 'the other host is kept');
  });
});
