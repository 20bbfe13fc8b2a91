/**
 * The `aws` provider: EC2 instances created in batches (RunInstances with MinCount=1/MaxCount=batch), one security
 * group per cluster that opens the swarm ports to the group itself only, the operator's key imported when absent.
 * Every resource carries the `swarmform:cluster` tag, so re-runs and `down` work from what EC2 says, not local state.
 */
import type { EC2Client, Instance, IpPermission, Tag } from '@aws-sdk/client-ec2';
import pLimit from 'p-limit';
import { HostStepError, UsageError } from '../../base/errors.js';
import type { HostSpec, Inventory } from '../../inventory/types.js';
import type { BatchResult, Provider, ProviderArtifacts, ProviderContext, ProviderInfo } from '../provider.js';
import type { Machine } from '../../base/machine.js';
import { inventorySsh } from '../ssh/index.js';
import {
  chunk,
  cleanError,
  cloudRules,
  type CreateFailure,
  digest,
  operatorPublicKey,
  renderUserData,
  reportFailures,
  ruleLines,
  settleMachines,
  type SettleVerdict,
  shapeGroups,
  sleep,
  waitUntilGone,
} from '../cloud/common.js';
import { type CallStats, ec2Client } from './client.js';
import { ec2, loadAwsSdk } from './sdk.js';
import { type AwsSettings, TAG, awsOptionsSchema, awsSettings, awsSettingsSchema, awsShape, keyNameOf } from './settings.js';
import { type ImageFacts, loginUser } from './users.js';

/** Errors that mean "not enough capacity right now": the batch is halved, then hosts are retried later. */
const CAPACITY = new Set(['InsufficientInstanceCapacity', 'InsufficientCapacity', 'InsufficientFreeAddressesInSubnet', 'InsufficientHostCapacity', 'SpotMaxPriceTooLow', 'InsufficientReservedInstanceCapacity']);
/** Errors that mean "the account may not have more": later batches of the same shape fail at once with the same error. */
const LIMIT = new Set(['InstanceLimitExceeded', 'VcpuLimitExceeded', 'MaxSpotInstanceCountExceeded', 'PendingVerification']);
/** Errors no retry can fix (bad image, parameters, permissions): reported at once. */
const FATAL = /^(Invalid|Unsupported|UnauthorizedOperation|AuthFailure|OptInRequired|Blocked|MissingParameter)/;
/** Instance states that still count as existing. */
const LIVE = ['pending', 'running', 'stopping', 'stopped'];

interface Env {
  s: AwsSettings;
  client: EC2Client;
  stats: CallStats;
  vpcId?: string;
  groupId?: string;
  keyName?: string;
  amis: Map<string, Promise<string>>;
  /** What DescribeImages said about each AMI id (undefined: not found), one call per distinct AMI per run. */
  images: Map<string, Promise<ImageFacts | undefined>>;
}

/** One host's outcome inside create, before it is reported. */
type Failure = CreateFailure;

function tagOf(tags: Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

function clusterTags(cluster: string): Tag[] {
  return [{ Key: TAG.cluster, Value: cluster }];
}

function codeOf(e: unknown): string | undefined {
  const x = e as { name?: string; Code?: string };
  return x?.Code ?? x?.name;
}

/** The aws provider; one instance serves every cluster, per-run clients hang off the run's context. */
export class AwsProvider implements Provider {
  readonly name = 'aws';
  readonly schemas = { settings: awsSettingsSchema, options: awsOptionsSchema };
  private envs = new WeakMap<ProviderContext, Env>();

  info(): ProviderInfo {
    return { name: 'aws', batchSize: 100, concurrency: 2, userData: true, defaultInstall: 'packages', ownsMachines: true, needsRoot: false, ingressMesh: true };
  }

  validate(hosts: HostSpec[], ctx: ProviderContext): void {
    const s = awsSettings(ctx.inventory);
    for (const h of hosts) {
      const shape = awsShape(s, h);
      if (!shape.ami && !shape.amiName) {
        throw new UsageError(`groups.${h.group}: aws host ${h.name} has no image: set providers.aws.ami (or amiName), or the group's options.ami`);
      }
      if (h.name.length > 255) throw new UsageError(`${h.name}: names become EC2 Name tags and must be at most 255 characters`);
    }
  }

  async preflight(ctx: ProviderContext): Promise<void> {
    await loadAwsSdk();
    // Resolve the default credential chain once, so a missing profile is a clear usage error, not a failed call.
    try {
      await this.env(ctx).client.config.credentials();
    } catch (e) {
      throw new UsageError(`aws: no credentials found (${(e as Error).message.split('\n')[0]})`, {
        hint: 'set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run `aws sso login`; swarmform uses the AWS default credential chain',
      });
    }
  }

  plan(hosts: HostSpec[], ctx: ProviderContext): string[] {
    const s = awsSettings(ctx.inventory);
    const p = awsCallPlan(hosts, s);
    const out = [
      `aws: ${hosts.length} instance(s) in ${s.region}${s.endpoint ? ` (endpoint ${s.endpoint})` : ''}: ${p.runInstances} RunInstances batch(es) of up to ${s.batchSize} (MinCount=1), ${s.concurrency} in flight`,
    ];
    for (const g of p.groups) {
      out.push(`aws:   ${g.group} (${g.role}): ${g.hosts} x ${g.instanceType}${g.spot ? ' spot' : ''} from ${g.image}: batches ${g.batches.join(', ')}`);
    }
    out.push(
      `aws: API calls for a fresh cluster: ${p.setup} setup (VPC, image lookups, security group, key pair), ${p.runInstances} RunInstances, ` +
        `${p.createTags} CreateTags (Name per instance), ${p.describe}+ DescribeInstances (one per 1,000 instances per poll): at least ${p.total}`,
      `aws: security group swarmform-${ctx.inventory.cluster} in ${s.vpc ?? (s.subnet ? `the VPC of ${s.subnet}` : 'the default VPC')}, key pair ${keyNameOf(s, ctx.inventory.cluster)} (imported if absent):`,
      ...ruleLines('aws:', cloudRules('the security group itself', s.swarmFrom, s.sshFrom)),
      `aws: SSH over ${s.sshVia} addresses; the swarm advertises ${advertiseText(ctx.inventory)}; every resource tagged ${TAG.cluster}=${ctx.inventory.cluster}`,
    );
    if (s.sshFrom.some((c) => /\/0$/.test(c))) out.push('aws:   warning: SSH is open to the whole internet (sshFrom has a /0)');
    return out;
  }

  async artifacts(): Promise<ProviderArtifacts> {
    return {};
  }

  /** The run's client and what network() found. */
  private env(ctx: ProviderContext): Env {
    let env = this.envs.get(ctx);
    if (!env) {
      const s = awsSettings(ctx.inventory);
      const { client, stats } = ec2Client(s);
      env = { s, client, stats, amis: new Map(), images: new Map() };
      this.envs.set(ctx, env);
    }
    return env;
  }

  /** Call counts of this run's client (tests and reports). */
  stats(ctx: ProviderContext): CallStats {
    return this.env(ctx).stats;
  }

  async network(ctx: ProviderContext): Promise<void> {
    await loadAwsSdk();
    const env = this.env(ctx);
    if (env.groupId && env.keyName) return;
    const { s, client } = env;
    const cluster = ctx.inventory.cluster;
    try {
      env.vpcId = await findVpc(client, s, awsHosts(ctx.inventory));
      env.groupId = await ensureSecurityGroup(client, s, cluster, env.vpcId);
      env.keyName = await ensureKeyPair(client, s, ctx.inventory);
    } catch (e) {
      throw cleanError(e, 'aws network');
    }
  }

  async create(hosts: HostSpec[], ctx: ProviderContext, ready?: (machine: Machine) => void): Promise<BatchResult> {
    await loadAwsSdk();
    const env = this.env(ctx);
    await this.network(ctx);
    const { s, client } = env;
    const cluster = ctx.inventory.cluster;
    const result: BatchResult = { done: [], failed: [] };
    const found = await discover(client, cluster);
    // A host whose instance was stopped gets that instance started, not a second one (its disk may hold data).
    const wanted = new Set(hosts.map((h) => h.name));
    const asleep = found.filter((i) => wanted.has(tagOf(i.Tags, TAG.name) ?? '') && isStopped(i));
    const named = new Set(found.filter((i) => tagOf(i.Tags, TAG.name) && !asleep.includes(i)).map((i) => tagOf(i.Tags, TAG.name)!));
    const asleepNames = new Set(asleep.map((i) => tagOf(i.Tags, TAG.name)!));
    let pending = hosts.filter((h) => !named.has(h.name) && !asleepNames.has(h.name));
    for (const h of hosts) if (named.has(h.name)) ctx.events.emit({ type: 'step', phase: 'provision', host: h.name, step: 'create instance', status: 'skip', message: 'exists' });
    if (asleep.length) result.done.push(...(await this.wake(env, ctx, hosts, asleep, result, ready)));

    // Instances of a crashed run that were launched but not yet named are adopted instead of launching more.
    const launched: { host: HostSpec; id: string }[] = [];
    const unnamed = found.filter((i) => !tagOf(i.Tags, TAG.name));
    for (const h of [...pending]) {
      const i = unnamed.findIndex((x) => tagOf(x.Tags, TAG.group) === h.group && tagOf(x.Tags, TAG.role) === h.role);
      if (i < 0) continue;
      launched.push({ host: h, id: unnamed[i]!.InstanceId! });
      unnamed.splice(i, 1);
      pending = pending.filter((p) => p !== h);
    }
    if (launched.length) ctx.events.info(`aws: adopting ${launched.length} unnamed instance(s) of an interrupted run`);
    // Hosts that will log in as their image's default user: an image whose user cannot be told stops the run
    // before anything is launched.
    await Promise.all(
      pending.map(async (h) => {
        if (!h.ssh.defaults?.includes('user')) return;
        const shape = awsShape(s, h);
        const imageId = shape.ami ?? (await this.ami(env, shape.amiName!));
        await this.userFor(env, h, imageId);
      }),
    );

    const failedFinal: Failure[] = [];
    const exhausted = new Map<string, Error>();
    for (let attempt = 1; attempt <= s.retries + 1 && (pending.length > 0 || launched.length > 0); attempt++) {
      for (const h of pending) ctx.events.emit({ type: 'step', phase: 'provision', host: h.name, step: 'create instance', status: attempt === 1 ? 'start' : 'retry', attempt });
      const failures: Failure[] = [];
      // Launch: batches of one shape, at most `concurrency` calls in flight; shortfalls and halved batches requeue.
      const queue = shapeGroups(pending).flatMap((g) => chunk(g, s.batchSize));
      const limit = pLimit(s.concurrency);
      const runOne = async (batch: HostSpec[]): Promise<void> => {
        const shapeKey = JSON.stringify(awsShape(s, batch[0]!)) + batch[0]!.group;
        const blocked = exhausted.get(shapeKey);
        if (blocked) {
          for (const host of batch) failures.push({ host, error: blocked, retry: false });
          return;
        }
        try {
          const ids = await this.runBatch(env, ctx, batch, attempt);
          ids.forEach((id, i) => launched.push({ host: batch[i]!, id }));
          if (ids.length < batch.length) {
            const rest = batch.slice(ids.length);
            ctx.events.warn(`aws: EC2 launched ${ids.length} of ${batch.length} (${batch[0]!.group}); asking again for ${rest.length}`);
            await runOne(rest);
          }
        } catch (e) {
          const code = codeOf(e);
          const error = cleanError(e, 'RunInstances');
          if (code && CAPACITY.has(code) && batch.length > 1) {
            const half = Math.ceil(batch.length / 2);
            ctx.events.warn(`aws: ${code} for ${batch.length} x ${batch[0]!.group}: retrying as batches of ${half} and ${batch.length - half}`);
            await runOne(batch.slice(0, half));
            await runOne(batch.slice(half));
            return;
          }
          if (code && LIMIT.has(code)) {
            exhausted.set(shapeKey, error);
            ctx.events.warn(`aws: ${error.message.replace(/\.$/, '')}; the rest of group ${batch[0]!.group} is reported as failed`);
          }
          for (const host of batch) failures.push({ host, error, retry: !(code && (LIMIT.has(code) || FATAL.test(code))) });
        }
      };
      await Promise.all(queue.map((b) => limit(() => runOne(b))));

      // Name, wait for running, wait for SSH; hosts whose instance did not come up are terminated and retried.
      const batchMachines = await this.settle(env, ctx, launched.splice(0), failures, ready);
      result.done.push(...batchMachines);
      pending = [];
      for (const f of failures) {
        if (f.retry && attempt <= s.retries) pending.push(f.host);
        else failedFinal.push(f);
      }
    }
    reportFailures(ctx, result, failedFinal, 'create instance');
    const throttled = Object.entries(env.stats.retried);
    if (throttled.length) {
      ctx.events.warn(`aws: calls retried by the SDK (throttling or transient errors): ${throttled.map(([a, n]) => `${a} ${n}`).join(', ')}; ${Math.round(env.stats.retryDelayMs)} ms of backoff`);
    }
    return result;
  }

  /** One RunInstances call; returns instance ids in launch order (fewer than asked when capacity ran short). */
  private async runBatch(env: Env, ctx: ProviderContext, batch: HostSpec[], attempt: number): Promise<string[]> {
    const { s, client } = env;
    const first = batch[0]!;
    const shape = awsShape(s, first);
    const imageId = shape.ami ?? (await this.ami(env, shape.amiName!));
    const tags: Tag[] = [...clusterTags(ctx.inventory.cluster), { Key: TAG.role, Value: first.role }, { Key: TAG.group, Value: first.group }];
    const userData = shape.userData
      ? Buffer.from(await renderUserData(shape.userData, ctx.inventory, { group: first.group, role: first.role, hosts: batch.map((h) => h.name) })).toString('base64')
      : undefined;
    const out = await client.send(
      new ec2.RunInstancesCommand({
        MinCount: 1,
        MaxCount: batch.length,
        ImageId: imageId,
        InstanceType: shape.instanceType as never,
        KeyName: env.keyName,
        // Idempotent across the SDK's own retries and across a re-run that repeats the same batch.
        ClientToken: digest(ctx.inventory.cluster, String(attempt), ...batch.map((h) => h.name)),
        ...(shape.subnet
          ? { NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: shape.subnet, Groups: [env.groupId!], AssociatePublicIpAddress: s.sshVia === 'public' }] }
          : { SecurityGroupIds: [env.groupId!] }),
        ...(shape.spot ? { InstanceMarketOptions: { MarketType: 'spot', SpotOptions: { SpotInstanceType: 'one-time', InstanceInterruptionBehavior: 'terminate' } } } : {}),
        ...(shape.volumeSize ? { BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { VolumeSize: shape.volumeSize, DeleteOnTermination: true } }] } : {}),
        ...(userData ? { UserData: userData } : {}),
        TagSpecifications: [
          { ResourceType: 'instance', Tags: tags },
          { ResourceType: 'volume', Tags: clusterTags(ctx.inventory.cluster) },
        ],
      }),
    );
    const meta = out.$metadata;
    if (meta.attempts && meta.attempts > 1) {
      ctx.events.warn(`aws: RunInstances for ${first.name}..${batch[batch.length - 1]!.name} needed ${meta.attempts} attempts (throttled or transient errors, ${meta.totalRetryDelay ?? 0} ms backoff)`);
    }
    return [...(out.Instances ?? [])].sort((a, b) => (a.AmiLaunchIndex ?? 0) - (b.AmiLaunchIndex ?? 0)).map((i) => i.InstanceId!);
  }

  /** The newest image matching a name filter (looked up once per run). */
  private ami(env: Env, name: string): Promise<string> {
    let p = env.amis.get(name);
    if (!p) {
      p = (async () => {
        const out = await env.client.send(new ec2.DescribeImagesCommand({ Owners: env.s.amiOwners, Filters: [{ Name: 'name', Values: [name] }, { Name: 'state', Values: ['available'] }] }));
        const newest = [...(out.Images ?? [])].sort((a, b) => (b.CreationDate ?? '').localeCompare(a.CreationDate ?? ''))[0];
        if (!newest?.ImageId) throw new UsageError(`providers.aws.amiName: no available image named "${name}" owned by ${env.s.amiOwners.join(', ')} in ${env.s.region}`);
        // The same answer tells the image's login user: no second call for it.
        if (!env.images.has(newest.ImageId)) env.images.set(newest.ImageId, Promise.resolve(newest));
        return newest.ImageId;
      })();
      env.amis.set(name, p);
    }
    return p;
  }

  /** Name and description of an AMI (DescribeImages once per AMI per run); undefined when EC2 does not know it. */
  private imageFacts(env: Env, imageId: string): Promise<ImageFacts | undefined> {
    let p = env.images.get(imageId);
    if (!p) {
      p = env.client.send(new ec2.DescribeImagesCommand({ ImageIds: [imageId] })).then(
        (out) => out.Images?.find((i) => i.ImageId === imageId),
        (e: unknown) => {
          // A deregistered or mistyped AMI id.
          if (/^InvalidAMIID\./.test(codeOf(e) ?? '')) return undefined;
          throw cleanError(e, 'DescribeImages');
        },
      );
      env.images.set(imageId, p);
    }
    return p;
  }

  /** The host's login user: the written ssh.user, else its image's default user (throws a UsageError when unknown). */
  private async userFor(env: Env, host: HostSpec, imageId: string | undefined): Promise<string> {
    if (!host.ssh.defaults?.includes('user')) return host.ssh.user;
    if (!imageId) return loginUser(host, '(unknown image)', undefined);
    return loginUser(host, imageId, await this.imageFacts(env, imageId));
  }

  /**
   * Starts stopped instances of wanted hosts (StartInstances, 500 ids a call) and waits for running and SSH as for
   * new ones. One that is still stopping, or does not come up, is reported failed and left as it is (never
   * terminated: it is the user's machine, with its disk).
   */
  private async wake(env: Env, ctx: ProviderContext, hosts: HostSpec[], asleep: Instance[], result: BatchResult, ready?: (m: Machine) => void): Promise<Machine[]> {
    const byName = new Map(hosts.map((h) => [h.name, h]));
    const failures: Failure[] = [];
    const startable: { host: HostSpec; id: string }[] = [];
    for (const i of asleep) {
      const host = byName.get(tagOf(i.Tags, TAG.name)!)!;
      ctx.events.emit({ type: 'step', phase: 'provision', host: host.name, step: 'start instance', status: 'start' });
      if (i.State?.Name === 'stopping') {
        failures.push({ host, error: new HostStepError(host.name, 'start instance', `instance ${i.InstanceId} is stopping`, { hint: 'run `up` again once it has stopped' }), retry: false });
      }
      else startable.push({ host, id: i.InstanceId! });
    }
    const started: { host: HostSpec; id: string }[] = [];
    for (const part of chunk(startable, 500)) {
      try {
        await env.client.send(new ec2.StartInstancesCommand({ InstanceIds: part.map((x) => x.id) }));
        started.push(...part);
      } catch (e) {
        const error = cleanError(e, 'StartInstances');
        for (const x of part) failures.push({ host: x.host, error, retry: false });
      }
    }
    const machines = await this.settle(env, ctx, started, failures, ready, { step: 'start instance', terminateBroken: false, named: true });
    reportFailures(ctx, result, failures, 'start instance');
    return machines;
  }

  /** Names launched instances, waits for running and SSH; returns the machines that came up, each handed to `ready` as it answers. */
  private async settle(
    env: Env,
    ctx: ProviderContext,
    launched: { host: HostSpec; id: string }[],
    failures: Failure[],
    ready: ((m: Machine) => void) | undefined,
    opts: { step: string; terminateBroken: boolean; named: boolean } = { step: 'create instance', terminateBroken: true, named: false },
  ): Promise<Machine[]> {
    const { s, client } = env;
    const deadline = Date.now() + s.waitTimeout * 1000;
    const broken: { host: HostSpec; id: string; error: Error }[] = [];
    // Name tags: one CreateTags per instance (EC2 has no per-instance tags in RunInstances), a few in flight.
    const tagLimit = pLimit(8);
    const named: { host: HostSpec; id: string }[] = opts.named ? [...launched] : [];
    await Promise.all(
      (opts.named ? [] : launched).map((l) =>
        tagLimit(async () => {
          try {
            await client.send(new ec2.CreateTagsCommand({ Resources: [l.id], Tags: [{ Key: TAG.name, Value: l.host.name }] }));
            named.push(l);
          } catch (e) {
            broken.push({ ...l, error: cleanError(e, 'CreateTags') });
          }
        }),
      ),
    );
    // Running: polled by instance id, 1,000 per call; SSH is waited for on each instance as soon as it runs, while
    // the others are still pending: the banner must answer on the address swarmform will use. What did not come up is
    // terminated (no orphans) and retried by the caller; a started instance is left as it is.
    return settleMachines(ctx, named, failures, {
      step: opts.step,
      deadline,
      ready,
      pace: { firstMs: 500, longestMs: 5_000, pauseFirst: false },
      broken,
      poll: async (waiting) => {
        const verdicts = new Map<{ host: HostSpec; id: string }, SettleVerdict>();
        const byId = new Map(waiting.map((l) => [l.id, l]));
        for (const ids of chunk([...byId.keys()], 1000)) {
          // EC2 is eventually consistent: an instance just launched may not be known to DescribeInstances yet.
          const seen = await describe(client, { InstanceIds: ids }).catch((e: unknown) => {
            if (codeOf(e) === 'InvalidInstanceID.NotFound') return [] as Instance[];
            throw e;
          });
          for (const inst of seen) {
            const l = byId.get(inst.InstanceId!);
            if (!l) continue;
            const state = inst.State?.Name;
            if (state === 'running') {
              try {
                const m = toMachine(inst, l.host, s, ctx.inventory, await this.userFor(env, l.host, inst.ImageId));
                verdicts.set(l, { machine: m, message: `${m.providerId} at ${m.privateAddress}` });
              } catch (error) {
                verdicts.set(l, { error: error as Error });
              }
            }
            // Just after StartInstances an eventually consistent read may still say stopped: a started one is waited for.
            else if (state === 'terminated' || state === 'shutting-down' || (opts.terminateBroken && (state === 'stopped' || state === 'stopping'))) {
              const reason = inst.StateReason?.Message ?? inst.StateTransitionReason ?? 'no reason given';
              verdicts.set(l, {
                error: new HostStepError(l.host.name, opts.step, `instance ${inst.InstanceId} went ${state}: ${reason}`, {
                  hint: 'EC2 gave the reason above (capacity, a spot interruption, the image or the volume): fix it, or run `up` again',
                }),
              });
            }
          }
        }
        return verdicts;
      },
      late: (l) =>
        new HostStepError(l.host.name, opts.step, `instance ${l.id} not running after ${s.waitTimeout} s`, {
          hint: 'look at the instance in the EC2 console, or raise providers.aws.waitTimeout',
        }),
      remove: opts.terminateBroken ? (b) => terminate(client, b.map((x) => x.id)) : undefined,
    });
  }

  async list(ctx: ProviderContext): Promise<Machine[]> {
    await loadAwsSdk();
    const env = this.env(ctx);
    try {
      const found = (await discover(env.client, ctx.inventory.cluster)).filter((i) => tagOf(i.Tags, TAG.name));
      const specs = new Map(ctx.inventory.hosts.map((h) => [h.name, h]));
      return await Promise.all(
        found.map(async (i) => {
          const spec = specs.get(tagOf(i.Tags, TAG.name)!);
          const base = spec ?? awsHosts(ctx.inventory)[0];
          let user: string | undefined;
          if (base) {
            try {
              user = await this.userFor(env, { ...base, name: tagOf(i.Tags, TAG.name)! }, i.ImageId);
            } catch (e) {
              if (!(e instanceof UsageError)) throw e;
              // An existing instance must stay listable (for down) even when its image no longer tells its user.
              ctx.events.warn(`aws: ${e.message}; trying ${base.ssh.user}`);
            }
          }
          return toMachine(i, spec, env.s, ctx.inventory, user);
        }),
      );
    } catch (e) {
      throw cleanError(e, 'aws list');
    }
  }

  async destroy(machines: Machine[], ctx: ProviderContext): Promise<BatchResult<string>> {
    await loadAwsSdk();
    const env = this.env(ctx);
    const result: BatchResult<string> = { done: [], failed: [] };
    for (const part of chunk(machines, 500)) {
      for (const m of part) ctx.events.emit({ type: 'step', phase: 'teardown', host: m.name, step: 'terminate instance', status: 'start' });
      try {
        await terminate(env.client, part.map((m) => m.providerId));
        for (const m of part) {
          result.done.push(m.name);
          ctx.events.emit({ type: 'step', phase: 'teardown', host: m.name, step: 'terminate instance', status: 'ok', message: m.providerId });
        }
      } catch (e) {
        const error = cleanError(e, 'TerminateInstances');
        for (const m of part) {
          result.failed.push({ name: m.name, error });
          ctx.events.emit({ type: 'step', phase: 'teardown', host: m.name, step: 'terminate instance', status: 'fail', message: error.message });
        }
      }
    }
    return result;
  }

  async teardown(ctx: ProviderContext, _opts: { force: boolean }): Promise<void> {
    await loadAwsSdk();
    const env = this.env(ctx);
    const { client, s } = env;
    const cluster = ctx.inventory.cluster;
    try {
      // Anything still tagged (unnamed instances of a crashed run too) goes; the group can only go once they are gone.
      const left = await discover(client, cluster);
      if (left.length) await terminate(client, left.map((i) => i.InstanceId!));
      await waitUntilGone(
        async () => (await discover(client, cluster, ['pending', 'running', 'stopping', 'stopped', 'shutting-down'])).length,
        s.waitTimeout,
        (n) => `aws teardown: ${n} instance(s) still shutting down after ${s.waitTimeout} s`,
        ctx.signal,
      );
      const groups = await client.send(new ec2.DescribeSecurityGroupsCommand({ Filters: [{ Name: `tag:${TAG.cluster}`, Values: [cluster] }] }));
      for (const g of groups.SecurityGroups ?? []) {
        for (let i = 0; ; i++) {
          try {
            await client.send(new ec2.DeleteSecurityGroupCommand({ GroupId: g.GroupId }));
            break;
          } catch (e) {
            const code = codeOf(e);
            if (code === 'InvalidGroup.NotFound') break;
            // Network interfaces of terminated instances linger for a short while.
            if (code === 'DependencyViolation' && i < 10) {
              await sleep(1000 * (i + 1), ctx.signal);
              continue;
            }
            throw e;
          }
        }
      }
      const keys = await client.send(new ec2.DescribeKeyPairsCommand({ Filters: [{ Name: `tag:${TAG.cluster}`, Values: [cluster] }] }));
      for (const k of keys.KeyPairs ?? []) await client.send(new ec2.DeleteKeyPairCommand({ KeyPairId: k.KeyPairId }));
    } catch (e) {
      throw cleanError(e, 'aws teardown');
    }
  }
}

/** What the swarm advertises, in words. */
function advertiseText(inv: Inventory): string {
  const a = inv.swarm.advertise;
  return a.kind === 'cidr' ? `addresses in ${a.cidr}` : `${a.kind} addresses`;
}

/** The hosts of an inventory that use this provider. */
function awsHosts(inv: Inventory): HostSpec[] {
  return inv.hosts.filter((h) => h.provider === 'aws');
}

/** The cluster's instances in the given states (all pages). */
async function discover(client: EC2Client, cluster: string, states = LIVE): Promise<Instance[]> {
  return describe(client, { Filters: [{ Name: `tag:${TAG.cluster}`, Values: [cluster] }, { Name: 'instance-state-name', Values: states }] });
}

async function describe(client: EC2Client, input: { InstanceIds?: string[]; Filters?: { Name: string; Values: string[] }[] }): Promise<Instance[]> {
  const out: Instance[] = [];
  if (input.InstanceIds) {
    // Ids cannot be combined with MaxResults; callers pass at most 1,000.
    const page = await client.send(new ec2.DescribeInstancesCommand(input));
    for (const r of page.Reservations ?? []) out.push(...(r.Instances ?? []));
    return out;
  }
  const pages = ec2.paginateDescribeInstances({ client, pageSize: 1000 }, input);
  for await (const page of pages) for (const r of page.Reservations ?? []) out.push(...(r.Instances ?? []));
  return out;
}

async function terminate(client: EC2Client, ids: string[]): Promise<void> {
  for (const part of chunk(ids, 500)) {
    try {
      await client.send(new ec2.TerminateInstancesCommand({ InstanceIds: part }));
    } catch (e) {
      // One id already gone fails the whole call: fall back to one call per id and ignore the gone ones.
      if (codeOf(e) !== 'InvalidInstanceID.NotFound') throw e;
      for (const id of part) {
        await client.send(new ec2.TerminateInstancesCommand({ InstanceIds: [id] })).catch((x) => {
          if (codeOf(x) !== 'InvalidInstanceID.NotFound') throw x;
        });
      }
    }
  }
}

/** An instance as a Machine: SSH over the configured address, the private address advertised. */
/** Stopped, or on its way there: such an instance is started by `up`, not counted as up. */
function isStopped(i: Instance): boolean {
  return i.State?.Name === 'stopped' || i.State?.Name === 'stopping';
}

/** `user`: the login user worked out for the instance (written ssh.user or the image's default user). */
function toMachine(inst: Instance, spec: HostSpec | undefined, s: AwsSettings, inv: Inventory, user?: string): Machine {
  const name = tagOf(inst.Tags, TAG.name)!;
  const priv = inst.PrivateIpAddress ?? '';
  const pub = inst.PublicIpAddress;
  const sshHost = s.sshVia === 'public' && pub ? pub : priv;
  const base = spec ?? inv.hosts.find((h) => h.provider === 'aws');
  return {
    name,
    role: (tagOf(inst.Tags, TAG.role) as Machine['role']) ?? spec?.role ?? 'worker',
    group: tagOf(inst.Tags, TAG.group) ?? spec?.group ?? '',
    provider: 'aws',
    providerId: inst.InstanceId!,
    privateAddress: priv,
    publicAddress: pub,
    ssh: { host: sshHost, port: base?.ssh.port ?? 22, user: user ?? base?.ssh.user ?? 'ubuntu', keyPath: base?.ssh.key, ...inventorySsh(base?.ssh) },
    labels: { ...(spec?.labels ?? {}), 'swarmform.instance-type': inst.InstanceType ?? '' },
    init: 'detect',
    ...(isStopped(inst) ? { stopped: true } : {}),
  };
}

async function findVpc(client: EC2Client, s: AwsSettings, hosts: HostSpec[]): Promise<string> {
  if (s.vpc) return s.vpc;
  const subnet = s.subnet ?? hosts.map((h) => awsShape(s, h).subnet).find(Boolean);
  if (subnet) {
    const out = await client.send(new ec2.DescribeSubnetsCommand({ SubnetIds: [subnet] }));
    const vpc = out.Subnets?.[0]?.VpcId;
    if (!vpc) throw new UsageError(`providers.aws.subnet: subnet ${subnet} not found in ${s.region}`);
    return vpc;
  }
  const out = await client.send(new ec2.DescribeVpcsCommand({ Filters: [{ Name: 'isDefault', Values: ['true'] }] }));
  const vpc = out.Vpcs?.[0]?.VpcId;
  if (!vpc) throw new UsageError(`providers.aws: ${s.region} has no default VPC: set providers.aws.vpc or subnet`);
  return vpc;
}

/** The security group's wanted ingress: swarm ports from the group itself (and swarmFrom), SSH from sshFrom. */
export function wantedPermissions(groupId: string, s: AwsSettings): IpPermission[] {
  const ranges = (cidrs: string[]) => ({
    IpRanges: cidrs.filter((c) => !c.includes(':')).map((CidrIp) => ({ CidrIp })),
    Ipv6Ranges: cidrs.filter((c) => c.includes(':')).map((CidrIpv6) => ({ CidrIpv6 })),
  });
  const self = { UserIdGroupPairs: [{ GroupId: groupId }], ...ranges(s.swarmFrom) };
  return [
    { IpProtocol: 'tcp', FromPort: 2377, ToPort: 2377, ...self },
    { IpProtocol: 'tcp', FromPort: 7946, ToPort: 7946, ...self },
    { IpProtocol: 'udp', FromPort: 7946, ToPort: 7946, ...self },
    { IpProtocol: 'udp', FromPort: 4789, ToPort: 4789, ...self },
    { IpProtocol: '50', ...self },
    { IpProtocol: 'tcp', FromPort: 22, ToPort: 22, ...ranges(s.sshFrom) },
  ];
}

/** Sources of a permission as strings, to compare wanted and existing rules. */
function sources(p: IpPermission): string[] {
  const key = `${p.IpProtocol === '-1' ? 'all' : p.IpProtocol}:${p.FromPort ?? ''}-${p.ToPort ?? ''}`;
  return [
    ...(p.UserIdGroupPairs ?? []).map((g) => `${key}<${g.GroupId}`),
    ...(p.IpRanges ?? []).map((r) => `${key}<${r.CidrIp}`),
    ...(p.Ipv6Ranges ?? []).map((r) => `${key}<${r.CidrIpv6}`),
  ];
}

async function ensureSecurityGroup(client: EC2Client, s: AwsSettings, cluster: string, vpcId: string): Promise<string> {
  const found = await client.send(
    new ec2.DescribeSecurityGroupsCommand({ Filters: [{ Name: `tag:${TAG.cluster}`, Values: [cluster] }, { Name: 'vpc-id', Values: [vpcId] }] }),
  );
  let group = found.SecurityGroups?.[0];
  let groupId = group?.GroupId;
  if (!groupId) {
    const made = await client.send(
      new ec2.CreateSecurityGroupCommand({
        GroupName: `swarmform-${cluster}`,
        Description: `swarmform cluster ${cluster}: swarm ports between members only`,
        VpcId: vpcId,
        TagSpecifications: [{ ResourceType: 'security-group', Tags: [...clusterTags(cluster), { Key: TAG.name, Value: `swarmform-${cluster}` }] }],
      }),
    );
    groupId = made.GroupId!;
    group = undefined;
  }
  const have = new Set((group?.IpPermissions ?? []).flatMap(sources));
  const missing = wantedPermissions(groupId, s).filter((p) => sources(p).some((x) => !have.has(x)));
  if (missing.length) await client.send(new ec2.AuthorizeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: missing }));
  return groupId;
}

async function ensureKeyPair(client: EC2Client, s: AwsSettings, inv: Inventory): Promise<string> {
  const name = keyNameOf(s, inv.cluster);
  const found = await client.send(new ec2.DescribeKeyPairsCommand({ Filters: [{ Name: 'key-name', Values: [name] }] }));
  if (found.KeyPairs?.length) return name;
  const { key } = await operatorPublicKey(inv, awsHosts(inv), 'providers.aws.keyName');
  await client.send(
    new ec2.ImportKeyPairCommand({
      KeyName: name,
      PublicKeyMaterial: new TextEncoder().encode(key),
      TagSpecifications: [{ ResourceType: 'key-pair', Tags: clusterTags(inv.cluster) }],
    }),
  );
  return name;
}

/** Batches and API calls `create` makes for a fresh cluster; shared by `plan` and the tests. */
export function awsCallPlan(hosts: HostSpec[], s: AwsSettings) {
  const groups = shapeGroups(hosts).map((g) => {
    const shape = awsShape(s, g[0]!);
    return {
      group: g[0]!.group,
      role: g[0]!.role,
      hosts: g.length,
      instanceType: shape.instanceType,
      spot: shape.spot,
      image: shape.ami ?? `newest "${shape.amiName}"`,
      amiName: shape.ami ? undefined : shape.amiName,
      batches: chunk(g, s.batchSize).map((b) => b.length),
    };
  });
  const runInstances = groups.reduce((a, g) => a + g.batches.length, 0);
  const amiLookups = new Set(groups.map((g) => g.amiName).filter(Boolean)).size;
  // Images by id whose login user is read from DescribeImages (no ssh.user written); a name lookup already tells it.
  const userLookups = new Set(
    hosts.filter((h) => h.ssh.defaults?.includes('user')).map((h) => awsShape(s, h).ami).filter(Boolean),
  ).size;
  // DescribeVpcs/Subnets, DescribeSecurityGroups, CreateSecurityGroup, AuthorizeSecurityGroupIngress, DescribeKeyPairs, ImportKeyPair.
  const setup = 6 + amiLookups + userLookups;
  const createTags = hosts.length;
  // Discovery before create (one page per 1,000), then at least one poll of the launched instances.
  const describe = 2 * Math.max(1, Math.ceil(hosts.length / 1000));
  return { groups, runInstances, createTags, setup, describe, total: setup + runInstances + createTags + describe };
}

/** The aws provider instance registered under `aws`. */
export const awsProvider: Provider = new AwsProvider();
