/**
 * The DigitalOcean client: digitalocean-js for the calls it models, with two small additions on the axios instance
 * it shares: 429 and 5xx answers are retried after the time the API asks for (Retry-After, else RateLimit-Reset)
 * with jitter, and requests pause while RateLimit-Remaining is nearly spent. List calls page through `links.next`
 * themselves (the library's lists return only the first page of 20). The token comes from
 * DIGITALOCEAN_ACCESS_TOKEN; errors are rebuilt from status and message so no request headers ever leave here.
 */
import { DigitalOcean } from 'digitalocean-js';
import { instance } from 'digitalocean-js/src/lib/axios-instance.js';
import { ExternalError, UsageError } from '../../base/errors.js';
import { checkEndpoint } from '../cloud/common.js';
import type { DoSettings } from './settings.js';

/** The production API; tests point `providers.digitalocean.endpoint` at a loopback stub instead. */
export const DO_API = 'https://api.digitalocean.com/v2';

/** Requests per method and path (ids folded), 429s seen and time spent waiting for the rate limit. */
export interface DoStats {
  calls: Record<string, number>;
  rateLimited: number;
  waitedMs: number;
}

type Config = { method?: string; url?: string; params?: Record<string, unknown>; __attempt?: number; headers?: Record<string, unknown> };
type AxiosLikeError = { config?: Config; response?: { status: number; headers: Record<string, string>; data?: { id?: string; message?: string } }; code?: string; message: string };

interface Shared {
  stats: DoStats;
  maxRetries: number;
  baseMs: number;
  pausedUntil: number;
}

let shared: Shared | undefined;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function key(c: Config | undefined): string {
  return `${(c?.method ?? 'get').toUpperCase()} ${(c?.url ?? '').replace(/\/\d+(?=\/|$)/g, '/{id}')}`;
}

/** Seconds from now the server asks us to wait: Retry-After, else RateLimit-Reset (epoch seconds). */
function waitHintMs(headers: Record<string, string> | undefined): number | undefined {
  const ra = headers?.['retry-after'];
  if (ra !== undefined && !Number.isNaN(Number(ra))) return Number(ra) * 1000;
  const reset = headers?.['ratelimit-reset'];
  if (reset !== undefined && !Number.isNaN(Number(reset))) return Math.max(0, Number(reset) * 1000 - Date.now());
  return undefined;
}

function install(): Shared {
  if (shared) return shared;
  const s: Shared = { stats: { calls: {}, rateLimited: 0, waitedMs: 0 }, maxRetries: 8, baseMs: 1000, pausedUntil: 0 };
  // Never through an environment proxy: the endpoint is the API or a test's loopback stub, nothing else.
  instance.defaults.proxy = false;
  instance.defaults.timeout = 60_000;
  instance.interceptors.request.use(async (config: Config) => {
    const wait = s.pausedUntil - Date.now();
    if (wait > 0) {
      s.stats.waitedMs += wait;
      await sleep(wait);
    }
    s.stats.calls[key(config)] = (s.stats.calls[key(config)] ?? 0) + 1;
    return config as never;
  });
  instance.interceptors.response.use(
    (res: { headers: Record<string, string> }) => {
      const remaining = Number(res.headers['ratelimit-remaining']);
      // Nearly out of requests: hold everything until the window resets rather than collect 429s.
      if (!Number.isNaN(remaining) && remaining <= 5) {
        const hint = waitHintMs(res.headers);
        if (hint !== undefined) s.pausedUntil = Math.max(s.pausedUntil, Date.now() + hint);
      }
      return res as never;
    },
    async (err: AxiosLikeError) => {
      const status = err.response?.status;
      const config = err.config;
      const attempt = (config?.__attempt ?? 0) + 1;
      const retryable = status === 429 || (status !== undefined && status >= 500) || err.code === 'ECONNRESET';
      if (!config || !retryable || attempt > s.maxRetries) throw toError(err, attempt);
      if (status === 429) s.stats.rateLimited++;
      const cap = Math.min(60_000, s.baseMs * 2 ** (attempt - 1));
      const hint = waitHintMs(err.response?.headers);
      const delay = (hint ?? 0) + Math.floor(Math.random() * cap);
      if (status === 429) s.pausedUntil = Math.max(s.pausedUntil, Date.now() + (hint ?? 0));
      s.stats.waitedMs += delay;
      await sleep(delay);
      config.__attempt = attempt;
      return instance.request(config as never);
    },
  );
  shared = s;
  return s;
}

/** An error that says which call failed and how, without the request (whose headers hold the token). */
function toError(err: AxiosLikeError, attempts: number): Error {
  const status = err.response?.status;
  const data = err.response?.data;
  const what = key(err.config);
  const msg = status
    ? `DigitalOcean ${what}: ${status}${data?.id ? ` ${data.id}` : ''}: ${data?.message ?? err.message}${attempts > 1 ? ` (after ${attempts} attempts)` : ''}`
    : `DigitalOcean ${what}: ${err.code ?? ''} ${err.message}`;
  const e = new ExternalError(msg.replace(/Bearer\s+\S+/g, 'Bearer ***'));
  (e as Error & { status?: number; code?: string }).status = status;
  (e as Error & { code?: string }).code = data?.id;
  return e;
}

/** The token from the environment; a clear error when it is missing. */
export function doToken(): string {
  const t = process.env.DIGITALOCEAN_ACCESS_TOKEN;
  if (!t) throw new UsageError('DIGITALOCEAN_ACCESS_TOKEN is not set', { hint: 'export DIGITALOCEAN_ACCESS_TOKEN=<a personal access token with write scope>' });
  return t;
}

/** A client for these settings plus the paging helper and shared stats. */
export function doClient(s: DoSettings): { api: DigitalOcean; list: <T>(path: string, field: string, params?: Record<string, unknown>) => Promise<T[]>; http: typeof instance; stats: DoStats } {
  checkEndpoint('digitalocean', s.endpoint);
  const sh = install();
  sh.maxRetries = s.rateLimit.maxRetries;
  sh.baseMs = s.rateLimit.baseDelayMs;
  const api = new DigitalOcean(doToken(), s.endpoint ?? DO_API);
  const list = async <T>(path: string, field: string, params: Record<string, unknown> = {}): Promise<T[]> => {
    const out: T[] = [];
    for (let page = 1; page < 10_000; page++) {
      const res = await instance.get(path, { params: { ...params, per_page: 200, page } });
      const data = res.data as Record<string, unknown> & { links?: { pages?: { next?: string } } };
      out.push(...((data[field] as T[]) ?? []));
      if (!data.links?.pages?.next) break;
    }
    return out;
  };
  return { api, list, http: instance, stats: sh.stats };
}
