/** Services and images: the checks that span entries (unique names, port clashes, files on disk) and the final specs. */
import { statSync } from 'node:fs';
import { resolveLocalPath } from './local-paths.js';
import type { DocPath, ProblemList } from './problems.js';
import type { ImageEntry, ServiceEntry, StackEntry } from './schema.js';
import type { ImageSpec, PackageSettings, ServiceSpec, StackSpec } from './types.js';

/** Services with defaults applied; duplicate names, `replicas` on a global service and ingress port clashes are problems. */
export function resolveServices(entries: ServiceEntry[] | undefined, problems: ProblemList, opts: { ingress?: boolean } = {}): ServiceSpec[] {
  const services: ServiceSpec[] = [];
  const names = new Map<string, number>();
  // Ingress ports are published on every node of the swarm, so two services cannot share one.
  const ingress = new Map<string, string>();
  (entries ?? []).forEach((s, i) => {
    const path: DocPath = ['workloads', 'services', i];
    const first = names.get(s.name);
    if (first !== undefined) {
      const line = problems.locate(['workloads', 'services', first, 'name'], 'value').line;
      problems.add([...path, 'name'], `duplicate service name "${s.name}" (first defined on line ${line})`);
    } else {
      names.set(s.name, i);
    }
    const mode = s.mode ?? 'replicated';
    if (mode === 'global' && s.replicas !== undefined) {
      problems.add([...path, 'replicas'], 'replicas cannot be set on a global service (it runs one task on every node)', 'key');
    }
    const hostPorts = new Set<string>();
    const ports = s.ports ?? [];
    ports.forEach((p, j) => {
      if (p.published === 0) return;
      const id = `${p.published}/${p.protocol}`;
      if (p.mode === 'ingress') {
        if (opts.ingress === false) {
          problems.add([...path, 'ports', j], `port ${id} is published in ingress mode, but swarm.ingress is false (no ingress network): use mode: host`);
          return;
        }
        const owner = ingress.get(id);
        if (owner !== undefined) problems.add([...path, 'ports', j], `port ${id} is already published in ingress mode by service "${owner}"`);
        else ingress.set(id, s.name);
      } else if (hostPorts.has(id)) {
        problems.add([...path, 'ports', j], `port ${id} is published twice in host mode by this service`);
      } else {
        hostPorts.add(id);
      }
    });
    const spec: ServiceSpec = {
      name: s.name,
      image: s.image,
      mode,
      replicas: mode === 'global' ? 0 : (s.replicas ?? 1),
      env: s.env ?? {},
      ports,
      constraints: (s.constraints ?? []).map((c) => c.trim()),
      labels: s.labels ?? {},
    };
    if (s.command !== undefined) spec.command = s.command;
    if (s.args !== undefined) spec.args = s.args;
    services.push(spec);
  });
  return services;
}

/** Image tarballs with absolute paths; a missing file, or a tag on a non-imported image, is a problem. */
export function resolveImages(entries: ImageEntry[] | undefined, baseDir: string, problems: ProblemList): ImageSpec[] {
  return (entries ?? []).map((entry, i) => {
    const path: DocPath = ['images', i];
    const file = resolveLocalPath(entry.file, baseDir);
    try {
      if (!statSync(file).isFile()) problems.add([...path, 'file'], `not a file: ${file}`);
    } catch {
      problems.add([...path, 'file'], `file not found: ${file}`);
    }
    const spec: ImageSpec = { file, kind: entry.import ? 'import' : 'load' };
    if (entry.import) {
      if (entry.tag === undefined) problems.add([...path, 'tag'], 'an imported root filesystem needs a tag, like tag: myorg/base:1');
      else spec.tag = entry.tag;
    } else if (entry.tag !== undefined) {
      problems.add([...path, 'tag'], 'tag is only used with import: true (a `docker save` tarball keeps its own tags)', 'key');
    }
    return spec;
  });
}

/** `swarm.bundle` as an absolute path; a missing file is a problem at its position. */
export function resolveBundle(entry: string | undefined, baseDir: string, problems: ProblemList): string | undefined {
  if (entry === undefined) return undefined;
  const file = resolveLocalPath(entry, baseDir);
  try {
    if (!statSync(file).isFile()) problems.add(['swarm', 'bundle'], `not a file: ${file}`);
  } catch {
    problems.add(['swarm', 'bundle'], `file not found: ${file}`);
  }
  return file;
}

/**
 * `swarm.packages` with its key file made absolute and checked; a mirror needs a key or `trusted: true`, since apt
 * refuses an unsigned repository and swarmform does not silently turn signature checks off.
 */
export function resolvePackages(entry: PackageSettings | undefined, baseDir: string, problems: ProblemList): PackageSettings | undefined {
  if (entry === undefined) return undefined;
  const out: PackageSettings = { ...entry };
  if (entry.key !== undefined) {
    out.key = resolveLocalPath(entry.key, baseDir);
    try {
      if (!statSync(out.key).isFile()) problems.add(['swarm', 'packages', 'key'], `not a file: ${out.key}`);
    } catch {
      problems.add(['swarm', 'packages', 'key'], `file not found: ${out.key}`);
    }
  }
  if (entry.mirror === undefined && (entry.suite !== undefined || entry.components !== undefined || entry.key !== undefined)) {
    problems.add(['swarm', 'packages'], 'suite, components and key describe a mirror: set swarm.packages.mirror too');
  }
  if (entry.mirror !== undefined && entry.key === undefined && !entry.trusted) {
    problems.add(['swarm', 'packages', 'mirror'], 'a mirror needs its signing key (swarm.packages.key) or `trusted: true` for an unsigned repository');
  }
  return out;
}

/** Stacks with absolute compose paths; a missing file or a duplicate stack name is a problem at its position. */
export function resolveStacks(entries: StackEntry[] | undefined, baseDir: string, problems: ProblemList): StackSpec[] {
  const seen = new Map<string, number>();
  return (entries ?? []).map((entry, i) => {
    const path: DocPath = ['workloads', 'stacks', i];
    const first = seen.get(entry.name);
    if (first !== undefined) {
      const line = problems.locate(['workloads', 'stacks', first, 'name'], 'value').line;
      problems.add([...path, 'name'], `duplicate stack name "${entry.name}" (first defined on line ${line})`);
    } else {
      seen.set(entry.name, i);
    }
    const files = entry.compose.map((f, j) => {
      const file = resolveLocalPath(f, baseDir);
      const at: DocPath = entry.compose.length > 1 ? [...path, 'compose', j] : [...path, 'compose'];
      try {
        if (!statSync(file).isFile()) problems.add(at, `not a file: ${file}`);
      } catch {
        problems.add(at, `file not found: ${file}`);
      }
      return file;
    });
    return { name: entry.name, files, env: entry.env ?? {} };
  });
}
