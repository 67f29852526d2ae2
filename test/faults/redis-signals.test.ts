import { describe, expect, it } from 'vitest';
import {
  createChat,
  envelope,
  LiveSocket,
  redisUnavailable,
  register,
  sleep,
  twoInstances,
  useFaultHooks,
  waitFor,
  type Frame,
} from './_harness.js';

/**
 * WS-04 / T-WS-08 across instances, with Redis away: what another instance published while Redis
 * was down (a logout's revocation, a message's wake-up) never arrives. When Redis is back, each
 * instance checks its live sockets again: the revoked login's socket closes and the receiver gets
 * the message it missed, without any new message to wake it.
 */
useFaultHooks();

const skip = redisUnavailable();
if (skip) console.warn(`[faults] Redis signals test SKIPPED: ${skip}.`);

describe.skipIf(skip !== null)('signals lost while Redis is down (two instances, private redis-server)', () => {
  it('when Redis returns, a login revoked meanwhile loses its socket on the other instance, and a missed message is delivered', async () => {
    const { redis, a, b } = await twoInstances('signals');
    const [alice, bob, carol] = [await register(a), await register(a), await register(a)];
    const chatId = await createChat(a, carol, bob);

    const bobEvents: Frame[] = [];
    const aliceOnB = new LiveSocket(b.wsUrl, alice.token, undefined, { onEvent: () => undefined });
    const bobOnB = new LiveSocket(b.wsUrl, bob.token, undefined, { onEvent: (f) => bobEvents.push(f) });
    await Promise.all([aliceOnB.ready, bobOnB.ready]);

    await redis.kill();
    await waitFor(async () => (await b.get('/health')).body?.checks?.redis === 'down', 5000, 'B to see Redis down', 100);
    expect((await a.post('/auth/logout', { refreshToken: alice.refreshToken })).status).toBe(204);
    const sent = await a.post('/messages', { chatId, ...envelope(64) }, carol.token);
    expect(sent.status).toBe(201);
    // B cannot know yet: nothing reached it.
    await sleep(1000);
    expect(aliceOnB.open).toBe(true);
    expect(bobEvents.filter((f) => f.type === 'message.new')).toHaveLength(0);

    await redis.launch();
    await waitFor(() => aliceOnB.closeCode !== null, 10_000, 'alice’s revoked socket on B to close');
    expect(aliceOnB.closeCode).toBe(4401);
    const delivered = await waitFor(() => bobEvents.find((f) => f.type === 'message.new'), 10_000, 'bob to get the missed message');
    expect(delivered.data.id).toBe(sent.body.id);
    expect(bobOnB.open).toBe(true);
  });
});
