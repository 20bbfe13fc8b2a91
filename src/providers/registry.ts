/** The providers swarmform knows, by the name an inventory uses. */
import { UsageError } from '../base/errors.js';
import { awsProvider } from './aws/index.js';
import { digitalOceanProvider } from './digitalocean/index.js';
import { labProvider } from './lab/index.js';
import type { Provider } from './provider.js';
import { simProvider } from './sim/index.js';
import { sshProvider } from './ssh/index.js';
import { virtualBoxProvider } from './virtualbox/index.js';

export const providers: Record<string, Provider> = {
  lab: labProvider,
  ssh: sshProvider,
  sim: simProvider,
  aws: awsProvider,
  digitalocean: digitalOceanProvider,
  virtualbox: virtualBoxProvider,
};

/**
 * The provider for a name. The inventory loader has already rejected unknown names; a machine recorded in the state
 * file may still name one this swarmform does not know (a newer release wrote it, or the file was edited).
 */
export function providerFor(name: string): Provider {
  const p = providers[name];
  if (!p) {
    throw new UsageError(`unknown provider ${name}`, { hint: `the providers this swarmform knows: ${Object.keys(providers).join(', ')}; use the release that recorded the machine` });
  }
  return p;
}
