// The rule list's order: what drag and drop (pointer or keyboard) and the move
// buttons produce, and how the resulting orders reach the core one at a time.

export interface HasId {
  id: number;
}

/** The ids in list order: what `rule_reorder` takes. */
export function idsOf(items: readonly HasId[]): number[] {
  return items.map((i) => i.id);
}

export function sameOrder(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** `items` with the element at `from` moved to `to` (clamped); a new array. */
export function moveItem<T>(items: readonly T[], from: number, to: number): T[] {
  const out = [...items];
  if (from < 0 || from >= out.length) return out;
  const target = Math.max(0, Math.min(out.length - 1, to));
  const [item] = out.splice(from, 1) as [T];
  out.splice(target, 0, item);
  return out;
}

/**
 * Runs `send` for the orders pushed into it, one at a time and in order; while one is
 * in flight, only the newest waiting order is kept (each order is complete, so the
 * ones in between need not be sent). Keyboard drag and drop produces an order per
 * arrow key; this keeps them from racing each other to the core.
 */
export class LatestOnlyQueue<T> {
  private running = false;
  private waiting: { value: T } | null = null;
  private idle: Array<() => void> = [];

  constructor(private readonly send: (value: T) => Promise<void>) {}

  push(value: T): void {
    this.waiting = { value };
    if (!this.running) void this.drain();
  }

  /** Resolves once nothing is in flight or waiting. */
  settled(): Promise<void> {
    if (!this.running && !this.waiting) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.waiting) {
      const { value } = this.waiting;
      this.waiting = null;
      try {
        await this.send(value);
      } catch {
        // `send` reports its own errors; the queue goes on with the newest order.
      }
    }
    this.running = false;
    const idle = this.idle;
    this.idle = [];
    for (const resolve of idle) resolve();
  }
}
