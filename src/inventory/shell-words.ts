/**
 * Splits a command line into words the way a POSIX shell would, without running one: single and double quotes,
 * backslash escapes, line continuations. Shell syntax that would need a real shell (pipes, `&&`, redirections,
 * `$VAR`, command substitution) is refused rather than passed on literally, since nothing would interpret it.
 */

/** Thrown for an unterminated quote, a dangling backslash or shell-only syntax. */
export class ShellWordsError extends Error {}

const SHELL_ONLY = new Set(['|', '&', ';', '<', '>', '(', ')', '$', '`']);

/** Splits `line` into words; throws ShellWordsError saying what is wrong. */
export function splitShellWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new ShellWordsError(`unterminated single quote at character ${i + 1}`);
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      for (;;) {
        if (j >= line.length) throw new ShellWordsError(`unterminated double quote at character ${i + 1}`);
        const d = line[j];
        if (d === '"') break;
        if (d === '\\' && j + 1 < line.length && '$`"\\\n'.includes(line[j + 1])) {
          if (line[j + 1] !== '\n') word += line[j + 1];
          j += 2;
        } else if (d === '$' || d === '`') {
          throw shellOnly(d);
        } else {
          word += d;
          j++;
        }
      }
      inWord = true;
      i = j + 1;
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new ShellWordsError('a backslash at the end of the command escapes nothing');
      if (line[i + 1] !== '\n') {
        word += line[i + 1];
        inWord = true;
      }
      i += 2;
    } else if (SHELL_ONLY.has(c)) {
      throw shellOnly(c);
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

function shellOnly(c: string): ShellWordsError {
  return new ShellWordsError(
    `"${c}" needs a shell, but the command is not run by one: quote it, or write a list like ["sh", "-c", "..."]`,
  );
}
