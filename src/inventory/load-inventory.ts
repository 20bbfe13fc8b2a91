/**
 * The inventory loader: render (nunjucks) -> parse (YAML with positions) -> validate (zod) -> check host limits on
 * counts (before any host is made) -> expand groups and check cross-field rules. Every problem carries
 * file:line:column and the key; all of a stage's problems are reported together in one InventoryError, and nothing
 * later runs on an inventory that has any.
 */
import path from 'node:path';
import { InternalError } from '../base/errors.js';
import { expandHosts } from './expand-hosts.js';
import { checkHostLimits, providersUsed } from './host-count.js';
import { ProblemList } from './problems.js';
import type { ProviderRegistry } from './provider-registry.js';
import { resolveProviderSettings } from './provider-settings.js';
import { readInputFile } from './read-input.js';
import { MAX_TEMPLATE_BYTES, renderTemplate, renderedLineNote } from './render-template.js';
import { resolveBundle, resolveImages, resolvePackages, resolveServices, resolveStacks } from './resolve-workloads.js';
import { inventorySchema } from './schema.js';
import type { Inventory } from './types.js';
import { YamlSource } from './yaml-source.js';
import { parseWith, reportIssues } from './zod-issues.js';

export interface LoadOptions {
  /** Providers the inventory may name, with the schemas of their settings and options. */
  providers: ProviderRegistry;
  /** Environment seen by the template as `env` (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Reads, renders and validates an inventory file; throws InventoryError listing every problem, UsageError if unreadable. */
export async function loadInventory(file: string, opts: LoadOptions): Promise<Inventory> {
  const abs = path.resolve(file);
  const text = readInputFile(abs, 'inventory', MAX_TEMPLATE_BYTES, 'pass an inventory file with -i, e.g. inventories/lab.yml');
  return parseInventory(text, abs, opts);
}

/** Renders and validates inventory text as if read from `file` (relative paths start at its directory). Synchronous. */
export function parseInventory(text: string, file: string, opts: LoadOptions): Inventory {
  const abs = path.resolve(file);
  const baseDir = path.dirname(abs);
  const source = text.startsWith('\uFEFF') ? text.slice(1) : text;

  const renderProblems = new ProblemList(abs);
  const rendered = renderTemplate(source, abs, opts.env ?? process.env, renderProblems);
  renderProblems.throwIfAny();

  const problems = new ProblemList(abs, renderedLineNote(source, rendered ?? ''));
  const yaml = YamlSource.parse(rendered ?? '', problems);
  problems.throwIfAny();
  if (yaml === null) throw new InternalError(`${abs}: the YAML parse failed without recording a problem`);
  problems.locate = (p, at) => yaml.locate(p, at);

  let data: unknown;
  try {
    data = yaml.toJS();
  } catch (err) {
    // e.g. too many alias expansions (a "billion laughs" document)
    problems.addAt({ line: 1, column: 1 }, '', `YAML error: ${(err as Error).message}`);
    problems.throwIfAny();
  }
  const parsed = parseWith(inventorySchema, withoutExtensions(data));
  if (!parsed.success) {
    reportIssues(parsed.error.issues, [], problems);
    problems.throwIfAny();
  }
  const inv = parsed.data!;

  const groupOrder = inOrder(yaml.keysInOrder(['groups']), inv.groups);
  // Provider settings and the host limits (swarm.maxHosts, the lab subnet) come before expansion, counted by arithmetic:
  // nothing loops over hosts that could never be created.
  const providers = resolveProviderSettings({
    section: inv.providers,
    order: inOrder(yaml.keysInOrder(['providers']), inv.providers ?? {}),
    used: providersUsed(inv, groupOrder, opts.providers),
    registry: opts.providers,
    problems,
  });
  if (checkHostLimits({ inventory: inv, groupOrder, providerSettings: providers, registry: opts.providers, problems })) problems.throwIfAny();
  const { hosts } = expandHosts({ inventory: inv, groupOrder, registry: opts.providers, baseDir, problems });
  const services = resolveServices(inv.workloads?.services, problems, { ingress: inv.swarm.ingress });
  const stacks = resolveStacks(inv.workloads?.stacks, baseDir, problems);
  const images = resolveImages(inv.images, baseDir, problems);
  const bundle = resolveBundle(inv.swarm.bundle, baseDir, problems);
  const packages = resolvePackages(inv.swarm.packages, baseDir, problems);
  const swarm = { ...inv.swarm, ...(bundle === undefined ? {} : { bundle }), ...(packages === undefined ? {} : { packages }) };
  problems.throwIfAny();

  return { file: abs, cluster: inv.cluster, providers, swarm, hosts, services, stacks, images };
}

/** The document without top-level `x-` keys, which hold YAML anchors for reuse (as in Compose files). */
function withoutExtensions(data: unknown): unknown {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return data;
  return Object.fromEntries(Object.entries(data).filter(([k]) => !k.startsWith('x-')));
}

/**
 * Keys of `obj` in document order. JavaScript objects put integer-like keys first, so the order comes from the YAML
 * mapping; keys it does not list (from merge keys) follow in object order.
 */
function inOrder(docKeys: string[] | undefined, obj: Record<string, unknown>): string[] {
  const keys = (docKeys ?? []).filter((k) => Object.hasOwn(obj, k));
  const listed = new Set(keys);
  for (const k of Object.keys(obj)) if (!listed.has(k)) keys.push(k);
  return keys;
}
