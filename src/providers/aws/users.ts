/**
 * The login user of an EC2 image, for hosts whose inventory did not write `ssh.user`: EC2 images refuse root and
 * log in as the distribution's cloud user, which only the image's name or description tells.
 */
import type { Image } from '@aws-sdk/client-ec2';
import { UsageError } from '../../base/errors.js';
import type { HostSpec } from '../../inventory/types.js';

/** What DescribeImages says about an image (the fields the user is read from). */
export type ImageFacts = Pick<Image, 'ImageId' | 'Name' | 'Description'>;

/** Distributions and their default login user on EC2, by a pattern of the image's name or description. */
const USERS: { distro: string; pattern: RegExp; user: string }[] = [
  { distro: 'Ubuntu', pattern: /ubuntu/i, user: 'ubuntu' },
  { distro: 'Debian', pattern: /debian/i, user: 'admin' },
  { distro: 'Amazon Linux', pattern: /amzn|(?<![a-z0-9])al20\d\d(?![0-9])|amazon[ _-]?linux/i, user: 'ec2-user' },
  { distro: 'RHEL', pattern: /(?<![a-z0-9])rhel|red[ _-]?hat/i, user: 'ec2-user' },
  { distro: 'Fedora', pattern: /fedora/i, user: 'fedora' },
  { distro: 'CentOS', pattern: /centos/i, user: 'centos' },
  { distro: 'Rocky', pattern: /rocky/i, user: 'rocky' },
];

/** Image users this provider knows, for messages and docs: `ubuntu (Ubuntu), admin (Debian), ...`. */
export const KNOWN_IMAGE_USERS = USERS.map((u) => `${u.distro} → ${u.user}`).join(', ');

/**
 * The default login user of an image, or undefined when neither its name nor its description names a known
 * distribution. The name is read first; within one text the earliest distribution named wins
 * ("ubuntu-with-debian-tools" is Ubuntu).
 */
export function imageDefaultUser(image: ImageFacts | undefined): string | undefined {
  for (const text of [image?.Name, image?.Description]) {
    if (!text) continue;
    let best: { at: number; user: string } | undefined;
    for (const u of USERS) {
      const at = text.search(u.pattern);
      if (at >= 0 && (!best || at < best.at)) best = { at, user: u.user };
    }
    if (best) return best.user;
  }
  return undefined;
}

/** The image's words, for an error: `ami-0… ("name", "description")`. */
function describeImage(imageId: string, image: ImageFacts | undefined): string {
  if (!image) return `${imageId} (not found by DescribeImages)`;
  const words = [image.Name, image.Description].filter(Boolean).map((w) => JSON.stringify(w));
  return `${imageId}${words.length ? ` (${words.join(', ')})` : ' (no name or description)'}`;
}

/**
 * The login user of a host: the inventory's `ssh.user` when it wrote one, else the image's default user.
 * Throws a UsageError naming the group, the host and the AMI when the image's user cannot be told.
 */
export function loginUser(host: Pick<HostSpec, 'name' | 'group' | 'ssh'>, imageId: string, image: ImageFacts | undefined): string {
  if (!host.ssh.defaults?.includes('user')) return host.ssh.user;
  const user = imageDefaultUser(image);
  if (user) return user;
  throw new UsageError(
    `groups.${host.group}: aws host ${host.name} uses image ${describeImage(imageId, image)}, whose login user swarmform cannot tell`,
    { hint: `set ssh.user for the group (or the inventory) to the image's login user; known images: ${KNOWN_IMAGE_USERS}` },
  );
}
