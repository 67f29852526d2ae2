import { expect, it } from 'vitest';
import { Pacer } from '../../src/util/pacer.js';
import { turnCounter } from '../_helpers/turns.js';

it('admits perTurn callers per turn of the event loop, in order, with timers served in between', async () => {
  const pacer = new Pacer(3);
  const turns = turnCounter();
  let timerAt = -1;
  setTimeout(() => (timerAt = order.length), 0);
  const order: number[] = [];
  const turnOf = new Map<number, number>();
  const all = Array.from({ length: 10 }, async (_, i) => {
    const wait = pacer.admit();
    if (wait) await wait;
    // A millisecond of work each: the timer falls due during the burst.
    const end = performance.now() + 1;
    while (performance.now() < end);
    order.push(i);
    turnOf.set(i, turns.now());
  });
  // Three went through at once; seven wait.
  expect(order).toEqual([0, 1, 2]);
  expect(timerAt).toBe(-1);
  expect(pacer.queued).toBe(7);
  await Promise.all(all);
  turns.stop();

  expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // Groups of three, each in a later turn than the one before.
  const groups = [[3, 4, 5], [6, 7, 8], [9]].map((g) => new Set(g.map((i) => turnOf.get(i)!)));
  for (const g of groups) expect(g.size).toBe(1);
  const [a, b, c] = groups.map((g) => [...g][0]!);
  expect(a).toBeLessThan(b!);
  expect(b).toBeLessThan(c!);
  // The timer set before the burst ran before the burst was through.
  expect(timerAt).toBeGreaterThan(-1);
  expect(timerAt).toBeLessThan(10);
});

it('with room in the turn and nobody waiting, admits at once', () => {
  const pacer = new Pacer(2);
  expect(pacer.admit()).toBeUndefined();
  expect(pacer.admit()).toBeUndefined();
  expect(pacer.admit()).toBeInstanceOf(Promise);
});
