/**
 * The EC2 client: the SDK's own retry strategy (adaptive by default: client-side rate limiting plus exponential
 * backoff with full jitter on RequestLimitExceeded and friends), with every call's attempts counted so throttled
 * batches can be reported. Credentials come from the SDK's default chain and are never read or kept here.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import { ec2, smithyRetry } from './sdk.js';
import { checkEndpoint } from '../cloud/common.js';
import type { AwsSettings } from './settings.js';

/** Throttling and retry counts per API action, for reports and tests. */
export interface CallStats {
  calls: Record<string, number>;
  /** Calls that needed more than one attempt, by action. */
  retried: Record<string, number>;
  /** Total milliseconds the SDK waited between attempts. */
  retryDelayMs: number;
}

/** An EC2 client for these settings, and the stats its middleware keeps. */
/** Needs loadAwsSdk() to have run. */
export function ec2Client(s: AwsSettings): { client: EC2Client; stats: CallStats } {
  // The SDK warns on every run that its 2027 releases need Node 22; swarmform pins its SDK version, so keep output clean.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  checkEndpoint('aws', s.endpoint);
  const backoff = {
    // Full jitter: a random delay up to an exponentially growing cap (AWS's recommended backoff).
    computeNextBackoffDelay: (attempt: number) => Math.floor(Math.random() * Math.min(s.retry.maxDelayMs, s.retry.baseDelayMs * 2 ** attempt)),
    setDelayBase: () => {},
  };
  const retryStrategy =
    s.retry.mode === 'adaptive'
      ? new smithyRetry.AdaptiveRetryStrategy(s.retry.maxAttempts, { rateLimiter: new smithyRetry.DefaultRateLimiter(), backoff } as never)
      : new smithyRetry.StandardRetryStrategy({ maxAttempts: s.retry.maxAttempts, backoff } as never);
  const client = new ec2.EC2Client({
    region: s.region,
    ...(s.endpoint ? { endpoint: s.endpoint } : {}),
    retryStrategy,
    maxAttempts: s.retry.maxAttempts,
  });
  const stats: CallStats = { calls: {}, retried: {}, retryDelayMs: 0 };
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const action = context.commandName?.replace(/Command$/, '') ?? 'unknown';
      stats.calls[action] = (stats.calls[action] ?? 0) + 1;
      const note = (meta?: { attempts?: number; totalRetryDelay?: number }) => {
        if (meta?.attempts && meta.attempts > 1) {
          stats.retried[action] = (stats.retried[action] ?? 0) + 1;
          stats.retryDelayMs += meta.totalRetryDelay ?? 0;
        }
      };
      try {
        const out = await next(args);
        note((out.output as { $metadata?: { attempts?: number; totalRetryDelay?: number } }).$metadata);
        return out;
      } catch (e) {
        note((e as { $metadata?: { attempts?: number; totalRetryDelay?: number } }).$metadata);
        throw e;
      }
    },
    { step: 'initialize', name: 'swarmformCallStats' },
  );
  return { client, stats };
}
