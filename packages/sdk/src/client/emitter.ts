/** A small typed event emitter; handlers may be async, and `emitSerial` waits for each in turn. */

export type Handler<T> = (payload: T) => void | Promise<void>;

export class Emitter<Events extends object> {
  readonly #handlers = new Map<keyof Events, Set<Handler<never>>>();

  /** Adds a handler; returns the function that removes it. */
  on<K extends keyof Events>(type: K, handler: Handler<Events[K]>): () => void {
    let set = this.#handlers.get(type);
    if (!set) this.#handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => this.off(type, handler);
  }

  /** Adds a handler that runs for the next event only. */
  once<K extends keyof Events>(type: K, handler: Handler<Events[K]>): () => void {
    const off = this.on(type, (p) => {
      off();
      return handler(p);
    });
    return off;
  }

  off<K extends keyof Events>(type: K, handler: Handler<Events[K]>): void {
    this.#handlers.get(type)?.delete(handler);
  }

  /**
   * Calls every handler in order and waits for each (so events reach the application in order).
   * A handler that throws does not stop the others; the errors are returned.
   */
  async emitSerial<K extends keyof Events>(type: K, payload: Events[K]): Promise<unknown[]> {
    const errors: unknown[] = [];
    for (const h of [...(this.#handlers.get(type) ?? [])]) {
      try {
        await (h as Handler<Events[K]>)(payload);
      } catch (err) {
        errors.push(err);
      }
    }
    return errors;
  }

  /** Calls every handler without waiting; errors of async handlers go to `onError`. */
  emit<K extends keyof Events>(type: K, payload: Events[K], onError?: (err: unknown) => void): void {
    for (const h of [...(this.#handlers.get(type) ?? [])]) {
      try {
        const r: unknown = (h as Handler<Events[K]>)(payload);
        if (r instanceof Promise) r.catch((err: unknown) => onError?.(err));
      } catch (err) {
        onError?.(err);
      }
    }
  }

  listenerCount(type: keyof Events): number {
    return this.#handlers.get(type)?.size ?? 0;
  }
}
