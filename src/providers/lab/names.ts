/**
 * Names of everything the lab makes in the kernel. They derive from the cluster and host names only, so a crashed
 * run's leftovers can be found again without any state file.
 */
import { createHash } from 'node:crypto';
import { UsageError } from '../../base/errors.js';

/** Lowercase letters, digits and inner hyphens: safe in paths, netns names, hostnames and iptables comments. */
const NAME_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** Longest cluster name: it is repeated in every netns name and the iptables comment. */
export const MAX_CLUSTER_NAME = 32;
/** Longest host name: a DNS label, and the UTS namespace's hostname. */
export const MAX_HOST_NAME = 63;

/** Throws UsageError unless `name` is a usable lab cluster name. */
export function checkClusterName(name: string): void {
  if (!NAME_RE.test(name) || name.length > MAX_CLUSTER_NAME) {
    throw new UsageError(
      `cluster name "${name}" cannot be used by the lab provider: use 1-${MAX_CLUSTER_NAME} of a-z, 0-9 and inner "-"`,
    );
  }
}

/** Throws UsageError unless `name` is a usable lab host name. */
export function checkHostName(name: string): void {
  if (!NAME_RE.test(name) || name.length > MAX_HOST_NAME) {
    throw new UsageError(
      `host name "${name}" cannot be used by the lab provider: use 1-${MAX_HOST_NAME} of a-z, 0-9 and inner "-"`,
    );
  }
}

/** First 8 hex digits of a SHA-256: short enough for 15-character interface names. */
export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

/** Prefix of every netns of a cluster: `sf-<cluster>-`. */
export function netnsPrefix(cluster: string): string {
  return `sf-${cluster}-`;
}

/** The host's network namespace name, also its Machine.providerId. */
export function netnsName(cluster: string, host: string): string {
  return `${netnsPrefix(cluster)}${host}`;
}

/** The root-namespace end of the host's veth pair (the other end is `eth0` inside the host). */
export function vethName(cluster: string, host: string): string {
  return `sfv${shortHash(`${cluster}/${host}`)}`;
}

/** Default bridge of a cluster when the inventory does not name one. */
export function defaultBridgeName(cluster: string): string {
  return `sfb-${shortHash(cluster)}`;
}

/** Comment on every root-namespace iptables rule of a cluster, so teardown finds exactly its own rules. */
export function ruleComment(cluster: string): string {
  return `swarmform:${cluster}`;
}
