import { isIPv4, isIPv6 } from 'node:net';

/**
 * The key a client address is limited under. An IPv6 client usually holds a whole /64 (one per
 * home or phone on mobile carriers), so every address in it counts as one client; an IPv4-mapped
 * IPv6 address is its IPv4 address.
 */
export function addressKey(ip: string): string {
  const bare = ip.split('%')[0]!;
  if (!isIPv6(bare)) return ip;
  const groups = expandIPv6(bare);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const v4 = bare.slice(bare.lastIndexOf(':') + 1);
    if (isIPv4(v4)) return v4;
    const hi = groups[6]!, lo = groups[7]!;
    return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (with `::` and a dotted IPv4 tail expanded). */
function expandIPv6(ip: string): number[] {
  let text = ip;
  const dotted = text.lastIndexOf('.') > 0 ? text.slice(text.lastIndexOf(':') + 1) : null;
  if (dotted !== null) {
    const [a, b, c, d] = dotted.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, text.lastIndexOf(':') + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, null];
  const parse = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const left = parse(head);
  if (tail === null) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
