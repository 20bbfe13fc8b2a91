import type { SwarmformEvent } from '../../base/events.js';
import { formatSummary, summary } from './summary.js';

/** Keeps the `fail` step events a renderer sees (only those: bounded by the number of failures) for `summary()`. */
export class FailureLog {
  private readonly events: SwarmformEvent[] = [];

  add(e: SwarmformEvent): void {
    if (e.type === 'step' && e.status === 'fail') this.events.push(e);
  }

  lines(): string[] {
    return formatSummary(summary(this.events));
  }
}
