/** Raft quorum arithmetic for the manager group, as operators read it. */

export interface QuorumPlan {
  managers: number;
  /** Managers that must agree: floor(N/2)+1. */
  quorum: number;
  /** Managers that may be lost while the swarm still takes changes: floor((N-1)/2). */
  tolerates: number;
  warnings: string[];
}

/** Sizes the quorum for N managers and warns about counts that buy nothing or cost too much. */
export function planQuorum(managers: number): QuorumPlan {
  const quorum = Math.floor(managers / 2) + 1;
  const tolerates = Math.max(0, Math.floor((managers - 1) / 2));
  const warnings: string[] = [];
  if (managers > 0 && managers % 2 === 0) {
    warnings.push(`${managers} managers tolerate no more losses than ${managers - 1}: use an odd count`);
  }
  if (managers > 7) warnings.push(`${managers} managers: more than 7 slows every Raft write; 3, 5 or 7 is recommended`);
  if (managers === 1) warnings.push('1 manager: losing it loses the swarm\'s control plane; use 3 for a cluster you keep');
  return { managers, quorum, tolerates, warnings };
}
