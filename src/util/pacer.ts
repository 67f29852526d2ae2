/**
 * Admits at most `perTurn` callers per turn of the event loop; the rest wait, in order, for later
 * turns. A burst of expensive starts (thousands of sockets connecting at once) then costs every
 * turn a bounded slice instead of one turn the whole burst, and timers, I/O and live traffic keep
 * being served in between.
 */
export class Pacer {
  private readonly waiting: (() => void)[] = [];
  /** Admitted since the last release (the current turn). */
  private admitted = 0;
  private scheduled = false;

  constructor(private readonly perTurn: number) {}

  /** Resolves when the caller may go on; at once (no promise) while this turn has room. */
  admit(): Promise<void> | undefined {
    this.schedule();
    if (this.waiting.length === 0 && this.admitted < this.perTurn) {
      this.admitted++;
      return undefined;
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  get queued(): number {
    return this.waiting.length;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // An immediate queued from inside an immediate runs in the next turn, after timers and I/O.
    setImmediate(() => this.release());
  }

  private release(): void {
    this.scheduled = false;
    const next = this.waiting.splice(0, this.perTurn);
    this.admitted = next.length;
    for (const go of next) go();
    if (this.admitted > 0) this.schedule();
  }
}
