/** Runs VBoxManage: an argument array (never a shell), errors that name the command and keep its stderr tail. */
import { execFile } from 'node:child_process';
import { UsageError } from '../../base/errors.js';

export class VBoxError extends Error {
  constructor(
    readonly args: string[],
    readonly code: number | string,
    readonly stderr: string,
  ) {
    super(`VBoxManage ${args.join(' ')} failed (${code})${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' ')}` : ''}`);
  }
}

/** Runs `VBoxManage args...`; a missing binary is a UsageError that says how to get it. */
export function vbox(bin: string, args: string[], timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const e = err as NodeJS.ErrnoException & { code?: number | string };
      if (e.code === 'ENOENT') {
        return reject(
          new UsageError(`VBoxManage not found (looked for "${bin}" on PATH): the virtualbox provider needs VirtualBox installed`, {
            hint: 'install VirtualBox 7 (https://www.virtualbox.org/wiki/Downloads), or set providers.virtualbox.vboxmanage to the path of VBoxManage',
          }),
        );
      }
      reject(new VBoxError(args, e.code ?? 'error', String(stderr)));
    });
  });
}

/** `Key: value` lines (e.g. `getextradata enumerate`, `list hostonlyifs`) as records, a blank line between records. */
export function records(text: string): Record<string, string>[] {
  const out: Record<string, string>[] = [];
  let cur: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line.trim());
    if (!m) {
      if (Object.keys(cur).length) out.push(cur);
      cur = {};
      continue;
    }
    cur[m[1]!.trim()] = m[2]!.trim();
  }
  if (Object.keys(cur).length) out.push(cur);
  return out;
}

/** `getextradata VM enumerate` output (`Key: k, Value: v`) as a map. */
export function extradata(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^Key:\s*([^,]+),\s*Value:\s*(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** `list vms` output (`"name" {uuid}`) as names. */
export function vmNames(text: string): string[] {
  return [...text.matchAll(/^"(.+)" \{[0-9a-f-]+\}$/gm)].map((m) => m[1]!);
}
