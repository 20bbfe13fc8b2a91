/**
 * One word for a POSIX shell, quoted only when it needs it, for commands that hints ask a user to paste
 * (`ssh-keygen -f ~/.swarmform/c/known_hosts -R 10.0.0.7`, not `'...'` around every word as `shq` writes them).
 */
export function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}
