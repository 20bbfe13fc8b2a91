/** The `providers:` section: each entry validated by its provider's settings schema, defaults applied. */
import type { DocPath, ProblemList } from './problems.js';
import { unknownProviderMessage, type ProviderRegistry } from './provider-registry.js';
import { parseWith, reportIssues } from './zod-issues.js';

export interface ProviderSettingsInput {
  /** The `providers:` mapping as written (undefined when absent). */
  section: Record<string, unknown> | undefined;
  /** Its keys in file order. */
  order: string[];
  /** Providers the groups use: each gets an entry even when the file has none, so its defaults apply. */
  used: string[];
  registry: ProviderRegistry;
  problems: ProblemList;
}

/** Validated settings by provider name; problems go to `input.problems`. */
export function resolveProviderSettings(input: ProviderSettingsInput): Record<string, Record<string, unknown>> {
  const { section, registry, problems } = input;
  const out: Record<string, Record<string, unknown>> = {};
  for (const name of input.order) {
    if (registry[name] === undefined) {
      problems.add(['providers', name], unknownProviderMessage(name, registry), 'key');
      continue;
    }
    out[name] = validateSettings(name, section?.[name], ['providers', name], input);
  }
  for (const name of input.used) {
    if (!Object.hasOwn(out, name) && registry[name] !== undefined) out[name] = validateSettings(name, undefined, ['providers', name], input);
  }
  return out;
}

function validateSettings(name: string, value: unknown, path: DocPath, input: ProviderSettingsInput): Record<string, unknown> {
  // An empty entry (`lab:`) means "the defaults", like an absent one.
  const given = value === undefined || value === null ? {} : value;
  const schema = input.registry[name].schemas.settings;
  if (schema === undefined) {
    const empty = typeof given === 'object' && !Array.isArray(given) && Object.keys(given).length === 0;
    if (!empty) input.problems.add(path, `provider "${name}" takes no settings`);
    return {};
  }
  const result = parseWith(schema, given);
  if (!result.success) {
    reportIssues(result.error.issues, path, input.problems);
    return {};
  }
  const data = result.data;
  return typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
}
