import { randomFillSync } from 'node:crypto';

// Random bytes drawn from a pool refilled 4 KiB at a time: one syscall per ~400 ids, not per id.
const POOL = Buffer.alloc(4096);
let offset = POOL.length;

function random10(): Buffer {
  if (offset + 10 > POOL.length) {
    randomFillSync(POOL);
    offset = 0;
  }
  offset += 10;
  return POOL.subarray(offset - 10, offset);
}

/**
 * UUIDv7 (RFC 9562 §5.7): 48-bit Unix milliseconds, then random bits. Time-ordered ids keep
 * B-tree inserts at the right edge and make "newer" comparable without a second column.
 */
export function uuidv7(nowMs: number = Date.now()): string {
  const b = Buffer.allocUnsafe(16);
  b.writeUIntBE(nowMs, 0, 6);
  random10().copy(b, 6);
  b[6] = 0x70 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
