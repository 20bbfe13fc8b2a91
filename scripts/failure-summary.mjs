// A node:test reporter that writes one short block per failed test: its name, file and line, the first lines of
// its error, and the last lines the test file printed before it failed. scripts/test prints these blocks at the
// very end of the log, after the spec reporter's full output, because a CI log is often read from its tail only and
// one failure's whole `actual` string (a command's output) can fill that tail on its own.
const MAX_LINE = 240;
const MAX_ERROR_LINES = 6;
const RECENT = 6;

const clip = (s) => (s.length > MAX_LINE ? `${s.slice(0, MAX_LINE)} [${s.length - MAX_LINE} more chars]` : s);

export default async function* failureSummary(source) {
  /** file -> the last lines its tests printed (console.log in a test file reaches the runner as test:stdout). */
  const recent = new Map();
  const blocks = [];
  for await (const ev of source) {
    if (ev.type === 'test:stdout' || ev.type === 'test:stderr') {
      const lines = recent.get(ev.data.file) ?? [];
      for (const l of String(ev.data.message).split('\n')) if (l.trim()) lines.push(clip(l));
      recent.set(ev.data.file, lines.slice(-RECENT));
    } else if (ev.type === 'test:fail') {
      const { name, file, line, details } = ev.data;
      const err = details?.error?.cause ?? details?.error;
      // A test whose subtests failed reports its own failure too; its subtests' blocks already say what went wrong.
      if (details?.error?.failureType === 'subtestsFailed') continue;
      const message = String(err?.message ?? err ?? 'no error message')
        .split('\n')
        .filter((l) => l.trim())
        .slice(0, MAX_ERROR_LINES)
        .map(clip);
      const where = file ? `${file.replace(/^.*\/(test\/)/, '$1')}:${line ?? '?'}` : '?';
      const printed = recent.get(file) ?? [];
      blocks.push([`FAILED ${name} (${where})`, ...message.map((l) => `  | ${l}`), ...printed.map((l) => `  > ${l}`)].join('\n'));
    }
  }
  if (blocks.length > 0) yield `${blocks.length} failed test(s), in short:\n${blocks.join('\n')}\n`;
}
