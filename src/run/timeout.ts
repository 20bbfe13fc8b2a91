/** Promise with a deadline: a host or engine that does not answer must not hold a command up. */
import { ExternalError } from '../base/errors.js';

/** Rejects with an ExternalError saying `message` (it names the host and what did not answer) after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ExternalError(message)), ms);
    }),
  ]);
}
