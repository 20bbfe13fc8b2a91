/** What every benchmark shares: bin/swarmform run under /usr/bin/time for its wall time, CPU time and peak RSS. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

export interface Timed {
  code: number;
  wallS: number;
  cpuS: number;
  maxRssMb: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/swarmform with args under /usr/bin/time (Debian's `time` package); never throws on a non-zero exit. */
export function timedCli(args: string[], env: Record<string, string>): Promise<Timed> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', 'BENCH %U %S %M', join(ROOT, 'bin/swarmform'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      const m = /BENCH ([\d.]+) ([\d.]+) (\d+)/.exec(stderr);
      resolve({
        code: code ?? 255,
        wallS: (performance.now() - t0) / 1000,
        cpuS: m ? Number(m[1]) + Number(m[2]) : NaN,
        maxRssMb: m ? Number(m[3]) / 1024 : NaN,
        stdout,
        stderr,
      });
    });
  });
}
