/**
 * Groups to hosts: expands counts and name ranges, merges ssh settings, labels and options from cluster to group
 * to host, validates options with the provider's schema, and checks the rules that span groups (unique names,
 * a manager at least). Work is linear in the number of hosts: a Swarm3k-sized range is one loop.
 */
import { MAX_RANGE_SIZE, NameRangeError, hasRange, hostnameProblem, parseNameRange, rangeName, rangeSize, type NameRange } from './name-range.js';
import { resolveLocalPath } from './local-paths.js';
import type { DocPath, ProblemList } from './problems.js';
import { unknownProviderMessage, type ProviderRegistry } from './provider-registry.js';
import type { GroupEntry, InventoryFile, SshEntry } from './schema.js';
import type { HostSpec, SshSettings } from './types.js';
import { parseWith, reportIssues } from './zod-issues.js';

/** SSH settings when the inventory says nothing. */
export const DEFAULT_SSH: SshSettings = { user: 'root', port: 22, connectTimeout: 120, defaults: ['user', 'port'] };

/** Provider used by groups when neither they nor the inventory name one. */
export const DEFAULT_PROVIDER = 'lab';

export interface ExpandInput {
  inventory: InventoryFile;
  /** Group names in file order. */
  groupOrder: string[];
  registry: ProviderRegistry;
  /** Directory relative key paths start from. */
  baseDir: string;
  problems: ProblemList;
}

export interface ExpandResult {
  hosts: HostSpec[];
  /** Known providers used by at least one group, in order of first use. */
  providersUsed: string[];
}

/** Expands every group into hosts; problems go to `input.problems`. */
export function expandHosts(input: ExpandInput): ExpandResult {
  const { inventory, registry, baseDir, problems } = input;
  const hosts: HostSpec[] = [];
  const used = new Set<string>();
  const seen = new Map<string, { group: string; path: DocPath }>();
  const defaultProvider = inventory.provider ?? DEFAULT_PROVIDER;
  if (inventory.provider !== undefined && !registry[inventory.provider]) {
    problems.add(['provider'], unknownProviderMessage(inventory.provider, registry));
  }
  const clusterSsh = mergeSsh(DEFAULT_SSH, inventory.ssh, baseDir);
  let managerGroups = 0;

  for (const groupName of input.groupOrder) {
    const group = inventory.groups[groupName];
    const groupPath: DocPath = ['groups', groupName];
    if (group.role === 'manager') managerGroups++;

    const provider = group.provider ?? defaultProvider;
    const known = registry[provider] !== undefined;
    if (known) used.add(provider);
    else if (group.provider !== undefined) problems.add([...groupPath, 'provider'], unknownProviderMessage(provider, registry));
    else if (inventory.provider === undefined) problems.add(groupPath, `${unknownProviderMessage(provider, registry)}; set provider:`, 'key');

    const ssh = mergeSsh(clusterSsh, group.ssh, baseDir);
    const labels = group.labels ?? {};
    const checkOptions = (hostOptions: Record<string, unknown> | undefined, hostPath: DocPath | undefined) =>
      known ? validateOptions(provider, input, group.options, groupPath, hostOptions, hostPath) : { ...group.options, ...hostOptions };

    const claim = (name: string, path: DocPath): void => {
      const first = seen.get(name);
      if (first === undefined) {
        seen.set(name, { group: groupName, path });
        return;
      }
      const where = problems.locate(first.path, 'value');
      problems.add(path, `duplicate host name "${name}": already defined by group ${first.group} (line ${where.line})`);
    };

    if (group.hosts !== undefined) {
      if (group.count !== undefined) problems.add([...groupPath, 'count'], 'count cannot be combined with hosts: the list gives the hosts', 'key');
      if (group.name !== undefined) problems.add([...groupPath, 'name'], 'name cannot be combined with hosts: each host has its own name', 'key');
      // Hosts without options of their own share the group's, validated once and only if such a host exists
      // (a schema may require keys that every host sets itself).
      let groupOptions: Record<string, unknown> | undefined;
      group.hosts.forEach((h, i) => {
        const hostPath: DocPath = [...groupPath, 'hosts', i];
        const bad = hostnameProblem(h.name);
        if (bad) problems.add([...hostPath, 'name'], bad);
        else claim(h.name, [...hostPath, 'name']);
        const options = h.options === undefined ? (groupOptions ??= checkOptions(undefined, undefined)) : checkOptions(h.options, hostPath);
        const spec: HostSpec = {
          name: h.name,
          group: groupName,
          provider,
          role: group.role,
          labels: { ...labels, ...h.labels },
          ssh: mergeSsh(ssh, h.ssh, baseDir),
          options: { ...options },
        };
        if (h.address !== undefined) spec.address = h.address;
        if (h.privateAddress !== undefined) spec.privateAddress = h.privateAddress;
        hosts.push(spec);
      });
      continue;
    }

    const range = groupRange(group, groupName, groupPath, problems);
    if (range === undefined) continue;
    const namePath: DocPath = group.name !== undefined ? [...groupPath, 'name'] : groupPath;
    const size = rangeSize(range);
    // The shortest and the longest name share every character class of the others: checking both checks all.
    const bad = hostnameProblem(rangeName(range, 0)) ?? hostnameProblem(rangeName(range, size - 1));
    if (bad) {
      problems.add(namePath, group.name === undefined ? `${bad}; set name: to choose another prefix` : bad, group.name === undefined ? 'key' : 'value');
      continue;
    }
    const options = checkOptions(undefined, undefined);
    let duplicates = 0;
    let firstDuplicate: { name: string; group: string } | undefined;
    for (let i = 0; i < size; i++) {
      const name = rangeName(range, i);
      const first = seen.get(name);
      if (first !== undefined) {
        duplicates++;
        firstDuplicate ??= { name, group: first.group };
        continue;
      }
      seen.set(name, { group: groupName, path: namePath });
      hosts.push({ name, group: groupName, provider, role: group.role, labels: { ...labels }, ssh: { ...ssh }, options: { ...options } });
    }
    if (firstDuplicate) {
      const more = duplicates > 1 ? ` (and ${duplicates - 1} more of this group's names)` : '';
      problems.add(
        namePath,
        `duplicate host name "${firstDuplicate.name}"${more}: already defined by group ${firstDuplicate.group}`,
        group.name === undefined ? 'key' : 'value',
      );
    }
  }

  if (managerGroups === 0) problems.add(['groups'], 'no manager: at least one group needs role: manager', 'key');
  return { hosts, providersUsed: [...used] };
}

/** The name range of a count or range group; undefined (problem recorded) when the group does not say how many hosts. */
function groupRange(group: GroupEntry, groupName: string, groupPath: DocPath, problems: ProblemList): NameRange | undefined {
  if (group.name !== undefined && hasRange(group.name)) {
    if (group.count !== undefined) {
      problems.add([...groupPath, 'count'], 'count cannot be combined with a name range: the range gives the number of hosts', 'key');
    }
    try {
      return parseNameRange(group.name) ?? undefined;
    } catch (err) {
      if (!(err instanceof NameRangeError)) throw err;
      problems.add([...groupPath, 'name'], err.message);
      return undefined;
    }
  }
  if (group.count !== undefined) {
    if (group.count > MAX_RANGE_SIZE) {
      problems.add([...groupPath, 'count'], `expected at most ${MAX_RANGE_SIZE} hosts in a group, got ${group.count}`);
      return undefined;
    }
    return { prefix: `${group.name ?? groupName}-`, suffix: '', kind: 'number', start: 1, end: group.count, width: 0 };
  }
  problems.add(
    groupPath,
    group.name !== undefined
      ? `name "${group.name}" has no range: add count:, write a range like ${group.name}-[1:3], or list hosts:`
      : 'a group needs exactly one of count:, a name range like name: web-[1:3], or hosts:',
    'key',
  );
  return undefined;
}

/** `over` merged onto `base` (the most specific level wins), with the key path resolved. */
export function mergeSsh(base: SshSettings, over: SshEntry | undefined, baseDir: string): SshSettings {
  const out: SshSettings = { ...base };
  if (over === undefined) return out;
  const explicit = (k: 'user' | 'port') => {
    if (!out.defaults?.includes(k)) return;
    out.defaults = out.defaults.filter((d) => d !== k);
    if (out.defaults.length === 0) delete out.defaults;
  };
  if (over.user !== undefined) {
    out.user = over.user;
    explicit('user');
  }
  if (over.port !== undefined) {
    out.port = over.port;
    explicit('port');
  }
  if (over.connectTimeout !== undefined) out.connectTimeout = over.connectTimeout;
  if (over.key !== undefined) out.key = resolveLocalPath(over.key, baseDir);
  if (over.become !== undefined) out.become = over.become;
  if (over.jump !== undefined) {
    out.jump = over.jump.map((h) => {
      const hop: NonNullable<SshSettings['jump']>[number] = { host: h.host };
      if (h.user !== undefined) hop.user = h.user;
      if (h.port !== undefined) hop.port = h.port;
      const key = 'key' in h ? h.key : undefined;
      if (key !== undefined) hop.key = resolveLocalPath(key, baseDir);
      return hop;
    });
  }
  if (over.config !== undefined) out.config = over.config === false ? false : resolveLocalPath(over.config, baseDir);
  return out;
}

/**
 * Group options merged with a host's, validated by the provider's options schema. Each problem points at the level
 * that set the offending key. Returns the schema's output (defaults applied), or the merged options on failure.
 */
function validateOptions(
  provider: string,
  input: ExpandInput,
  groupOptions: Record<string, unknown> | undefined,
  groupPath: DocPath,
  hostOptions: Record<string, unknown> | undefined,
  hostPath: DocPath | undefined,
): Record<string, unknown> {
  const { problems } = input;
  const merged = { ...groupOptions, ...hostOptions };
  const baseOf = (key: PropertyKey | undefined): DocPath =>
    hostPath !== undefined && hostOptions !== undefined && (key === undefined || Object.hasOwn(hostOptions, key))
      ? [...hostPath, 'options']
      : [...groupPath, 'options'];
  const schema = input.registry[provider].schemas.options;
  if (schema === undefined) {
    for (const key of Object.keys(merged)) problems.add([...baseOf(key), key], `provider "${provider}" takes no options`, 'key');
    return merged;
  }
  const result = parseWith(schema, merged);
  if (result.success) {
    const data = result.data;
    return typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : merged;
  }
  for (const iss of result.error.issues) {
    if (iss.code === 'unrecognized_keys' && iss.path.length === 0) {
      for (const key of iss.keys) reportIssues([{ ...iss, keys: [key] }], baseOf(key), problems);
    } else {
      reportIssues([iss], baseOf(iss.path[0]), problems);
    }
  }
  return merged;
}
