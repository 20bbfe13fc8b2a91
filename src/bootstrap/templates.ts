/** Renders the nunjucks templates in `templates/` (install scripts, service definitions, firewall rules). */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import nunjucks from 'nunjucks';

/** The templates folder, found from both `src/` (tsx) and `dist/` (built). */
export const TEMPLATES_DIR = fileURLToPath(new URL('../../templates/', import.meta.url));

const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(TEMPLATES_DIR, { noCache: false }), {
  autoescape: false,
  throwOnUndefined: true,
  trimBlocks: false,
});

/** Renders `templates/<name>` with the given context. */
export function render(name: string, context: Record<string, unknown> = {}): string {
  return env.render(name, context);
}

/** Reads a template file that needs no rendering (e.g. the facts script). */
export function readTemplate(name: string): string {
  return readFileSync(`${TEMPLATES_DIR}${name}`, 'utf8');
}
