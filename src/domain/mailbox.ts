import type { EventDataByType, EventFrame, EventType, Message } from '@safechat/protocol';
import type { Database, Tx } from '../storage/db.js';
import { appendEvent, appendToContacts, mailboxHead, readLogAfter } from '../storage/repositories/events.js';
import type { Clock } from '../util/clock.js';
import { messageJson, toMessage } from './wire.js';

/** An event as committed to a user's log; `frame` is its wire JSON, built once and shared by every socket. */
export interface StoredEvent {
  readonly seq: number;
  readonly frame: string;
}

/** Told after each commit, so live sockets can be fed without a read (the doorbell). */
export interface EventSink {
  eventsCommitted(userId: string, events: StoredEvent[]): void;
}

export function eventFrame<T extends EventType>(type: T, seq: number, data: EventDataByType[T]): StoredEvent {
  if (type === 'message.new') {
    return { seq, frame: `{"type":"message.new","cursor":"${seq}","data":${messageJson(data as Message)}}` };
  }
  const frame = { type, cursor: String(seq), data } as EventFrame;
  return { seq, frame: JSON.stringify(frame) };
}

/**
 * The per-user event log. State changes append their events in the same transaction, so an
 * event exists if and only if its change committed; the cursor is the per-user sequence number.
 */
export class Mailbox {
  private sink: EventSink | null = null;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  connect(sink: EventSink): void {
    this.sink = sink;
  }

  /**
   * Appends an event other than message.new. A message.new is its message row (storeMessage
   * takes its seq and stores it on the row); the sender only `announce`s it.
   */
  async append<T extends Exclude<EventType, 'message.new'>>(tx: Tx, userId: string, type: T, data: EventDataByType[T]): Promise<void> {
    const seq = await appendEvent(tx.db, userId, { type, data: JSON.stringify(data), created_at: this.clock.now() });
    if (seq === undefined) throw new Error('mailbox missing');
    this.announce(tx, userId, eventFrame(type, seq, data));
  }

  /** Appends the event to the log of everyone who shares a chat with `userId`. */
  async appendToContacts<T extends Exclude<EventType, 'message.new'>>(tx: Tx, userId: string, type: T, data: EventDataByType[T]): Promise<void> {
    const placed = await appendToContacts(tx.db, userId, { type, data: JSON.stringify(data), created_at: this.clock.now() });
    for (const p of placed) this.announce(tx, p.userId, eventFrame(type, p.seq, data));
  }

  /** Feeds live sockets once the transaction has committed. */
  announce(tx: Tx, userId: string, event: StoredEvent): void {
    tx.onCommit(() => this.sink?.eventsCommitted(userId, [event]));
  }

  head(userId: string): Promise<{ lastSeq: number; prunedThrough: number } | undefined> {
    return mailboxHead(this.db.db, userId);
  }

  /** The log after `afterSeq` in order (a gap is an entry deleted with its account). */
  async readAfter(userId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    const entries = await readLogAfter(this.db.db, userId, afterSeq, limit);
    return entries.map((r) =>
      r.message
        ? eventFrame('message.new', r.seq, toMessage(r.message))
        : eventFrame(r.type as Exclude<EventType, 'message.new'>, r.seq, JSON.parse(r.data ?? 'null') as never),
    );
  }
}
