import { Writable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { createLoggers, requestLogger } from '../../src/logger.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const { http } = createLoggers('info', dest);
  return { lines, http, child: vi.spyOn(http, 'child') };
}
const flush = () => new Promise((r) => setImmediate(r));

describe('a request logger', () => {
  it('makes no child logger for a request that logs nothing, or only below the level', async () => {
    const { lines, http, child } = capture();
    const log = requestLogger(http, { reqId: 'r-1' }, {});
    log.debug('not at info');
    log.trace({ token: 'x' }, 'nor this');
    await flush();
    expect(child).not.toHaveBeenCalled();
    expect(lines).toEqual([]);
    expect(log.level).toBe('info');
  });

  it('binds the request id on the first line, once, and redacts as the root does', async () => {
    const { lines, http, child } = capture();
    const log = requestLogger(http, { reqId: 'r-2' }, {});
    log.info({ token: 'secret-token', user: { password: 'pw' }, n: 1 }, 'first');
    log.warn('second %s', 'line');
    await flush();
    expect(child).toHaveBeenCalledTimes(1);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 30, subsystem: 'http', reqId: 'r-2', msg: 'first', n: 1, token: '[redacted]', user: { password: '[redacted]' } });
    expect(lines[1]).toMatchObject({ level: 40, reqId: 'r-2', msg: 'second line' });
    expect(JSON.stringify(lines)).not.toContain('secret-token');
  });

  it('a child of it carries both bindings', async () => {
    const { lines, http } = capture();
    requestLogger(http, { reqId: 'r-3' }, {}).child({ step: 'auth' }).error('failed');
    await flush();
    expect(lines[0]).toMatchObject({ level: 50, reqId: 'r-3', step: 'auth', msg: 'failed' });
  });

  it('a route with its own log level gets its child at once, with that level', async () => {
    const { lines, http, child } = capture();
    const log = requestLogger(http, { reqId: 'r-4' }, { level: 'debug' });
    expect(child).toHaveBeenCalledTimes(1);
    log.debug('visible');
    await flush();
    expect(lines[0]).toMatchObject({ level: 20, reqId: 'r-4', msg: 'visible' });
  });
});
