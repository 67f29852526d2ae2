/**
 * SECURITY.md §4b IDOR matrix (T-AZ-01…06, T-WS-AZ, T-KEY-01): alice, bob, carol, dave; chat AB
 * (alice, bob) and chat BC (bob, carol); dave has no chats. For every route that names a chat, a
 * message or a user's keys:
 *  - a non-member gets 404 with exactly the answer a nonexistent id gets (status, body, headers),
 *    so ids are no existence oracle;
 *  - the sender of a message cannot set its status (403);
 *  - nobody writes someone else's keys;
 *  - carol's socket, open throughout, never receives an event of chat AB; her `message.send` into
 *    AB is an error and stores nothing;
 *  - every refusal leaves the database exactly as it was (row counts and state counters).
 * Production rate limits stay on; users register from distinct addresses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Chat, Message } from '@safechat/protocol';
import { envelope, type Res, type Session } from '../_helpers/api.js';
import { keyUpload } from '../_helpers/keys.js';
import { describeEachDialect } from '../_helpers/server.js';
import { closeAllSockets, connect, type TestSocket, wsServer, type WsServer } from '../_helpers/ws.js';
import { uuidv7 } from '../../src/util/ids.js';
import { expectError, reasons, snapshot, unchanged } from './_support.js';

/** The parts of an answer a client can compare; `date` is the only header allowed to differ. */
function answer(res: Res): { status: number; text: string; headers: Record<string, unknown> } {
  const { date: _date, ...headers } = res.headers;
  return { status: res.status, text: res.text, headers };
}

describeEachDialect('IDOR matrix', (dialect) => {
  let srv: WsServer;
  let alice: Session, bob: Session, carol: Session, dave: Session;
  let AB: Chat, BC: Chat;
  let mAB: Message, mBA: Message, mBC: Message;
  let carolWs: TestSocket, daveWs: TestSocket, bobWs: TestSocket;
  /** Ids that exist nowhere (fresh UUIDv7s, the same shape as real ones). */
  const missing = () => uuidv7();

  beforeAll(async () => {
    srv = await wsServer({ dialect });
    [alice, bob, carol, dave] = await Promise.all([srv.user(), srv.user(), srv.user(), srv.user()]);
    // Carol and dave are connected before anything happens in AB, and stay connected.
    [carolWs, daveWs, bobWs] = await Promise.all([connect(srv.wsUrl, carol.token), connect(srv.wsUrl, dave.token), connect(srv.wsUrl, bob.token)]);
    AB = await srv.api.chat(alice, bob);
    BC = await srv.api.chat(bob, carol);
    mAB = await srv.api.send(alice, { chatId: AB.id });
    mBA = await srv.api.send(bob, { chatId: AB.id });
    mBC = await srv.api.send(bob, { chatId: BC.id });
    expect((await srv.api.put('/keys', keyUpload().body, alice.token)).status).toBe(200);
  });
  afterAll(async () => {
    closeAllSockets();
    await srv.close();
  });

  const get = (path: string, who: Session) => srv.api.get(path, who.token);
  const post = (path: string, body: unknown, who: Session) => srv.api.post(path, body, who.token);
  const put = (path: string, body: unknown, who: Session) => srv.api.put(path, body, who.token);

  /**
   * [route, request with an id] — each is sent with chat AB's (or its message's) id and with a
   * nonexistent id, by carol (member of another chat) and by dave (no chats).
   */
  type Probe = [route: string, send: (id: string, who: Session) => Promise<Res>];
  const chatProbes: Probe[] = [
    ['GET /chats/:chatId', (id, who) => get(`/chats/${id}`, who)],
    ['GET /messages/:chatId', (id, who) => get(`/messages/${id}`, who)],
    ['GET /messages/:chatId?before=', (id, who) => get(`/messages/${id}?before=${mBA.id}`, who)],
    ['GET /messages/:chatId?after=', (id, who) => get(`/messages/${id}?after=${mAB.id}&limit=1`, who)],
    ['POST /messages {chatId}', (id, who) => post('/messages', { chatId: id, ...envelope() }, who)],
    ['POST /messages {chatId, receiverId}', (id, who) => post('/messages', { chatId: id, receiverId: bob.id, ...envelope() }, who)],
  ];
  const messageProbes: Probe[] = [
    ['PUT /messages/:id/status read', (id, who) => put(`/messages/${id}/status`, { status: 'read' }, who)],
    ['PUT /messages/:id/status delivered', (id, who) => put(`/messages/${id}/status`, { status: 'delivered' }, who)],
  ];

  describe('T-AZ-01/02/04/06: non-members get the nonexistent-id answer, and nothing changes', () => {
    it.each(chatProbes)('%s naming chat AB', async (route, send) => {
      for (const who of [carol, dave]) {
        const [foreign, absent] = await unchanged(srv, async () => [await send(AB.id, who), await send(missing(), who)] as const, route);
        expectError(foreign, 404, 'not_found', `${route} foreign`);
        expect(answer(foreign), route).toEqual(answer(absent));
      }
      // A member asking for a chat that does not exist gets that same answer too.
      const [asCarol, asAlice] = [await send(missing(), carol), await send(missing(), alice)];
      expect(answer(asAlice)).toEqual(answer(asCarol));
    });

    it.each(messageProbes)('%s naming a message of chat AB', async (route, send) => {
      for (const who of [carol, dave]) {
        const [foreign, absent] = await unchanged(srv, async () => [await send(mAB.id, who), await send(missing(), who)] as const, route);
        expectError(foreign, 404, 'not_found', `${route} foreign`);
        expect(answer(foreign), route).toEqual(answer(absent));
      }
    });

    it("a message of chat AB used as a paging cursor in carol's own chat BC answers like a nonexistent one", async () => {
      for (const field of ['before', 'after']) {
        const [foreign, absent] = await unchanged(srv, async () => [await get(`/messages/${BC.id}?${field}=${mAB.id}`, carol), await get(`/messages/${BC.id}?${field}=${missing()}`, carol)] as const);
        expectError(foreign, 400, 'validation_error', field);
        expect(answer(foreign)).toEqual(answer(absent));
      }
    });

    it("a member cannot address a message in her chat to someone outside it", async () => {
      const res = await unchanged(srv, () => post('/messages', { chatId: BC.id, receiverId: alice.id, ...envelope() }, carol));
      expectError(res, 400, 'validation_error');
    });

    it("GET /chats lists only the caller's chats", async () => {
      expect((await get('/chats', dave)).body.chats).toEqual([]);
      expect((await get('/chats', carol)).body.chats.map((c: Chat) => c.id)).toEqual([BC.id]);
    });
  });

  describe('T-AZ-03/04/05: identity and status come from the token, not the body', () => {
    it('the sender cannot set the status of her own message (403); the receiver can', async () => {
      for (const status of ['delivered', 'read']) {
        const res = await unchanged(srv, () => put(`/messages/${mAB.id}/status`, { status }, alice), status);
        expectError(res, 403, 'forbidden', status);
      }
      expect((await put(`/messages/${mAB.id}/status`, { status: 'delivered' }, bob)).status).toBe(200);
      // Forward only: backwards is a conflict, and changes nothing.
      expect((await put(`/messages/${mAB.id}/status`, { status: 'read' }, bob)).status).toBe(200);
      expectError(await unchanged(srv, () => put(`/messages/${mAB.id}/status`, { status: 'delivered' }, bob)), 409, 'conflict');
    });

    it('a body naming another sender, id, sequence or status is refused (mass assignment)', async () => {
      const fields = { senderId: bob.id, sender: bob.id, id: missing(), seq: 1, createdAt: new Date().toISOString(), status: 'read', userId: bob.id, isAdmin: true };
      for (const [k, v] of Object.entries(fields)) {
        const res = await unchanged(srv, () => post('/messages', { chatId: AB.id, ...envelope(), [k]: v }, alice), k);
        expectError(res, 400, 'validation_error', k);
        expect(reasons(res)).toContain('unknown_field');
      }
      const sent = await srv.api.send(alice, { chatId: AB.id });
      expect(sent.senderId).toBe(alice.id);
    });
  });

  describe('T-KEY-01: nobody writes another user’s keys', () => {
    const aliceKeys = async () => ({ user: (await get(`/users/${alice.id}`, bob)).body.publicKey as string, count: (await get('/keys/count', alice)).body.oneTimePreKeys as number });

    it('there is no route that takes a user id for an upload, and a body naming one is refused', async () => {
      const before = await aliceKeys();
      const { body } = keyUpload();
      await unchanged(srv, async () => {
        for (const res of [await put(`/keys/${alice.id}`, body, carol), await post(`/keys/${alice.id}`, body, carol), await post('/keys', body, carol)]) {
          expectError(res, 405, 'method_not_allowed');
        }
        for (const extra of [{ userId: alice.id }, { user: alice.id }, { ownerId: alice.id }, { id: alice.id }]) {
          const res = await put('/keys', { ...body, ...extra }, carol);
          expectError(res, 400, 'validation_error', JSON.stringify(extra));
          expect(reasons(res)).toContain('unknown_field');
        }
      });
      expect(await aliceKeys()).toEqual(before);
    });

    it('an upload always lands on the caller, whatever the URL says', async () => {
      const before = await aliceKeys();
      const { body } = keyUpload(undefined, 3);
      expect((await put(`/keys?userId=${alice.id}`, body, carol)).status).toBe(200);
      expect(await aliceKeys()).toEqual(before);
      expect((await get('/users/me', carol)).body.publicKey).toBe(body.identityKey);
      // /keys/count is the caller's own, whatever the URL says.
      expect((await get(`/keys/count?userId=${alice.id}`, carol)).body.oneTimePreKeys).toBe(3);
    });
  });

  describe('T-WS-AZ: events and socket actions', () => {
    it('`message.send` into a foreign or nonexistent chat is an error frame and stores nothing', async () => {
      const before = await snapshot(srv);
      const foreign = await carolWs.request('idor-1', { chatId: AB.id, ...envelope() });
      const absent = await carolWs.request('idor-2', { chatId: missing(), ...envelope() });
      const addressed = await daveWs.request('idor-3', { chatId: AB.id, receiverId: bob.id, ...envelope() });
      for (const f of [foreign, absent, addressed]) expect(f).toMatchObject({ type: 'error', error: { code: 'not_found' } });
      expect(foreign.error).toEqual(absent.error);
      expect(await snapshot(srv)).toEqual(before);
    });

    it("carol and dave, connected throughout, never received an event of chat AB or about alice's keys", async () => {
      // A key change by alice notifies her contacts (bob), nobody else.
      expect((await put('/keys', keyUpload().body, alice)).status).toBe(200);
      await bobWs.next((f) => f.type === 'key.changed' && f.data.userId === alice.id);
      await srv.api.send(bob, { chatId: AB.id });
      await bobWs.sync();
      await Promise.all([carolWs.sync(), daveWs.sync()]);
      const abIds = new Set([AB.id, mAB.id, mBA.id]);
      for (const ws of [carolWs, daveWs]) {
        const leaked = ws.frames.filter((f) => f.type !== 'pong' && f.type !== 'ready' && f.type !== 'message.sent' && f.type !== 'error').filter((f) => {
          const text = JSON.stringify(f);
          return [...abIds].some((id) => text.includes(id)) || text.includes(alice.id);
        });
        expect(leaked).toEqual([]);
        expect(ws.closeCode).toBeNull();
      }
      // Carol did get the events of her own chat (the socket works).
      expect(carolWs.ofType('message.new').map((f) => f.data.id)).toEqual([mBC.id]);
    });
  });
});
