import type { PubSub } from './pubsub.js';

/** In-process pub/sub: lets tests run several app instances in one process as if they shared Redis. */
export class LocalPubSub implements PubSub {
  private readonly channels = new Map<string, Set<(message: string) => void>>();

  publish(channel: string, message: string): void {
    const handlers = this.channels.get(channel);
    if (!handlers) return;
    // Asynchronous like a real broker: a publisher never runs subscribers inside its own call.
    for (const h of handlers) queueMicrotask(() => h(message));
  }

  subscribe(channel: string, handler: (message: string) => void): () => void {
    let set = this.channels.get(channel);
    if (!set) this.channels.set(channel, (set = new Set()));
    set.add(handler);
    return () => {
      set.delete(handler);
      if (set.size === 0) this.channels.delete(channel);
    };
  }

  onSignalsLost(): void {
    // In process: never away.
  }

  ping(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.channels.clear();
    return Promise.resolve();
  }
}
