/** Test helpers: users with in-memory stores, and a tiny stand-in for the server's key directory and message relay. */
import { randomUUID } from 'node:crypto';
import {
  buildUploadBundle,
  decryptMessage,
  encryptMessage,
  generateIdentity,
  generatePreKeys,
  initiateSession,
  type CryptoStores,
  type DecryptedMessage,
  type Plaintext,
  type UploadBundle,
  type WirePreKeyBundle,
} from '../src/crypto/index.js';
import { MemoryKeyStore, MemorySessionStore } from '../src/store/index.js';

export interface TestUser {
  id: string;
  stores: CryptoStores;
  keys: MemoryKeyStore;
  sessions: MemorySessionStore;
  upload: UploadBundle;
}

export interface ServerMessage {
  id: string;
  chatId: string;
  senderId: string;
  receiverId: string;
  encryptedContent: string;
  iv: string;
  mac: string;
  type: string;
}

export async function makeUser(opts: { oneTimePreKeys?: number; id?: string } = {}): Promise<TestUser> {
  const keys = new MemoryKeyStore();
  const sessions = new MemorySessionStore();
  await keys.saveIdentityKeyPair(generateIdentity());
  await generatePreKeys(keys, opts.oneTimePreKeys ?? 3);
  return { id: opts.id ?? randomUUID(), stores: { keys, sessions }, keys, sessions, upload: await buildUploadBundle(keys) };
}

/** What `GET /keys/{userId}` would hand out: hands out each one-time pre-key at most once. */
export function claimBundle(user: TestUser, opts: { withOneTimePreKey?: boolean } = {}): WirePreKeyBundle {
  const opk = opts.withOneTimePreKey === false ? undefined : user.upload.oneTimePreKeys.shift();
  return {
    userId: user.id,
    identityKey: user.upload.identityKey,
    signedPreKey: user.upload.signedPreKey,
    ...(opk ? { oneTimePreKey: opk } : {}),
  };
}

export function chatIdFor(a: TestUser, b: TestUser): string {
  return [a.id, b.id].sort().join('~');
}

export async function connect(a: TestUser, b: TestUser, opts: { withOneTimePreKey?: boolean } = {}) {
  return initiateSession(a.stores, b.id, claimBundle(b, opts));
}

export async function send(from: TestUser, to: TestUser, body: Plaintext['body'] = 'hi', type: Plaintext['type'] = 'text', chatId = chatIdFor(from, to)): Promise<ServerMessage> {
  const enc = await encryptMessage(from.stores, { senderId: from.id, receiverId: to.id, chatId }, { type, body });
  return { id: randomUUID(), chatId, senderId: from.id, receiverId: to.id, ...enc };
}

export function receive(user: TestUser, m: ServerMessage): Promise<DecryptedMessage> {
  return decryptMessage(user.stores, m);
}

/** Flips one bit of a base64 field at byte `index` (negative counts from the end). */
export function flipBit(b64: string, index: number, bit = 0): string {
  const bytes = Buffer.from(b64, 'base64');
  const i = index < 0 ? bytes.length + index : index;
  bytes[i]! ^= 1 << bit;
  return bytes.toString('base64');
}
