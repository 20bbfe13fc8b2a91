/**
 * What the operator's machine needs for the lab: root (network namespaces, bridges, iptables, mounts) and a handful
 * of Debian packages. Reported all at once, with the apt-get line that fixes it.
 */
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../base/errors.js';
import { commandEnv } from './exec.js';

/** Each tool the lab runs, the path it is looked up at (or a bare name for PATH), and its Debian package. */
export const REQUIRED_TOOLS: { tool: string; pkg: string; why: string }[] = [
  { tool: 'ip', pkg: 'iproute2', why: 'namespaces, veths, the bridge' },
  { tool: 'nsenter', pkg: 'util-linux', why: 'entering host namespaces' },
  { tool: 'unshare', pkg: 'util-linux', why: 'mount and UTS namespaces' },
  { tool: 'mount', pkg: 'mount', why: 'per-host directories' },
  { tool: '/usr/sbin/sshd', pkg: 'openssh-server', why: 'each host runs its own sshd' },
  { tool: 'ssh-keygen', pkg: 'openssh-client', why: 'host and client keys' },
  { tool: 'iptables', pkg: 'iptables', why: 'host firewalls and bridge forwarding' },
  { tool: 'iptables-restore', pkg: 'iptables', why: 'host firewalls' },
  { tool: 'sysctl', pkg: 'procps', why: 'host network settings' },
  { tool: '/bin/busybox', pkg: 'busybox-static', why: 'the base image' },
  { tool: 'tar', pkg: 'tar', why: 'engine bundle and base image' },
  { tool: 'gzip', pkg: 'gzip', why: 'engine bundle' },
  { tool: 'dockerd', pkg: 'docker.io', why: 'the engine bundle' },
  { tool: 'docker-proxy', pkg: 'docker.io', why: 'the engine bundle' },
  { tool: 'containerd', pkg: 'containerd', why: 'the engine bundle' },
  { tool: 'containerd-shim-runc-v2', pkg: 'containerd', why: 'the engine bundle' },
  { tool: 'runc', pkg: 'runc', why: 'the engine bundle' },
];

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** True when `tool` (an absolute path, or a name looked up in PATH plus the sbin directories) is executable. */
export function hasTool(tool: string): boolean {
  if (tool.startsWith('/')) return executable(tool);
  const dirs = (commandEnv().PATH ?? '').split(':').filter(Boolean);
  return dirs.some((d) => executable(path.join(d, tool)));
}

/** Throws UsageError unless running as root with every tool the lab needs. */
export function labPreflight(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new UsageError('the lab provider makes network namespaces and needs root: run with sudo', {
      hint: 'sudo swarmform up (or use the ssh provider for machines that already exist)',
    });
  }
  if (process.platform !== 'linux') {
    throw new UsageError('the lab provider needs Linux (network namespaces, bridges, iptables)');
  }
  const missing = REQUIRED_TOOLS.filter((t) => !hasTool(t.tool));
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((m) => m.pkg))];
    const install = `apt-get update && apt-get install -y ${pkgs.join(' ')}`;
    throw new UsageError(
      `the lab provider is missing ${missing.map((m) => `${m.tool} (${m.why})`).join(', ')}: install the Debian packages ${pkgs.join(', ')}`,
      { hint: install },
    );
  }
}
