/**
 * Delivery and read receipts for incoming messages: "delivered" as soon as a message is decrypted
 * and stored here, "read" when its conversation is on screen in a focused window. Each message
 * moves forward only (the server answers 409 to a step back), one request at a time.
 */
import type { Message } from '@safechat/protocol';
import type { SafeChatClient } from '@safechat/sdk';

type Receipt = 'delivered' | 'read';
const RANK = { sent: 0, delivered: 1, read: 2 } as const;

export class Receipts {
  /** The furthest status this client has set (or seen) per incoming message. */
  readonly #done = new Map<string, Receipt | 'sent'>();
  readonly #chains = new Map<string, Promise<void>>();

  constructor(
    private readonly client: SafeChatClient,
    private readonly onChange: () => void,
  ) {}

  /** Marks an incoming message `target` (and `delivered` first if needed); resolves when done. */
  advance(message: Pick<Message, 'id' | 'status' | 'receiverId'>, target: Receipt): Promise<void> {
    if (message.receiverId !== this.client.user?.id) return Promise.resolve();
    const known = this.#done.get(message.id) ?? 'sent';
    const current = RANK[message.status] > RANK[known] ? message.status : known;
    this.#done.set(message.id, current);
    if (RANK[current] >= RANK[target]) return Promise.resolve();
    this.#done.set(message.id, target);
    const prev = this.#chains.get(message.id) ?? Promise.resolve();
    const next = prev.then(async () => {
      try {
        if (RANK[current] < RANK.delivered) await alreadyIsFine(this.client.markDelivered(message.id));
        if (target === 'read') await alreadyIsFine(this.client.markRead(message.id));
        this.onChange();
      } catch {
        this.#done.set(message.id, current); // try again next time
      }
    });
    this.#chains.set(message.id, next);
    void next.finally(() => {
      if (this.#chains.get(message.id) === next) this.#chains.delete(message.id);
    });
    return next;
  }

  /** Whether this message still needs a `read` receipt. */
  unread(message: Pick<Message, 'id' | 'status' | 'receiverId'>): boolean {
    if (message.receiverId !== this.client.user?.id) return false;
    return message.status !== 'read' && this.#done.get(message.id) !== 'read';
  }
}

/** 409: the status is already there or further (set by another tab, or before a reload). */
async function alreadyIsFine(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if ((err as { status?: number }).status !== 409) throw err;
  }
}
