import { sql, type Kysely } from 'kysely';
import { isRetryableTxError } from '../dialect.js';
import { prepared } from '../prepared.js';
import type { Schema } from '../schema.js';
import type { MessageRow } from './messages.js';

/** What a send needs stored, and what it took: its place in the chat and in the receiver's log. */
export type BatchedSend = Omit<MessageRow, 'seq' | 'receiver_seq'>;
export interface SendOptions {
  establishesEncryption: boolean;
  markWriter: boolean;
}
export interface Placed {
  seq: number;
  receiver_seq: number;
}

/** The most sends in one statement: ~100 KB of parameters at 256-byte messages. */
const MAX_BATCH = 200;
/**
 * The fewest waiting sends worth one batch statement. It is planned on every execution (~3 ms of
 * PostgreSQL's CPU on a 2-core VM), so fewer go out one by one as the named one-row statement:
 * at moderate load sends keep single-statement latency, under load batches amortize the planning.
 */
export const MIN_BATCH = 8;
/** A batch that deadlocks with another instance's writes is run again this many times before its sends see the error. */
const BATCH_ATTEMPTS = 3;
/**
 * Statements in flight per database handle: one would make a send wait for the statement before
 * it (p50 at 1 k msg/s 2.5–5 ms against 1.9 with four); more batch less at saturation.
 */
const IN_FLIGHT = 8;

type Columns = {
  [K in 'id' | 'chat_id' | 'sender_id' | 'receiver_id' | 'encrypted_content' | 'iv' | 'mac' | 'type' | 'client_message_id' | 'created_at']: BatchedSend[K][];
} & { establish: boolean[]; mark_writer: boolean[] };

/**
 * PostgreSQL: many sends in one statement, in the order given (decision 0025). The same writes as
 * one send's statement (messages.ts), summed per row: each chat's `last_seq` moves by its number of
 * sends and they take the numbers in order, each receiver's log position likewise, each member's
 * unread count by its share, the chat's latest message is the batch's last for it. A chat or
 * receiver that is gone leaves a NULL the insert refuses (the statement then fails whole and its
 * sends run one by one). A retry of a message stored before is left out, and a `clientMessageId`
 * repeated within the batch is held back (SendBatcher.run): both run alone.
 */
const storeBatchQ = prepared<Columns, Placed & { id: string }>(
  (db, arg) => ({
    compile: () =>
      sql<Placed & { id: string }>`
        with given as (
          select * from unnest(
            ${arg('id')}::text[], ${arg('chat_id')}::text[], ${arg('sender_id')}::text[], ${arg('receiver_id')}::text[],
            ${arg('encrypted_content')}::text[], ${arg('iv')}::text[], ${arg('mac')}::text[], ${arg('type')}::text[],
            ${arg('client_message_id')}::text[], ${arg('created_at')}::int8[], ${arg('establish')}::bool[], ${arg('mark_writer')}::bool[]
          ) with ordinality as t(id, chat_id, sender_id, receiver_id, encrypted_content, iv, mac, type, client_message_id, created_at, establish, mark_writer, ord)
        ),
        -- A client's retry of a message already stored is left out (and answered alone) instead of failing the batch.
        input as (
          select * from given g
          where g.client_message_id is null
            or not exists (select 1 from messages m where m.sender_id = g.sender_id and m.client_message_id = g.client_message_id)
        ),
        per_chat as (
          select chat_id, count(*) as n, (array_agg(id order by ord desc))[1] as last_id,
            (array_agg(created_at order by ord desc))[1] as last_at, bool_or(establish) as establish
          from input group by chat_id
        ),
        per_receiver as (select receiver_id, count(*) as n from input group by receiver_id),
        -- One change per member row: a member both receiving and writing in the batch is one row,
        -- and PostgreSQL applies only one of two updates of a row in one statement.
        per_member as (
          select chat_id, user_id, sum(n)::int as n, min(wrote_at) as wrote_at from (
            select chat_id, receiver_id as user_id, 1 as n, null::int8 as wrote_at from input
            union all
            select chat_id, sender_id, 0, created_at from input where mark_writer
          ) x group by chat_id, user_id
        ),
        -- Every row is locked first, table by table (chats, mailboxes, members: a single send's order)
        -- and in key order within each, each step gated on the one before (a one-time filter): two
        -- batches never wait for each other in a cycle.
        lc as (select id from chats where id in (select chat_id from per_chat) order by id for update),
        lm as (
          select user_id from mailboxes where user_id in (select receiver_id from per_receiver) and (select count(*) from lc) >= 0
          order by user_id for update
        ),
        lu as (
          select chat_id, user_id from chat_members where (chat_id, user_id) in (select chat_id, user_id from per_member) and (select count(*) from lm) >= 0
          order by chat_id, user_id for update
        ),
        c as (
          update chats set last_seq = chats.last_seq + p.n, last_message_id = p.last_id, last_activity_at = greatest(chats.last_activity_at, p.last_at),
            encryption_status = case when p.establish then 'established' else chats.encryption_status end
          from per_chat p where chats.id = p.chat_id and (select count(*) from lu) >= 0
          returning chats.id, chats.last_seq - p.n as base
        ),
        mb as (
          update mailboxes set last_seq = mailboxes.last_seq + p.n
          from per_receiver p where mailboxes.user_id = p.receiver_id and (select count(*) from lu) >= 0
          returning mailboxes.user_id, mailboxes.last_seq - p.n as base
        ),
        u as (
          update chat_members set unread_count = chat_members.unread_count + p.n, wrote_at = coalesce(chat_members.wrote_at, p.wrote_at)
          from per_member p where chat_members.chat_id = p.chat_id and chat_members.user_id = p.user_id and (select count(*) from lu) >= 0
          returning chat_members.user_id
        )
        insert into messages (id, chat_id, seq, sender_id, receiver_id, encrypted_content, iv, mac, type, status,
          client_message_id, created_at, delivered_at, read_at, receiver_seq)
        select i.id, i.chat_id, c.base + row_number() over (partition by i.chat_id order by i.ord), i.sender_id, i.receiver_id,
          i.encrypted_content, i.iv, i.mac, i.type, 'sent', i.client_message_id, i.created_at, null, null,
          mb.base + row_number() over (partition by i.receiver_id order by i.ord)
        from input i left join c on c.id = i.chat_id left join mb on mb.user_id = i.receiver_id
        returning id, seq, receiver_seq`.compile(db),
  }),
  // Its joins' best plan depends on the tables' sizes: a cached generic plan made while `messages`
  // was empty scanned the whole table for the retry check on every batch (T-LOAD-02, decision 0025).
  { planEachTime: true },
);

interface Pending {
  row: BatchedSend;
  opts: SendOptions;
  resolve: (placed: Placed | undefined) => void;
  reject: (err: unknown) => void;
}

/** One send alone: its own statement (messages.ts). */
export type StoreOne = (db: Kysely<Schema>, row: BatchedSend, opts: SendOptions) => Promise<Placed | undefined>;

/**
 * Gathers the sends that arrive while statements run into the next one, like SQLite's commit
 * groups, with up to IN_FLIGHT statements at once per database handle. While fewer than MIN_BATCH
 * wait, each goes out as its own one-row statement. Order: sends of one socket to one conversation already wait for each other
 * (ws/connection.ts lanes); within a statement, a chat's and a receiver's numbers follow the order
 * given; across statements, row locks order them as they did single sends. A batch locks its rows
 * in one order before it changes any (see the statement), so batches do not deadlock each other;
 * a deadlock with other writes is run again (BATCH_ATTEMPTS), then the sends' own retry takes over.
 */
export class SendBatcher {
  private queue: Pending[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly db: Kysely<Schema>,
    private readonly storeOne: StoreOne,
  ) {}

  /** The send's place, or undefined when nothing was stored (PostgreSQL reports why as an error). */
  store(row: BatchedSend, opts: SendOptions): Promise<Placed | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ row, opts, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.scheduled || this.inFlight >= IN_FLIGHT || this.queue.length === 0) return;
    this.scheduled = true;
    // Every send of this turn of the event loop joins the statement.
    setImmediate(() => {
      this.scheduled = false;
      while (this.inFlight < IN_FLIGHT && this.queue.length > 0) {
        this.inFlight++;
        const next = this.queue.length >= MIN_BATCH ? this.run(this.queue.splice(0, MAX_BATCH)) : this.alone(this.queue.shift()!);
        void next.finally(() => {
          this.inFlight--;
          this.kick();
        });
      }
    });
  }

  private async run(given: Pending[]): Promise<void> {
    // A sender's clientMessageId twice in one batch would fail the statement for everyone (the
    // unique key): the later copies wait and run alone after it, each answered as a retry.
    const seen = new Set<string>();
    const batch: Pending[] = [];
    const repeats: Pending[] = [];
    for (const p of given) {
      const key = p.row.client_message_id === null ? null : `${p.row.sender_id}\u0000${p.row.client_message_id}`;
      if (key !== null && seen.has(key)) repeats.push(p);
      else {
        if (key !== null) seen.add(key);
        batch.push(p);
      }
    }
    await this.runBatch(batch);
    for (const p of repeats) await this.alone(p);
  }

  private async runBatch(batch: Pending[]): Promise<void> {
    if (batch.length === 1) return this.alone(batch[0]!);
    const columns: Columns = {
      id: [], chat_id: [], sender_id: [], receiver_id: [], encrypted_content: [], iv: [], mac: [], type: [],
      client_message_id: [], created_at: [], establish: [], mark_writer: [],
    };
    for (const { row, opts } of batch) {
      columns.id.push(row.id);
      columns.chat_id.push(row.chat_id);
      columns.sender_id.push(row.sender_id);
      columns.receiver_id.push(row.receiver_id);
      columns.encrypted_content.push(row.encrypted_content);
      columns.iv.push(row.iv);
      columns.mac.push(row.mac);
      columns.type.push(row.type);
      columns.client_message_id.push(row.client_message_id);
      columns.created_at.push(row.created_at);
      columns.establish.push(opts.establishesEncryption);
      columns.mark_writer.push(opts.markWriter);
    }
    for (let attempt = 1; ; attempt++) {
      try {
        const placed = new Map((await storeBatchQ.all(this.db, columns)).map((r) => [r.id, r]));
        const left: Pending[] = [];
        for (const p of batch) {
          const got = placed.get(p.row.id);
          if (got) p.resolve(got);
          else left.push(p);
        }
        // Retries of stored messages: alone, each learns so (the unique key) as it would have.
        for (const p of left) await this.alone(p);
        return;
      } catch (err) {
        if (isRetryableTxError(err) && attempt < BATCH_ATTEMPTS) continue;
        if (!isRefusal(err)) {
          for (const p of batch) p.reject(err);
          return;
        }
        // One of them is refused: each runs alone, in order, and gets its own answer.
        for (const p of batch) await this.alone(p);
        return;
      }
    }
  }

  private async alone(p: Pending): Promise<void> {
    try {
      p.resolve(await this.storeOne(this.db, p.row, p.opts));
    } catch (err) {
      p.reject(err);
    }
  }
}

/** A constraint refused a row (class 23: unique, foreign key, not null): a send's own fault, not the database's. */
function isRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('23');
}
