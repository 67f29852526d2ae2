/**
 * Cross-instance signals only: "user X has new events", "close user X's sockets". Never message
 * content: the database is the source of truth, a lost signal only delays delivery until the
 * client's next read or reconnect.
 */
export interface PubSub {
  publish(channel: string, message: string): void;
  /** Returns the function that unsubscribes. */
  subscribe(channel: string, handler: (message: string) => void): () => void;
  /**
   * Called when signals meant for this instance may have been lost: its subscription is back
   * after the broker was away, or another instance's publisher is back after dropping some. Local
   * state that depends on them must be checked again.
   */
  onSignalsLost(handler: () => void): void;
  /** Resolves when the broker answers; rejects when it cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const userChannel = (userId: string): string => `safechat:u:${userId}`;

/** Where an instance whose publisher dropped signals says so when it is back (the message: its id). */
export const SIGNALS_LOST_CHANNEL = 'safechat:signals-lost';
