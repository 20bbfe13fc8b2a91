import type { ZodType } from 'zod';

/** What the loader needs from a provider: the schemas of its settings and of a group's options. */
export interface ProviderSchemas {
  schemas: { settings?: ZodType; options?: ZodType };
  /**
   * Checked when the inventory is loaded: why this provider cannot hold `hosts` machines with these (validated)
   * settings, as the end of a sentence starting "N hosts, but ...", or undefined when it can. `given` says which
   * settings keys the inventory set itself (the others are defaults).
   */
  hostLimit?(hosts: number, settings: Record<string, unknown>, given: (key: string) => boolean): string | undefined;
}

/** Providers the inventory may name, by name (real Provider objects fit). */
export type ProviderRegistry = Record<string, ProviderSchemas>;

/** Message for a provider name that is not registered. */
export function unknownProviderMessage(name: string, registry: ProviderRegistry): string {
  const known = Object.keys(registry);
  return `unknown provider "${name}" (known: ${known.length > 0 ? known.join(', ') : 'none'})`;
}
