/**
 * Real argument vectors through the real yargs command definitions (buildCli from src/cli/main.ts). A global
 * middleware, which yargs runs after parsing and validation and before the command's handler, records the parsed
 * arguments and stops the run: no handler, no inventory, no network.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildCli } from '../../src/cli/main.js';

class Parsed extends Error {
  constructor(readonly argv: Record<string, unknown>) {
    super('parsed');
  }
}

/** The arguments yargs hands the command's handler, or the usage error it reports. */
async function parse(args: string[]): Promise<Record<string, unknown>> {
  try {
    await buildCli(args)
      .middleware((argv) => {
        throw new Parsed(argv as Record<string, unknown>);
      })
      .fail(false)
      .exitProcess(false)
      .parseAsync();
  } catch (err) {
    if (err instanceof Parsed) return err.argv;
    throw err;
  }
  throw new Error(`no command ran for: ${args.join(' ')}`);
}

function deployOf(a: Record<string, unknown>) {
  return { name: a.name, files: a['compose-file'], aliasC: a.c };
}

test('stack deploy: docker order (-c FILE NAME) and swarmform order (NAME -c FILE) parse alike', async () => {
  const want = { name: 'web', files: ['stack.yml'], aliasC: ['stack.yml'] };
  for (const args of [
    ['stack', 'deploy', '-c', 'stack.yml', 'web'],
    ['stack', 'deploy', 'web', '-c', 'stack.yml'],
    ['stack', 'deploy', '--compose-file', 'stack.yml', 'web'],
    ['stack', 'deploy', 'web', '--compose-file', 'stack.yml'],
    ['stack', 'deploy', '--compose-file=stack.yml', 'web'],
    ['stack', 'deploy', 'web', '--compose-file=stack.yml'],
    ['-i', 'inv.yml', 'stack', 'deploy', '-c', 'stack.yml', 'web'],
  ]) {
    assert.deepEqual(deployOf(await parse(args)), want, args.join(' '));
  }
});

test('stack deploy: repeated -c / --compose-file keep every file in order, before or after the name', async () => {
  const want = { name: 'web', files: ['a.yml', 'b.yml', 'c.yml'], aliasC: ['a.yml', 'b.yml', 'c.yml'] };
  for (const args of [
    ['stack', 'deploy', '-c', 'a.yml', '-c', 'b.yml', '-c', 'c.yml', 'web'],
    ['stack', 'deploy', 'web', '-c', 'a.yml', '-c', 'b.yml', '-c', 'c.yml'],
    ['stack', 'deploy', '-c', 'a.yml', 'web', '--compose-file', 'b.yml', '--compose-file=c.yml'],
    ['stack', 'deploy', '--compose-file=a.yml', '-c', 'b.yml', 'web', '-c', 'c.yml'],
  ]) {
    assert.deepEqual(deployOf(await parse(args)), want, args.join(' '));
  }
});

test('stack deploy: other options keep their values beside -c in either order', async () => {
  const a = await parse(['stack', 'deploy', '--prune', '-c', 'a.yml', '-d', '--timeout', '30', 'web']);
  assert.deepEqual(deployOf(a), { name: 'web', files: ['a.yml'], aliasC: ['a.yml'] });
  assert.equal(a.prune, true);
  assert.equal(a.detach, true);
  assert.equal(a.timeout, 30);
});

test('stack deploy: a missing name or file, or a second name, is still a usage error', async () => {
  await assert.rejects(parse(['stack', 'deploy', '-c', 'a.yml']), /Not enough non-option arguments/);
  await assert.rejects(parse(['stack', 'deploy', 'web']), /Missing required argument: compose-file/);
  await assert.rejects(parse(['stack', 'deploy', 'web', '-c']), /Not enough arguments following: c/);
  await assert.rejects(parse(['stack', 'deploy', '-c', 'a.yml', 'b.yml', 'web']), /Unknown argument: web/);
});

// The other commands were looked over for the same trap (no other option is an array); these pin their parsing.

test('service create: repeated options before or after the image, command words after it', async () => {
  for (const args of [
    ['service', 'create', '--name', 'w', '-e', 'A=1', '-e', 'B=2', 'nginx', 'sleep', '60'],
    ['service', 'create', 'nginx', '--name', 'w', '-e', 'A=1', '-e', 'B=2', 'sleep', '60'],
    ['service', 'create', '--name', 'w', '-e', 'A=1', 'nginx', '-e', 'B=2', '--', 'sleep', '60'],
  ]) {
    const a = await parse(args);
    assert.equal(a.image, 'nginx', args.join(' '));
    assert.equal(a.name, 'w', args.join(' '));
    assert.deepEqual(a.env, ['A=1', 'B=2'], args.join(' '));
    assert.deepEqual([...((a.command as string[] | undefined) ?? []), ...((a['--'] as string[] | undefined) ?? [])], ['sleep', '60'], args.join(' '));
  }
});

test('raft restore: --to before or after the archive', async () => {
  for (const args of [
    ['raft', 'restore', 'x.tar', '--to', 'mgr-1'],
    ['raft', 'restore', '--to', 'mgr-1', 'x.tar'],
    ['raft', 'restore', '--to=mgr-1', 'x.tar', '--force'],
  ]) {
    const a = await parse(args);
    assert.equal(a.archive, 'x.tar', args.join(' '));
    assert.equal(a.to, 'mgr-1', args.join(' '));
  }
});

test('ssh and exec: options before the target, command after --', async () => {
  const s = await parse(['-i', 'inv.yml', 'ssh', 'mgr-1', '--', 'docker', 'node', 'ls']);
  assert.equal(s.host, 'mgr-1');
  assert.deepEqual(s['--'], ['docker', 'node', 'ls']);
  const e = await parse(['exec', '--json', 'workers', '--', 'df', '-h']);
  assert.equal(e.target, 'workers');
  assert.equal(e.json, true);
  assert.deepEqual(e['--'], ['df', '-h']);
});

test('ssh, exec and service create: words after -- stay as typed (no number parsing)', async () => {
  const words = ['printf', '%s', '1e3', '0x10', '1.50', '007'];
  assert.deepEqual((await parse(['ssh', 'mgr-1', '--', ...words]))['--'], words);
  assert.deepEqual((await parse(['exec', 'all', '--', ...words]))['--'], words);
  const c = await parse(['service', 'create', 'img', '--', ...words]);
  assert.deepEqual([...(c.command as string[]), ...((c['--'] as string[] | undefined) ?? [])], words);
});

test('up: --force and the global options in any order', async () => {
  for (const args of [
    ['up', '--force', '-i', 'inv.yml'],
    ['-i', 'inv.yml', 'up', '--force'],
    ['--inventory=inv.yml', 'up', '--force'],
  ]) {
    const a = await parse(args);
    assert.equal(a.force, true, args.join(' '));
    assert.equal(a.inventory, 'inv.yml', args.join(' '));
  }
});
