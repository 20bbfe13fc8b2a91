import type { ZodType } from 'zod';

/** What the loader needs from a provider: the schemas of its settings and of a group's options. */
export interface ProviderSchemas {
  schemas: { settings?: ZodType; options?: ZodType };
}

/** Providers the inventory may name, by name (real Provider objects fit). */
export type ProviderRegistry = Record<string, ProviderSchemas>;

/** Message for a provider name that is not registered. */
export function unknownProviderMessage(name: string, registry: ProviderRegistry): string {
  const known = Object.keys(registry);
  return `unknown provider "${name}" (known: ${known.length > 0 ? known.join(', ') : 'none'})`;
}
