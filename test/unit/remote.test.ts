import assert from 'node:assert/strict';
import { test } from 'node:test';
import http from 'node:http';
import { Duplex } from 'node:stream';
import { inspect } from 'node:util';
import Docker from 'dockerode';
import { dockerSocketAgent } from '../../src/remote/docker-agent.js';

test('the SSH docker agent formats as its name: docker-modem inspects every request options object with depth null', () => {
  const agent = dockerSocketAgent({} as never);
  // Stand in for what the agent holds once busy: sockets that reach a large object graph (the ssh2 client).
  const big: Record<string, unknown> = {};
  for (let i = 0; i < 2000; i++) big[`k${i}`] = { buf: Buffer.alloc(64), nested: { i } };
  (agent as unknown as { sockets: Record<string, unknown[]> }).sockets['engine:2375:'] = [{ client: big }];
  // What docker-modem's buildRequest does for its debug line, whether or not debugging is on.
  const text = inspect({ path: '/nodes', method: 'GET', agent }, { showHidden: true, depth: null });
  assert.match(text, /agent: DockerSocketAgent\(\/var\/run\/docker\.sock\)\n\}$/);
  assert.ok(text.length < 100, text);
});

/** An ssh2 client stand-in whose channels are Duplexes that `answer` drives once the request has been written. */
function fakeConn(answer: (ch: Duplex) => void, opened: Duplex[]) {
  return {
    openssh_forwardOutStreamLocal(_path: string, cb: (err: Error | undefined, ch: Duplex) => void) {
      let started = false;
      const ch: Duplex = new Duplex({
        read() {},
        write(_chunk, _enc, done) {
          if (!started) {
            started = true;
            setImmediate(() => answer(ch));
          }
          done();
        },
      });
      opened.push(ch);
      setImmediate(() => cb(undefined, ch));
    },
  };
}

const OK_HEAD = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n';

test('an Engine API call on an SSH channel that never answers fails after the idle timeout instead of waiting forever', { timeout: 10_000 }, async () => {
  const opened: Duplex[] = [];
  const agent = dockerSocketAgent(fakeConn(() => undefined, opened) as never);
  const engine = new Docker({ protocol: 'http', host: 'h', port: 2375, agent, timeout: 300 } as Docker.DockerOptions);
  // The idle timer is unref'd like a net.Socket's; a real SSH connection holds the loop open, here this does.
  const hold = setInterval(() => undefined, 1000);
  const t0 = Date.now();
  await assert.rejects(engine.ping()).finally(() => clearInterval(hold));
  const ms = Date.now() - t0;
  assert.ok(ms >= 250 && ms < 5000, `failed after ${ms} ms`);
  agent.destroy();
});

test('bytes keep a slow answer alive past the idle timeout; an untimed client waits on a quiet channel', async () => {
  const opened: Duplex[] = [];
  // Answers "OK" a byte every 100 ms for about 800 ms: longer than the 300 ms idle limit, never idle that long.
  const slow = (ch: Duplex) => {
    ch.push(OK_HEAD);
    let n = 0;
    const tick = setInterval(() => {
      if (++n <= 8) ch.push(`1\r\n${n % 2 ? 'O' : 'K'}\r\n`);
      else {
        clearInterval(tick);
        ch.push('0\r\n\r\n');
      }
    }, 100);
  };
  const agent = dockerSocketAgent(fakeConn(slow, opened) as never);
  const engine = new Docker({ protocol: 'http', host: 'h', port: 2375, agent, timeout: 300 } as Docker.DockerOptions);
  const body = await engine.ping();
  assert.equal(String(body), 'OKOKOKOK');
  agent.destroy();

  const quiet = dockerSocketAgent(fakeConn(() => undefined, opened) as never);
  const untimed = new Docker({ protocol: 'http', host: 'h', port: 2375, agent: quiet, timeout: 0 } as Docker.DockerOptions);
  const outcome = await Promise.race([untimed.ping().then(() => 'answered', () => 'failed'), new Promise((r) => setTimeout(() => r('still waiting'), 700))]);
  assert.equal(outcome, 'still waiting');
  quiet.destroy();
  for (const ch of opened) ch.destroy();
});

/**
 * A channel that behaves as ssh2's does for direct-streamlocal: `destroy()` only sends EOF and CLOSE; when the
 * remote's CLOSE comes back the readable side ends, and 'close' is emitted only after 'end' (which needs a reader).
 * It answers every HTTP request written to it with a small keep-alive response.
 */
function sshLikeConn(opened: (Duplex & { remoteClose(): void; inUse(): boolean })[]) {
  return {
    openssh_forwardOutStreamLocal(_path: string, cb: (err: Error | undefined, ch: Duplex) => void) {
      let pendingText = '';
      let closed = false;
      const ch = new Duplex({
        allowHalfOpen: true,
        emitClose: false,
        read() {},
        write(chunk, _enc, done) {
          // As ssh2's _write on a channel that is no longer open: the callback never comes.
          if (closed) return;
          pendingText += String(chunk);
          while (pendingText.includes('\r\n\r\n')) {
            pendingText = pendingText.slice(pendingText.indexOf('\r\n\r\n') + 4);
            setImmediate(() => ch.push('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK'));
          }
          done();
        },
      }) as Duplex & { remoteClose(): void; inUse(): boolean };
      ch.remoteClose = () => {
        if (closed) return;
        closed = true;
        // As ssh2 on the far side's CLOSE: end the writable side, end the readable side (a reader must take it).
        ch.end();
        ch.push(null);
        if (ch.readableEnded) ch.emit('close');
        else ch.once('end', () => ch.emit('close'));
      };
      ch.inUse = () => Boolean((ch as unknown as { _httpMessage?: unknown })._httpMessage);
      ch.destroy = (() => {
        ch.end();
        setImmediate(() => ch.remoteClose());
        return ch;
      }) as never;
      opened.push(ch);
      setImmediate(() => cb(undefined, ch));
    },
  };
}

test('a channel the agent destroys unused is forgotten once the far side closes it, not kept as one of the 8 slots', { timeout: 20_000 }, async () => {
  const opened: (Duplex & { remoteClose(): void; inUse(): boolean })[] = [];
  const slow = sshLikeConn(opened);
  // Channels open 30 ms after they are asked for, as over a busy SSH connection.
  const conn = { openssh_forwardOutStreamLocal: (p: string, cb: (err: Error | undefined, ch: Duplex) => void) => setTimeout(() => slow.openssh_forwardOutStreamLocal(p, cb), 30) };
  const agent = dockerSocketAgent(conn as never);
  // Requests given up before their channel opened: the agent gets channels no request wants and destroys them.
  for (let i = 0; i < 8; i++) http.request({ agent, host: 'h', port: 2375, path: '/_ping' }).on('error', () => undefined).destroy();
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(opened.length, 8);
  const held = Object.values(agent.sockets).flat().length;
  assert.equal(held, 0, `${held} of the host's 8 slots still held by channels that were closed at both ends`);
  // And the host's engine still answers.
  const engine = new Docker({ protocol: 'http', host: 'h', port: 2375, agent, timeout: 2000 } as Docker.DockerOptions);
  assert.equal(String(await engine.ping()), 'OK');
  agent.destroy();
});

test('a failure on a lost connection names the host and the cause; other errors stay as they are', async () => {
  const { explainLoss, lossReason } = await import('../../src/remote/remote.js');
  const { HostStepError } = await import('../../src/base/errors.js');
  const lost = lossReason(new Error('Keepalive timeout'));
  assert.match(lost, /no answer to SSH keepalives for 60 s/);
  const e = explainLoss(new HostStepError('w-1', 'join', 'socket hang up', { hint: 'h' }), { name: 'w-1', lost });
  assert.ok(e instanceof HostStepError, 'the kind of error is kept');
  assert.equal((e as InstanceType<typeof HostStepError>).host, 'w-1');
  assert.equal((e as InstanceType<typeof HostStepError>).hint, 'h');
  assert.match(e.message, /^w-1: join: socket hang up \(the SSH connection to w-1 was lost: no answer to SSH keepalives/);
  assert.equal(explainLoss(e, { name: 'w-1', lost }).message, e.message, 'said once');
  const plain = new Error('exit 1');
  assert.equal(explainLoss(plain, { name: 'w-1', lost: undefined }), plain);
  assert.match(lossReason(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), /reset/);
});

test("an engine that hung up mid-call is pinged: restarted (answers again) or down (does not), said in the failure", async () => {
  const { explainEngineLoss } = await import('../../src/remote/remote.js');
  const { HostStepError } = await import('../../src/base/errors.js');
  const engineThat = (answers: boolean) => ({ ping: () => (answers ? Promise.resolve('OK') : Promise.reject(new Error('connect ENOENT /var/run/docker.sock'))) });
  const hung = () => new HostStepError('m-3', 'join manager', 'join via m-1 failed: socket hang up');
  const back = await explainEngineLoss(hung(), { name: 'm-3', lost: undefined, engine: () => engineThat(true) as never });
  assert.ok(back instanceof HostStepError);
  assert.match(back.message, /socket hang up \(the engine on m-3 dropped the API connection in the middle of the call and answers again now: it was restarted/);
  const down = await explainEngineLoss(hung(), { name: 'm-3', lost: undefined, engine: () => engineThat(false) as never });
  assert.match(down.message, /does not answer now \(connect ENOENT \/var\/run\/docker\.sock\): it stopped or crashed/);
  // Other failures are not probed; a lost SSH connection is said as such, without a ping.
  let pinged = 0;
  const counting = { ping: () => (pinged++, Promise.resolve('OK')) };
  const other = new HostStepError('m-3', 'join manager', 'Timeout was reached');
  assert.equal(await explainEngineLoss(other, { name: 'm-3', lost: undefined, engine: () => counting as never }), other);
  const lost = await explainEngineLoss(hung(), { name: 'm-3', lost: 'the connection was reset', engine: () => counting as never });
  assert.match(lost.message, /the SSH connection to m-3 was lost/);
  assert.equal(pinged, 0);
});
