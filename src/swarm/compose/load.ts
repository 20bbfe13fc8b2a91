/**
 * Loads compose files as `docker stack deploy -c A -c B` does: each file is parsed (YAML with positions),
 * interpolated (`${VAR}`, `.env`), validated against the 3.x format, normalized, then the files are merged in order
 * and references between them (networks, volumes, secrets, configs) are checked. Every problem carries
 * FILE:LINE:COL and the key path; all are reported together and nothing is deployed when there is any.
 */
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { InventoryError, UsageError, type InventoryProblem } from '../../base/errors.js';
import { resolveLocalPath } from '../../inventory/local-paths.js';
import { type DocPath, formatPath, ProblemList } from '../../inventory/problems.js';
import { readInputFile } from '../../inventory/read-input.js';
import { MAX_TEMPLATE_BYTES } from '../../inventory/render-template.js';
import { ShellWordsError, splitShellWords } from '../../inventory/shell-words.js';
import { YamlSource } from '../../inventory/yaml-source.js';
import { parseWith, reportIssues } from '../../inventory/zod-issues.js';
import { interpolate, parseEnvFile } from './interpolate.js';
import type { ComposeProject, FileObjectConfig, FileRef, LoadedStack, MountConfig, NetworkConfig, PortConfig, ServiceConfig, VolumeConfig } from './model.js';
import { composeSchema, DEPRECATED_SERVICE_KEYS, NOT_CONVERTED_SERVICE_KEYS, UNSUPPORTED_SERVICE_KEYS, type ComposeFile } from './schema.js';

export interface LoadStackOptions {
  /** Variables on top of the process environment and the `.env` file (the inventory's `env:`). */
  env?: Record<string, string>;
  /** The process environment (default: process.env). */
  processEnv?: NodeJS.ProcessEnv;
}

/** A stack name as the docker CLI accepts it (it becomes a prefix of every object name). */
export const STACK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_-]*$/;

/** Loads, validates and merges a stack's compose files; throws InventoryError (exit 2) listing every problem. */
export function loadStack(name: string, files: string[], opts: LoadStackOptions = {}): LoadedStack {
  if (!STACK_NAME.test(name)) throw new UsageError(`invalid stack name ${JSON.stringify(name)}: use letters, digits, "_" and "-", starting with a letter or digit`);
  if (files.length === 0) throw new UsageError('stack deploy needs at least one compose file (-c FILE)');
  const abs = files.map((f) => path.resolve(f));
  // Relative paths (env_file, secrets, bind mounts) start at the first file's directory, as with the docker CLI.
  const workingDir = path.dirname(abs[0]!);
  const env = variables(workingDir, opts);
  const warnings: string[] = [];
  const unsetVars = new Set<string>();
  const problems: InventoryProblem[] = [];
  const parsed: ParsedFile[] = [];
  for (const file of abs) {
    const p = parseFile(file, env.vars, workingDir, unsetVars);
    problems.push(...p.problems.items);
    if (p.data) parsed.push(p as ParsedFile);
  }
  if (problems.length > 0) throw new InventoryError(sortProblems(problems));

  const project = merge(parsed);
  // `- DEBUG` (no value) takes the variable's value where there is one, as the docker CLI does.
  for (const svc of Object.values(project.services)) {
    for (const [k, v] of Object.entries(svc.environment)) if (v === null && env.vars[k] !== undefined) svc.environment[k] = env.vars[k]!;
  }
  const cross = crossCheck(project, parsed);
  if (cross.length > 0) throw new InventoryError(sortProblems(cross));

  for (const v of [...unsetVars].sort()) warnings.push(`The "${v}" variable is not set. Defaulting to a blank string.`);
  warnings.push(...ignoredKeyWarnings(parsed));
  return { name, files: abs, project, warnings };
}

interface ParsedFile {
  file: string;
  data: ComposeFile;
  raw: unknown;
  source: YamlSource;
  normalized: PartialProject;
}

/** The `.env` file of the working directory < the process environment < the stack's own variables. */
function variables(workingDir: string, opts: LoadStackOptions): { vars: Record<string, string | undefined> } {
  let dotenv: Record<string, string> = {};
  const envPath = path.join(workingDir, '.env');
  try {
    if (statSync(envPath).isFile()) dotenv = parseEnvFile(readFileSync(envPath, 'utf8'));
  } catch {
    // no .env: fine
  }
  return { vars: { ...dotenv, ...(opts.processEnv ?? process.env), ...(opts.env ?? {}) } };
}

function parseFile(file: string, env: Record<string, string | undefined>, workingDir: string, unsetVars: Set<string>) {
  const problems = new ProblemList(file);
  let text = readInputFile(file, 'compose file', MAX_TEMPLATE_BYTES);
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  const source = YamlSource.parse(text, problems);
  for (const p of problems.items) p.message = p.message.replace('an inventory is a single YAML document', 'a compose file is a single YAML document');
  if (!source) return { file, problems };
  problems.locate = (p, at) => source.locate(p, at);
  let raw: unknown;
  try {
    raw = source.toJS();
  } catch (err) {
    problems.addAt({ line: 1, column: 1 }, '', `YAML error: ${(err as Error).message}`);
    return { file, problems };
  }
  if (raw === null || raw === undefined) {
    problems.addAt({ line: 1, column: 1 }, '', 'empty compose file (expected a mapping with services)');
    return { file, problems };
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    problems.addAt({ line: 1, column: 1 }, '', 'top-level object must be a mapping');
    return { file, problems };
  }
  const stripped = withoutExtensions(raw as Record<string, unknown>);
  octalModes(stripped, source, text);
  const failed = new Set<string>();
  const interpolated = interpolateTree(stripped, [], env, problems, unsetVars, failed);
  const result = parseWith(composeSchema, interpolated);
  if (!result.success) {
    // A value whose interpolation failed is reported once, for that reason only.
    reportIssues(result.error.issues.filter((i) => !failed.has(formatPath(i.path as (string | number)[]))), [], problems);
  }
  if (!result.success || problems.size > 0) return { file, problems };
  const data = result.data as ComposeFile;
  if (data.version !== undefined && !/^3(\.\d+)?$/.test(data.version)) {
    problems.add(['version'], `unsupported Compose file version ${JSON.stringify(data.version)}: docker stack deploy reads version 3.x`);
  }
  const normalized = normalize(data, workingDir, problems);
  return { file, problems, data, raw: stripped, source, normalized };
}

/** Drops `x-` extension keys at the top level and in each definition (they hold YAML anchors). */
function withoutExtensions(raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith('x-')) continue;
    if (['services', 'networks', 'volumes', 'secrets', 'configs'].includes(k) && v && typeof v === 'object' && !Array.isArray(v)) {
      out[k] = Object.fromEntries(
        Object.entries(v as Record<string, unknown>).map(([name, def]) => [
          name,
          def && typeof def === 'object' && !Array.isArray(def) ? Object.fromEntries(Object.entries(def).filter(([dk]) => !dk.startsWith('x-'))) : def,
        ]),
      );
    } else out[k] = v;
  }
  return out;
}

/**
 * File modes written `0440` are octal, as in YAML 1.1 which the docker CLI reads (YAML 1.2 would read 440 decimal).
 */
function octalModes(raw: Record<string, unknown>, source: YamlSource, text: string): void {
  const services = raw.services as Record<string, Record<string, unknown> | null> | undefined;
  if (!services || typeof services !== 'object') return;
  for (const [name, svc] of Object.entries(services)) {
    for (const kind of ['secrets', 'configs']) {
      const list = svc?.[kind];
      if (!Array.isArray(list)) continue;
      list.forEach((ref, i) => {
        if (!ref || typeof ref !== 'object' || typeof (ref as { mode?: unknown }).mode !== 'number') return;
        const node = source.doc.getIn(['services', name, kind, i, 'mode'], true) as { range?: [number, number, number] } | undefined;
        const written = node?.range ? text.slice(node.range[0], node.range[1]) : '';
        if (/^0[0-7]+$/.test(written)) (ref as { mode: number }).mode = parseInt(written, 8);
      });
    }
  }
}

/** Interpolates every string value (never keys); a bad template is a problem at its path. */
function interpolateTree(v: unknown, at: DocPath, env: Record<string, string | undefined>, problems: ProblemList, unsetVars: Set<string>, failed: Set<string>): unknown {
  if (typeof v === 'string') {
    const r = interpolate(v, env);
    if (r.error) {
      problems.add(at, r.error);
      failed.add(formatPath(at));
      return v;
    }
    for (const u of r.unset) unsetVars.add(u);
    return r.value;
  }
  if (Array.isArray(v)) return v.map((x, i) => interpolateTree(x, [...at, i], env, problems, unsetVars, failed));
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, interpolateTree(x, [...at, k], env, problems, unsetVars, failed)]));
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Normalization: one canonical form per key, keeping only the keys a file sets (so later files override only those).

type PartialService = Omit<Partial<ServiceConfig>, 'deploy'> & { deploy?: Partial<ServiceConfig['deploy']> };
interface PartialProject {
  services: Record<string, PartialService>;
  networks: Record<string, NetworkConfig>;
  volumes: Record<string, VolumeConfig>;
  secrets: Record<string, FileObjectConfig>;
  configs: Record<string, FileObjectConfig>;
}

function normalize(data: ComposeFile, workingDir: string, problems: ProblemList): PartialProject {
  const out: PartialProject = { services: {}, networks: {}, volumes: {}, secrets: {}, configs: {} };
  for (const [name, s] of Object.entries(data.services ?? {})) {
    const at: DocPath = ['services', name];
    const svc = s as Record<string, unknown> & typeof s;
    const n: PartialService = {};
    if (svc.image !== undefined) n.image = svc.image;
    if (svc.command !== undefined) n.command = words(svc.command, [...at, 'command'], problems);
    if (svc.entrypoint !== undefined) n.entrypoint = words(svc.entrypoint, [...at, 'entrypoint'], problems);
    if (svc.env_file !== undefined || svc.environment !== undefined) {
      const envs: Record<string, string | null> = {};
      const list = svc.env_file === undefined ? [] : typeof svc.env_file === 'string' ? [svc.env_file] : svc.env_file;
      list.forEach((f, i) => {
        const p = resolveLocalPath(f, workingDir);
        try {
          Object.assign(envs, parseEnvFile(readFileSync(p, 'utf8')));
        } catch {
          problems.add(typeof svc.env_file === 'string' ? [...at, 'env_file'] : [...at, 'env_file', i], `env file not found: ${p}`);
        }
      });
      Object.assign(envs, keyValues(svc.environment, true));
      n.environment = envs;
    }
    if (svc.labels !== undefined) n.labels = keyValues(svc.labels) as Record<string, string>;
    if (svc.ports !== undefined) n.ports = svc.ports.flatMap((p, i) => ports(p, [...at, 'ports', i], problems));
    if (svc.networks !== undefined) {
      n.networks = Array.isArray(svc.networks)
        ? Object.fromEntries(svc.networks.map((x) => [x, { aliases: [] }]))
        : Object.fromEntries(Object.entries(svc.networks).map(([k, v]) => [k, { aliases: v?.aliases ?? [] }]));
    }
    if (svc.volumes !== undefined) n.volumes = svc.volumes.map((v, i) => mount(v, workingDir, [...at, 'volumes', i], problems)).filter((m): m is MountConfig => m !== undefined);
    if (svc.secrets !== undefined) n.secrets = svc.secrets.map(fileRef);
    if (svc.configs !== undefined) n.configs = svc.configs.map(fileRef);
    if (svc.healthcheck !== undefined) {
      const h = svc.healthcheck;
      n.healthcheck = { ...h, test: h.test === undefined ? undefined : typeof h.test === 'string' ? ['CMD-SHELL', h.test] : h.test };
    }
    for (const k of ['stop_grace_period', 'stop_signal', 'hostname', 'user', 'working_dir', 'tty', 'stdin_open', 'read_only', 'init', 'cap_add', 'cap_drop', 'ulimits', 'logging', 'isolation', 'dns_opt'] as const) {
      if (svc[k] !== undefined) (n as Record<string, unknown>)[k] = svc[k];
    }
    if (typeof svc.restart === 'string') n.restart = svc.restart;
    for (const k of ['dns', 'dns_search', 'tmpfs'] as const) if (svc[k] !== undefined) n[k] = typeof svc[k] === 'string' ? [svc[k]] : svc[k];
    if (svc.extra_hosts !== undefined) {
      n.extra_hosts = Array.isArray(svc.extra_hosts)
        ? Object.fromEntries(svc.extra_hosts.map((h) => { const i = h.search(/[:=]/); return i < 0 ? [h, ''] : [h.slice(0, i), h.slice(i + 1)]; }))
        : (keyValues(svc.extra_hosts) as Record<string, string>);
    }
    if (svc.sysctls !== undefined) n.sysctls = keyValues(svc.sysctls) as Record<string, string>;
    if (svc.deploy !== undefined) {
      const d = svc.deploy;
      const { labels: dl, ...rest } = d;
      n.deploy = { ...(rest as Partial<ServiceConfig['deploy']>), ...(dl !== undefined ? { labels: keyValues(dl) as Record<string, string> } : {}) };
      if ((d.mode === 'global' || d.mode === 'global-job') && d.replicas !== undefined) {
        problems.add([...at, 'deploy', 'replicas'], `replicas can only be used with replicated mode (mode is ${d.mode})`);
      }
    }
    out.services[name] = n;
  }
  for (const [name, net] of Object.entries(data.networks ?? {})) {
    const n = net as NonNullable<ComposeFile['networks']>[string];
    out.networks[name] = {
      ...pick(n, ['driver', 'driver_opts', 'ipam', 'internal', 'attachable', 'name']),
      labels: keyValues(n.labels) as Record<string, string>,
      external: externalName(n.external, n.name, name),
    };
  }
  for (const [name, vol] of Object.entries(data.volumes ?? {})) {
    const v = vol as NonNullable<ComposeFile['volumes']>[string];
    out.volumes[name] = { ...pick(v, ['driver', 'driver_opts', 'name']), labels: keyValues(v.labels) as Record<string, string>, external: externalName(v.external, v.name, name) };
  }
  for (const kind of ['secrets', 'configs'] as const) {
    for (const [name, obj] of Object.entries(data[kind] ?? {})) {
      const o = obj as NonNullable<ComposeFile['secrets']>[string];
      const at: DocPath = [kind, name];
      const ext = externalName(o.external, o.name, name);
      const cfg: FileObjectConfig = { ...pick(o, ['name', 'driver', 'template_driver']), labels: keyValues(o.labels) as Record<string, string>, external: ext };
      if (o.file !== undefined) {
        cfg.file = resolveLocalPath(o.file, workingDir);
        try {
          if (!statSync(cfg.file).isFile()) problems.add([...at, 'file'], `not a file: ${cfg.file}`);
        } catch {
          problems.add([...at, 'file'], `file not found: ${cfg.file}`);
        }
      }
      if (ext === undefined && o.file === undefined && o.driver === undefined) {
        problems.add(at, o.environment !== undefined ? `${kind.slice(0, -1)} from environment is not supported by docker stack deploy: use file` : `missing file (expected file: PATH, or external: true)`);
      }
      if (ext !== undefined && o.file !== undefined) problems.add([...at, 'external'], `an external ${kind.slice(0, -1)} cannot also have a file`);
      out[kind][name] = cfg;
    }
  }
  return out;
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** The engine name of an external object, or undefined when it is not external. */
function externalName(ext: boolean | { name?: string } | undefined, name: string | undefined, key: string): string | undefined {
  if (ext === undefined || ext === false) return undefined;
  if (typeof ext === 'object') return ext.name ?? name ?? key;
  return name ?? key;
}

function words(v: string | string[], at: DocPath, problems: ProblemList): string[] {
  if (Array.isArray(v)) return v;
  try {
    return splitShellWords(v);
  } catch (err) {
    if (err instanceof ShellWordsError) problems.add(at, err.message);
    else throw err;
    return [];
  }
}

/** `{K: v}` or `["K=v"]` as a mapping; `K` alone (list) or `K:` (map) is null when `allowNull`, else "". */
function keyValues(v: Record<string, string | number | boolean | null> | string[] | undefined, allowNull = false): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  if (v === undefined) return out;
  if (Array.isArray(v)) {
    for (const item of v) {
      const i = item.indexOf('=');
      if (i < 0) out[item] = allowNull ? null : '';
      else out[item.slice(0, i)] = item.slice(i + 1);
    }
  } else {
    for (const [k, x] of Object.entries(v)) out[k] = x === null ? (allowNull ? null : '') : String(x);
  }
  return out;
}

/** A port entry in short (`"8080:80/udp"`, `"3000-3001:3000-3001"`, `80`) or long syntax. */
function ports(p: number | string | { target: number; published?: number | string; protocol?: string; mode?: string }, at: DocPath, problems: ProblemList): PortConfig[] {
  if (typeof p === 'object') {
    const published = p.published === undefined ? 0 : Number(p.published);
    if (!Number.isInteger(published) || published < 0 || published > 65535) {
      problems.add([...at, 'published'], `expected a port number (1-65535), got ${JSON.stringify(p.published)}`);
      return [];
    }
    if (p.target > 65535) problems.add([...at, 'target'], `expected a port number (1-65535), got ${p.target}`);
    return [{ target: p.target, published, protocol: (p.protocol ?? 'tcp') as PortConfig['protocol'], mode: (p.mode ?? 'ingress') as PortConfig['mode'] }];
  }
  const text = String(p);
  const m = /^(?:(?:\[?([0-9a-fA-F.:]+?)\]?:)?(\d+(?:-\d+)?)?:)?(\d+(?:-\d+)?)(?:\/(tcp|udp|sctp))?$/.exec(text);
  if (!m || (m[1] !== undefined && isIP(m[1]) === 0)) {
    problems.add(at, `invalid port ${JSON.stringify(text)} (expected [[IP:]PUBLISHED:]TARGET[/PROTOCOL], e.g. "8080:80" or "53:53/udp")`);
    return [];
  }
  const range = (s: string | undefined): [number, number] | undefined => {
    if (s === undefined) return undefined;
    const [a, b] = s.split('-').map(Number) as [number, number?];
    return [a, b ?? a];
  };
  const target = range(m[3])!;
  const published = range(m[2]);
  const count = target[1] - target[0] + 1;
  if (target[0] < 1 || target[1] > 65535 || count < 1 || (published && (published[0] < 1 || published[1] > 65535))) {
    problems.add(at, `invalid port ${JSON.stringify(text)}: ports are 1-65535 and a range goes upwards`);
    return [];
  }
  if (published && published[1] - published[0] + 1 !== count && published[0] !== published[1]) {
    problems.add(at, `invalid port ${JSON.stringify(text)}: the published and target ranges differ in length`);
    return [];
  }
  const out: PortConfig[] = [];
  for (let i = 0; i < count; i++) {
    const pub = published ? (published[0] === published[1] ? published[0] : published[0] + i) : 0;
    out.push({ target: target[0] + i, published: pub, protocol: (m[4] ?? 'tcp') as PortConfig['protocol'], mode: 'ingress' });
  }
  return out;
}

/** A volume entry in short (`name:/path:ro`, `./dir:/path`, `/path`) or long syntax. */
function mount(v: string | Record<string, unknown>, workingDir: string, at: DocPath, problems: ProblemList): MountConfig | undefined {
  if (typeof v === 'object') {
    const l = v as { type: MountConfig['type']; source?: string; target: string; read_only?: boolean; consistency?: string; bind?: { propagation?: string }; volume?: { nocopy?: boolean }; tmpfs?: { size?: string | number; mode?: number } };
    let source = l.source ?? '';
    if (l.type === 'bind') {
      if (!source) {
        problems.add([...at, 'source'], 'missing (a bind mount needs source: a host path)');
        return undefined;
      }
      source = resolveLocalPath(source, workingDir);
    }
    return {
      type: l.type,
      source,
      target: l.target,
      readOnly: Boolean(l.read_only),
      consistency: l.consistency,
      propagation: l.bind?.propagation,
      nocopy: l.volume?.nocopy,
      tmpfsSize: l.tmpfs?.size === undefined ? undefined : Number(typeof l.tmpfs.size === 'number' ? l.tmpfs.size : parseBytesOr(l.tmpfs.size)),
      tmpfsMode: l.tmpfs?.mode,
    };
  }
  const parts = v.split(':');
  // A Windows drive letter is not a separator; swarm on Linux does not need it, so keep to the Linux forms.
  if (parts.length === 1) {
    if (!parts[0]!.startsWith('/')) {
      problems.add(at, `invalid volume ${JSON.stringify(v)}: a container path must be absolute`);
      return undefined;
    }
    return { type: 'volume', source: '', target: parts[0]!, readOnly: false };
  }
  if (parts.length > 3 || !parts[1]!.startsWith('/')) {
    problems.add(at, `invalid volume ${JSON.stringify(v)} (expected SOURCE:TARGET[:MODE] with an absolute TARGET, e.g. "db-data:/var/lib/db" or "./conf:/etc/app:ro")`);
    return undefined;
  }
  const [src, target, mode = ''] = parts as [string, string, string?];
  const flags = mode ? mode.split(',') : [];
  const bad = flags.filter((f) => !['ro', 'rw', 'nocopy', 'z', 'Z', 'shared', 'rshared', 'slave', 'rslave', 'private', 'rprivate', 'consistent', 'cached', 'delegated'].includes(f));
  if (bad.length) {
    problems.add(at, `invalid volume mode ${JSON.stringify(bad.join(','))} (expected ro, rw, nocopy or a propagation such as rshared)`);
    return undefined;
  }
  const isPath = src.startsWith('.') || src.startsWith('/') || src.startsWith('~');
  const propagation = flags.find((f) => /^r?(shared|slave|private)$/.test(f));
  return {
    type: isPath ? 'bind' : 'volume',
    source: isPath ? resolveLocalPath(src, workingDir) : src,
    target,
    readOnly: flags.includes('ro'),
    ...(isPath && propagation ? { propagation } : {}),
    ...(!isPath && flags.includes('nocopy') ? { nocopy: true } : {}),
  };
}

function parseBytesOr(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp])?i?b?$/i.exec(s.trim());
  if (!m) return NaN;
  return Math.round(Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[(m[2] ?? '').toLowerCase()] ?? NaN));
}

function fileRef(r: string | { source: string; target?: string; uid?: string; gid?: string; mode?: number }): FileRef {
  return typeof r === 'string' ? { source: r } : r;
}

// ---------------------------------------------------------------------------------------------------------------
// Merging files in order, as the docker CLI does: later values win, maps merge by key, ports by published port,
// volumes by target, secrets and configs by source; other lists are appended.

function merge(files: ParsedFile[]): ComposeProject {
  const acc: PartialProject = { services: {}, networks: {}, volumes: {}, secrets: {}, configs: {} };
  for (const f of files) {
    const n = f.normalized;
    for (const [name, s] of Object.entries(n.services)) acc.services[name] = acc.services[name] ? mergeService(acc.services[name]!, s) : s;
    for (const kind of ['networks', 'volumes', 'secrets', 'configs'] as const) {
      for (const [name, o] of Object.entries(n[kind])) {
        const prev = acc[kind][name] as object | undefined;
        (acc[kind] as Record<string, object>)[name] = prev ? deepMerge(prev, o) : o;
      }
    }
  }
  const services: Record<string, ServiceConfig> = {};
  for (const [name, s] of Object.entries(acc.services)) {
    services[name] = {
      ...s,
      name,
      image: s.image ?? '',
      environment: s.environment ?? {},
      labels: s.labels ?? {},
      ports: s.ports ?? [],
      volumes: s.volumes ?? [],
      secrets: s.secrets ?? [],
      configs: s.configs ?? [],
      extra_hosts: s.extra_hosts ?? {},
      sysctls: s.sysctls ?? {},
      deploy: { ...s.deploy, labels: s.deploy?.labels ?? {} },
    };
  }
  return { services, networks: acc.networks, volumes: acc.volumes, secrets: acc.secrets, configs: acc.configs };
}

const BY_KEY: Record<string, (x: never) => string> = {
  ports: (p: PortConfig) => (p.published ? `${p.published}/${p.protocol}` : `t${p.target}/${p.protocol}`),
  volumes: (m: MountConfig) => m.target,
  secrets: (r: FileRef) => r.source,
  configs: (r: FileRef) => r.source,
};
const OVERRIDE = new Set(['command', 'entrypoint', 'dns', 'dns_search', 'dns_opt', 'tmpfs', 'cap_add', 'cap_drop', 'test']);

function mergeService(base: PartialService, over: PartialService): PartialService {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const prev = out[k];
    if (v === undefined) continue;
    if (prev === undefined) out[k] = v;
    else if (BY_KEY[k] && Array.isArray(prev) && Array.isArray(v)) {
      const key = BY_KEY[k]!;
      const m = new Map<string, unknown>();
      for (const x of [...prev, ...v]) m.set(key(x as never), x);
      out[k] = [...m.values()];
    } else if (k === 'networks' || k === 'ulimits') out[k] = { ...(prev as object), ...(v as object) };
    else out[k] = deepMerge(prev, v);
  }
  return out as PartialService;
}

function deepMerge(a: unknown, b: unknown, key = ''): unknown {
  if (OVERRIDE.has(key)) return b;
  if (Array.isArray(a) && Array.isArray(b)) {
    const seen = new Set(a.map((x) => JSON.stringify(x)));
    return [...a, ...b.filter((x) => !seen.has(JSON.stringify(x)))];
  }
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries(b)) out[k] = v === undefined ? out[k] : out[k] === undefined ? v : deepMerge(out[k], v, k);
    return out;
  }
  return b;
}

// ---------------------------------------------------------------------------------------------------------------

/** After merging: every service has an image and names only networks, volumes, secrets and configs that exist. */
function crossCheck(project: ComposeProject, files: ParsedFile[]): InventoryProblem[] {
  const out: InventoryProblem[] = [];
  /** Reports at the last file that has `p` (else the last that has its parent service). */
  const add = (p: DocPath, message: string, at: 'key' | 'value' = 'value') => {
    const f = [...files].reverse().find((x) => has(x.raw, p)) ?? [...files].reverse().find((x) => has(x.raw, p.slice(0, 2))) ?? files[files.length - 1]!;
    const pos = f.source.locate(p, at);
    out.push({ file: f.file, line: pos.line, column: pos.column, key: formatPath(p), message });
  };
  if (Object.keys(project.services).length === 0) add(['services'], 'no services: a stack needs at least one service');
  for (const [name, s] of Object.entries(project.services)) {
    const at: DocPath = ['services', name];
    if (!s.image) add([...at, 'image'], 'missing (expected an image reference: swarm services cannot be built)', 'key');
    for (const net of Object.keys(s.networks ?? {})) {
      if (net !== 'default' && !project.networks[net]) add([...at, 'networks', ...netPath(files, name, net)], `undefined network ${JSON.stringify(net)} (declare it under the top-level networks:)`);
    }
    if (s.deploy.endpoint_mode === 'dnsrr' && s.ports.some((p) => p.mode === 'ingress')) {
      add([...at, 'deploy', 'endpoint_mode'], 'endpoint_mode dnsrr cannot be used with ports published in ingress mode: publish them with mode: host');
    }
    s.volumes.forEach((m, i) => {
      if (m.type === 'volume' && m.source && !project.volumes[m.source]) add([...at, 'volumes', i], `undefined volume ${JSON.stringify(m.source)} (declare it under the top-level volumes:)`);
    });
    for (const kind of ['secrets', 'configs'] as const) {
      s[kind].forEach((r, i) => {
        if (!project[kind][r.source]) add([...at, kind, i], `undefined ${kind.slice(0, -1)} ${JSON.stringify(r.source)} (declare it under the top-level ${kind}:)`);
      });
    }
  }
  return out;
}

function netPath(files: ParsedFile[], service: string, net: string): (string | number)[] {
  for (const f of [...files].reverse()) {
    const nets = ((f.raw as Record<string, Record<string, Record<string, unknown>>>).services?.[service]?.networks) as unknown;
    if (Array.isArray(nets) && nets.includes(net)) return [nets.indexOf(net)];
    if (nets && typeof nets === 'object' && net in nets) return [net];
  }
  return [];
}

function has(data: unknown, p: DocPath): boolean {
  let node = data;
  for (const seg of p) {
    if (Array.isArray(node)) node = node[Number(seg)];
    else if (node && typeof node === 'object') node = (node as Record<string, unknown>)[String(seg)];
    else return false;
    if (node === undefined) return false;
  }
  return true;
}

/** The docker CLI's warnings for keys swarm ignores, one line per key with the services that use it. */
function ignoredKeyWarnings(files: ParsedFile[]): string[] {
  const by = new Map<string, Set<string>>();
  for (const f of files) {
    for (const [name, s] of Object.entries((f.raw as { services?: Record<string, Record<string, unknown>> }).services ?? {})) {
      for (const k of Object.keys(s ?? {})) {
        if ((UNSUPPORTED_SERVICE_KEYS as readonly string[]).includes(k) || k in DEPRECATED_SERVICE_KEYS || (NOT_CONVERTED_SERVICE_KEYS as readonly string[]).includes(k)) {
          if (!by.has(k)) by.set(k, new Set());
          by.get(k)!.add(name);
        }
      }
    }
  }
  const out: string[] = [];
  for (const [k, svcs] of [...by].sort(([a], [b]) => a.localeCompare(b))) {
    const list = [...svcs].sort().join(', ');
    if (k in DEPRECATED_SERVICE_KEYS) out.push(`Ignoring deprecated option ${k} (service ${list}): ${DEPRECATED_SERVICE_KEYS[k]}`);
    else if (k === 'restart') out.push(`Ignoring unsupported option restart (service ${list}): use deploy.restart_policy (it is still read when deploy.restart_policy is absent, as the docker CLI does)`);
    else if ((NOT_CONVERTED_SERVICE_KEYS as readonly string[]).includes(k)) out.push(`Ignoring option ${k} (service ${list}): swarmform does not convert it`);
    else out.push(`Ignoring unsupported option ${k} (service ${list}): swarm services do not use it`);
  }
  return out;
}

function sortProblems(p: InventoryProblem[]): InventoryProblem[] {
  return [...p].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column);
}
