/** The providers swarmform knows, by the name an inventory uses. */
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

/** The provider for a name; the inventory loader has already rejected unknown names. */
export function providerFor(name: string): Provider {
  const p = providers[name];
  if (!p) throw new Error(`unknown provider ${name}`);
  return p;
}
