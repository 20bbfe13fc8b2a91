/** Per-cluster state: atomic 0600 files, one lock per cluster, known host keys, and redaction of secrets. */
export { ClusterState, openState, type OpenStateOptions } from './store.js';
export { emptyState, mergeMachines, type Secrets, type StateFile } from './state-file.js';
export { fingerprint, keyType, KnownHosts, type HostKey, type HostKeyCheck } from './known-hosts.js';
export { lockPath, pidAlive, readOwner, STALE_MS, type LockOwner } from './lock.js';
export { clusterDir, stateHome } from './paths.js';
export { redact, REDACTED } from './redact.js';
export { DIR_MODE, FILE_MODE, readJsonFile, writeSecureFile } from './secure-file.js';
