/**
 * Removes secrets from text before it is printed or logged: swarm join tokens, swarm unlock keys, AWS access keys
 * and secret keys, DigitalOcean tokens, and private key blocks (also a block cut off before its END line).
 */

export const REDACTED = '[redacted]';

const patterns: RegExp[] = [
  // Join tokens: SWMTKN-1-<cluster CA digest>-<secret>.
  /SWMTKN-\d+-[A-Za-z0-9-]+/g,
  // Autolock unlock keys: SWMKEY-1-<base64>.
  /SWMKEY-\d+-[A-Za-z0-9+/=_-]+/g,
  // PEM / OpenSSH private keys, through END or, when truncated, to the end of the text.
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g,
  // AWS access key ids (long-term and temporary).
  /\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z0-9]{16}\b/g,
  // DigitalOcean personal access and OAuth tokens.
  /\bdo[opr]_v1_[a-f0-9]{64}\b/g,
];

/** `aws_secret_access_key = ...`, `AWS_SESSION_TOKEN: ...`, `"SecretAccessKey": "..."`: keep the name, drop the value. */
const namedSecret =
  /((?:aws_?secret_?access_?key|aws_?session_?token|secret_?access_?key|session_?token|digitalocean_?token|do_?token)["']?\s*[:=]\s*["']?)([^\s"',}]+)/gi;

/** Returns `text` with every secret replaced by `[redacted]`. Linear in the text's length. */
export function redact(text: string): string {
  let out = text;
  for (const re of patterns) out = out.replace(re, REDACTED);
  return out.replace(namedSecret, (_m, name: string) => `${name}${REDACTED}`);
}
