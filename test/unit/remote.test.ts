import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inspect } from 'node:util';
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
