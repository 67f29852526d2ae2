import type { EventDataByType, EventFrame, EventType, Message } from '@safechat/protocol';
import type { Database, Tx } from '../storage/db.js';
import { insertEvent, mailboxHead, nextEventSeq, readEventsAfter } from '../storage/repositories/events.js';
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

  async append<T extends EventType>(tx: Tx, userId: string, type: T, data: EventDataByType[T]): Promise<void> {
    const seq = await nextEventSeq(tx.db, userId);
    // message.new refers to its message row (stored once); other events carry their data.
    const isMessage = type === 'message.new';
    await insertEvent(tx.db, {
      user_id: userId,
      seq,
      type,
      message_id: isMessage ? (data as EventDataByType['message.new']).id : null,
      data: isMessage ? null : JSON.stringify(data),
      created_at: this.clock.now(),
    });
    const event = eventFrame(type, seq, data);
    tx.onCommit(() => this.sink?.eventsCommitted(userId, [event]));
  }

  head(userId: string): Promise<{ lastSeq: number; prunedThrough: number } | undefined> {
    return mailboxHead(this.db.db, userId);
  }

  async readAfter(userId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    const rows = await readEventsAfter(this.db.db, userId, afterSeq, limit);
    const out: StoredEvent[] = [];
    for (const r of rows) {
      if (r.type === 'message.new') {
        // The message row is gone only if its account was deleted: skip, the cursor still advances.
        if (r.message) out.push(eventFrame('message.new', r.seq, toMessage(r.message)));
        else out.push({ seq: r.seq, frame: '' });
      } else {
        out.push(eventFrame(r.type as Exclude<EventType, 'message.new'>, r.seq, JSON.parse(r.data ?? 'null') as never));
      }
    }
    return out;
  }
}
