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
   * Called each time the subscription is back after the broker was away: signals published
   * meanwhile were lost, so local state that depends on them must be checked again.
   */
  onReconnect(handler: () => void): void;
  /** Resolves when the broker answers; rejects when it cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const userChannel = (userId: string): string => `safechat:u:${userId}`;
