/**
 * A list that grows while a fan-out works through it: the producer pushes items as they arrive (machines as each one
 * answers SSH) and closes it when no more will come, so the consumer starts on the first item without waiting for the
 * last. One array and one watcher set; nothing per item beyond the item itself.
 */
import { InternalError } from '../base/errors.js';

export class Feed<T> {
  readonly items: T[] = [];
  private open = true;
  private readonly watchers = new Set<() => void>();

  /** False once `close` was called: `items` is then final. */
  get closed(): boolean {
    return !this.open;
  }

  /** Adds an item; pushing to a closed feed is a bug and throws. */
  push(item: T): void {
    if (!this.open) throw new InternalError('Feed.push after close');
    this.items.push(item);
    this.notify();
  }

  /** No more items will come; idempotent. */
  close(): void {
    if (!this.open) return;
    this.open = false;
    this.notify();
  }

  /** Calls `fn` after every push and on close; returns the function that stops it. */
  watch(fn: () => void): () => void {
    this.watchers.add(fn);
    return () => this.watchers.delete(fn);
  }

  private notify(): void {
    for (const fn of this.watchers) fn();
  }
}
