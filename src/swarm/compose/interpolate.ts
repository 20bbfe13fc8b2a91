/**
 * Variable interpolation as `docker stack deploy` does it: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty),
 * `${VAR-default}` (unset), `${VAR:?message}` / `${VAR?message}` (required), `${VAR:+alt}` / `${VAR+alt}`, and `$$`
 * for a literal `$`. Applied to every string value of the file (never to keys), before validation.
 */
import { parseEnv } from 'node:util';

/** What interpolating one string found: the result, or why it is invalid, and the variables that were unset. */
export interface Interpolated {
  value?: string;
  error?: string;
  unset: string[];
}

const NAME = /^[_a-zA-Z][_a-zA-Z0-9]*/;

/** Interpolates `text` with `env`; never throws. */
export function interpolate(text: string, env: Record<string, string | undefined>): Interpolated {
  let out = '';
  const unset: string[] = [];
  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const close = findClose(text, i + 2);
      if (close < 0) return { error: `invalid interpolation format in ${JSON.stringify(text)}: a "\${" has no closing "}"`, unset };
      const body = text.slice(i + 2, close);
      const name = NAME.exec(body)?.[0];
      if (!name) return { error: `invalid interpolation format in ${JSON.stringify(text)}: "\${${body}}" does not start with a variable name`, unset };
      const rest = body.slice(name.length);
      const value = env[name];
      const isSet = value !== undefined;
      const nonEmpty = isSet && value !== '';
      // Nested substitutions in defaults (`${A:-${B}}`) are interpolated too.
      const sub = (s: string): Interpolated => interpolate(s, env);
      let piece: string;
      if (rest === '') {
        if (!isSet) unset.push(name);
        piece = value ?? '';
      } else if (rest.startsWith(':-') || rest.startsWith('-')) {
        const strict = rest.startsWith(':');
        const useDefault = strict ? !nonEmpty : !isSet;
        if (useDefault) {
          const d = sub(rest.slice(strict ? 2 : 1));
          if (d.error) return d;
          unset.push(...d.unset);
          piece = d.value!;
        } else piece = value!;
      } else if (rest.startsWith(':?') || rest.startsWith('?')) {
        const strict = rest.startsWith(':');
        const missing = strict ? !nonEmpty : !isSet;
        if (missing) {
          const m = rest.slice(strict ? 2 : 1);
          return { error: `required variable ${name} is missing a value${m ? `: ${m}` : ''}`, unset };
        }
        piece = value!;
      } else if (rest.startsWith(':+') || rest.startsWith('+')) {
        const strict = rest.startsWith(':');
        const useAlt = strict ? nonEmpty : isSet;
        if (useAlt) {
          const a = sub(rest.slice(strict ? 2 : 1));
          if (a.error) return a;
          piece = a.value!;
        } else piece = '';
      } else {
        return { error: `invalid interpolation format in ${JSON.stringify(text)}: "\${${body}}" (expected \${${name}}, \${${name}:-default} or \${${name}:?message})`, unset };
      }
      out += piece;
      i = close + 1;
      continue;
    }
    const name = NAME.exec(text.slice(i + 1))?.[0];
    if (name) {
      const value = env[name];
      if (value === undefined) unset.push(name);
      out += value ?? '';
      i += 1 + name.length;
      continue;
    }
    return { error: `invalid interpolation format in ${JSON.stringify(text)}: a lone "$" (write "$$" for a literal dollar sign)`, unset };
  }
  return { value: out, unset };
}

/** Index of the `}` closing a `${` whose body starts at `from`, counting nested `${...}`; -1 if none. */
function findClose(text: string, from: number): number {
  let depth = 0;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '$' && text[i + 1] === '{') {
      depth++;
      i++;
    } else if (text[i] === '}') {
      if (depth === 0) return i;
      depth--;
    }
  }
  return -1;
}

/** Parses a `.env` / env_file text: KEY=VALUE lines, `#` comments, optional quotes and `export ` (Node's own parser). */
export function parseEnvFile(text: string): Record<string, string> {
  return parseEnv(text.replace(/^\s*export\s+/gm, '')) as Record<string, string>;
}
