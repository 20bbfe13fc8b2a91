/**
 * The AWS SDK, loaded on first use: it costs about 0.7 s and 90 MB to load, and every command (status, service ls,
 * a lab-only `up`) would otherwise pay that because the provider registry imports every provider.
 */
import type * as Ec2 from '@aws-sdk/client-ec2';
import type * as SmithyRetry from '@smithy/core/retry';

/** The loaded `@aws-sdk/client-ec2` module (set by loadAwsSdk; live binding). */
export let ec2: typeof Ec2;
/** The loaded `@smithy/core/retry` module. */
export let smithyRetry: typeof SmithyRetry;

/** Loads the SDK once; every provider method that talks to EC2 awaits this first. */
export async function loadAwsSdk(): Promise<void> {
  if (ec2 && smithyRetry) return;
  [ec2, smithyRetry] = await Promise.all([import('@aws-sdk/client-ec2'), import('@smithy/core/retry')]);
}
