/**
 * Where a machine's SSH connection really goes: the inventory's settings, filled in from the operator's OpenSSH
 * client config (~/.ssh/config by default) the way `ssh ADDRESS` would, and ProxyJump chains. The inventory is
 * explicit and wins; the config only fills what it left unset (swarmform's own defaults, `user: root` and
 * `port: 22`, count as unset: see Machine.ssh.defaults).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import SSHConfig from 'ssh-config';
import { UsageError } from '../base/errors.js';
import type { Machine, SshHop } from '../base/machine.js';

/** A hop as written: `[user@]host[:port]`; unset parts are filled later (config, then the host's own user, 22). */
export interface JumpSpec {
  host: string;
  user?: string;
  port?: number;
  keyPath?: string;
}

/** A fully resolved endpoint: a bastion or the target itself. */
export interface ResolvedHop {
  host: string;
  port: number;
  user: string;
  keyPath?: string;
}

/** The connection a machine's steps will use. */
export interface ResolvedSsh extends ResolvedHop {
  become: 'sudo' | 'none';
  /** Bastions first to last; empty: direct. */
  jump: ResolvedHop[];
}

const PROXY_JUMP_HINT = { hint: 'write ProxyJump as [user@]host[:port][,[user@]host[:port]...], e.g. ops@bastion.example.org:2222' };

/**
 * Parses an OpenSSH ProxyJump value: `[user@]host[:port][,[user@]host[:port]...]`, IPv6 as `[addr]` or
 * `[addr]:port`, `ssh://[user@]host[:port]` URIs; `none` is an empty chain. Throws on a malformed entry.
 */
export function parseProxyJump(value: string): JumpSpec[] {
  const text = value.trim();
  if (text === '' || text.toLowerCase() === 'none') return [];
  return text.split(',').map((raw) => {
    let s = raw.trim();
    if (s.startsWith('ssh://')) s = s.slice(6).replace(/\/$/, '');
    if (s === '') throw new UsageError(`empty hop in ProxyJump "${value}"`, PROXY_JUMP_HINT);
    const hop: JumpSpec = { host: '' };
    const at = s.lastIndexOf('@');
    if (at >= 0) {
      hop.user = s.slice(0, at);
      s = s.slice(at + 1);
      if (hop.user === '') throw new UsageError(`empty user in ProxyJump hop "${raw.trim()}"`, PROXY_JUMP_HINT);
    }
    let portText: string | undefined;
    const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
    if (v6) {
      hop.host = v6[1]!;
      portText = v6[2];
    } else {
      const colons = s.split(':').length - 1;
      if (colons === 1) [hop.host, portText] = s.split(':') as [string, string];
      else hop.host = s; // a bare name, or a bare IPv6 address (no port possible)
    }
    if (hop.host === '' || /[\s/]/.test(hop.host)) throw new UsageError(`bad host in ProxyJump hop "${raw.trim()}"`, PROXY_JUMP_HINT);
    if (portText !== undefined) {
      const port = Number(portText);
      if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new UsageError(`bad port in ProxyJump hop "${raw.trim()}"`, PROXY_JUMP_HINT);
      hop.port = port;
    }
    return hop;
  });
}

/** The default OpenSSH client config of the operator. */
export function defaultSshConfigPath(): string {
  return path.join(os.homedir(), '.ssh', 'config');
}

const parsed = new Map<string, { mtimeMs: number; config: SSHConfig }>();

/** Parses (and caches by mtime) an OpenSSH client config; undefined when the file does not exist. */
export function loadSshConfig(file: string): SSHConfig | undefined {
  let mtimeMs: number;
  try {
    mtimeMs = statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
  const have = parsed.get(file);
  if (have && have.mtimeMs === mtimeMs) return have.config;
  const config = SSHConfig.parse(readFileSync(file, 'utf8'));
  parsed.set(file, { mtimeMs, config });
  return config;
}

/** The settings an OpenSSH config gives one host name (lower-cased keys; first value wins, as in ssh_config(5)). */
export interface ConfigValues {
  hostname?: string;
  user?: string;
  port?: number;
  identityFiles: string[];
  proxyjump?: string;
}

/** What `ssh NAME` would take from `config` for these keys (`Match exec` is never run). */
export function configFor(config: SSHConfig | undefined, name: string): ConfigValues {
  if (!config) return { identityFiles: [] };
  const c = config.compute(name, { ignoreCase: true, matchExec: false }) as Record<string, string | string[] | undefined>;
  const one = (k: string) => {
    const v = c[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const port = one('port') !== undefined ? Number(one('port')) : undefined;
  const ids = c.identityfile;
  return {
    hostname: one('hostname')?.replace(/%h/g, name),
    user: one('user'),
    port: port !== undefined && Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined,
    identityFiles: (Array.isArray(ids) ? ids : ids ? [ids] : []).filter((f) => f.toLowerCase() !== 'none'),
    proxyjump: one('proxyjump'),
  };
}

/** Expands `~` and the common tokens of an IdentityFile (%d home, %u local user, %h host, %r remote user, %%). */
function identityPath(file: string, host: string, user: string): string {
  let f = file.replace(/%(.)/g, (all, t: string) =>
    t === 'd' ? os.homedir() : t === 'u' ? os.userInfo().username : t === 'h' ? host : t === 'r' ? user : t === '%' ? '%' : all,
  );
  if (f === '~') f = os.homedir();
  else if (f.startsWith('~/')) f = path.join(os.homedir(), f.slice(2));
  else if (!path.isAbsolute(f)) f = path.join(os.homedir(), '.ssh', f);
  return f;
}

/** The first IdentityFile that exists (OpenSSH skips missing ones too); undefined: none, use ssh-agent. */
function firstIdentity(files: string[], host: string, user: string): string | undefined {
  for (const f of files) {
    const p = identityPath(f, host, user);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/**
 * Resolves a machine's connection: inventory values first, then the OpenSSH config (`ssh.config`: a path, false
 * to ignore, absent for ~/.ssh/config), matched on the machine's ssh host as `ssh HOST` would. Bastions are
 * looked up in the same config by their own names; a bastion's unset user is the host's user, its unset key the
 * host's key. `become` unset: sudo unless the login user is root.
 */
export function resolveSsh(ssh: Machine['ssh']): ResolvedSsh {
  const file = ssh.config === false ? undefined : (ssh.config ?? defaultSshConfigPath());
  const config = file ? loadSshConfig(file) : undefined;
  const c = configFor(config, ssh.host);
  const defaults = new Set(ssh.defaults ?? []);
  const user = defaults.has('user') && c.user ? c.user : ssh.user;
  const port = defaults.has('port') && c.port ? c.port : ssh.port;
  const host = c.hostname ?? ssh.host;
  const keyPath = ssh.keyPath ?? firstIdentity(c.identityFiles, host, user);
  let hops: (SshHop | JumpSpec)[] = ssh.jump ?? [];
  if (ssh.jump === undefined && c.proxyjump) {
    try {
      hops = parseProxyJump(c.proxyjump);
    } catch (err) {
      // The value came from the operator's OpenSSH config: name the file and the Host it matched.
      throw new UsageError(`${file}: Host ${ssh.host}: ${(err as Error).message}`, { hint: `${PROXY_JUMP_HINT.hint}; or set ssh.jump in the inventory, which wins over the config`, cause: err });
    }
  }
  const jump = hops.map((h): ResolvedHop => {
    const hc = configFor(config, h.host);
    const hopHost = hc.hostname ?? h.host;
    const hopUser = h.user ?? hc.user ?? user;
    return {
      host: hopHost,
      port: h.port ?? hc.port ?? 22,
      user: hopUser,
      keyPath: h.keyPath ?? firstIdentity(hc.identityFiles, hopHost, hopUser) ?? keyPath,
    };
  });
  return { host, port, user, keyPath, jump, become: ssh.become ?? (user === 'root' ? 'none' : 'sudo') };
}
