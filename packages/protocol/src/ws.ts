import { z } from 'zod';
import { ErrorCode } from './errors.js';
import { Cursor, Id, Timestamp } from './primitives.js';
import { Message, MessageStatus, SendMessageBody } from './rest.js';

/** Close codes the server uses (RFC 6455 §7.4 plus the 4xxx application range). */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  invalidPayload: 1007,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
  serviceRestart: 1012,
  tryAgainLater: 1013,
  badRequest: 4400,
  unauthorized: 4401,
  rateLimited: 4429,
} as const;

export const RequestId = z.string().min(1).max(64);

// ---- client → server ----
export const AuthFrame = z.strictObject({ type: z.literal('auth'), token: z.string().min(1).max(4096), since: Cursor.optional() });
export const PingFrame = z.strictObject({ type: z.literal('ping') });
export const SendFrame = z.strictObject({ type: z.literal('message.send'), requestId: RequestId, data: SendMessageBody });

export const ClientFrame = z.discriminatedUnion('type', [AuthFrame, PingFrame, SendFrame]);
export type ClientFrame = z.infer<typeof ClientFrame>;

// ---- server → client: events (stored in the per-user log, each with a cursor) ----
export const MessageStatusEventData = z.object({ messageId: Id, chatId: Id, status: MessageStatus, updatedAt: Timestamp });
export type MessageStatusEventData = z.infer<typeof MessageStatusEventData>;
export const KeyChangedEventData = z.object({ userId: Id });
export const PrekeysLowEventData = z.object({ remaining: z.number().int() });

export const EVENT_TYPES = ['message.new', 'message.status', 'key.changed', 'prekeys.low'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface EventDataByType {
  'message.new': Message;
  'message.status': MessageStatusEventData;
  'key.changed': z.infer<typeof KeyChangedEventData>;
  'prekeys.low': z.infer<typeof PrekeysLowEventData>;
}

export type EventFrame = { [T in EventType]: { type: T; cursor: string; data: EventDataByType[T] } }[EventType];

export const EventFrameSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('message.new'), cursor: Cursor, data: Message }),
  z.object({ type: z.literal('message.status'), cursor: Cursor, data: MessageStatusEventData }),
  z.object({ type: z.literal('key.changed'), cursor: Cursor, data: KeyChangedEventData }),
  z.object({ type: z.literal('prekeys.low'), cursor: Cursor, data: PrekeysLowEventData }),
]);

// ---- server → client: control frames ----
export const ReadyFrame = z.object({ type: z.literal('ready'), data: z.object({ userId: Id, cursor: Cursor }) });
export const PongFrame = z.object({ type: z.literal('pong') });
export const SentFrame = z.object({ type: z.literal('message.sent'), requestId: RequestId, data: Message });
export const ErrorFrame = z.object({
  type: z.literal('error'),
  requestId: RequestId.optional(),
  error: z.object({ code: ErrorCode, message: z.string(), details: z.unknown().optional() }),
});
/** The `since` cursor cannot be replayed (older than retention, or not from this server): refetch over REST. */
export const ResyncFrame = z.object({
  type: z.literal('resync'),
  cursor: Cursor,
  data: z.object({ reason: z.enum(['cursor_expired', 'cursor_unknown']) }),
});

export type ReadyFrame = z.infer<typeof ReadyFrame>;
export type SentFrame = z.infer<typeof SentFrame>;
export type ErrorFrame = z.infer<typeof ErrorFrame>;
export type ResyncFrame = z.infer<typeof ResyncFrame>;
export type ServerFrame = EventFrame | ReadyFrame | z.infer<typeof PongFrame> | SentFrame | ErrorFrame | ResyncFrame;
