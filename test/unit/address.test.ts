import { describe, expect, it } from 'vitest';
import { addressKey } from '../../src/limits/address.js';

describe('addressKey: the client an address is limited as', () => {
  it('keeps IPv4 addresses as they are', () => {
    expect(addressKey('203.0.113.7')).toBe('203.0.113.7');
  });

  it('counts a whole IPv6 /64 as one client, however the address is written', () => {
    const key = addressKey('2001:db8:85a3:1:aaaa:bbbb:cccc:dddd');
    expect(key).toBe('2001:db8:85a3:1::/64');
    expect(addressKey('2001:0db8:85a3:0001:0000:0000:0000:0001')).toBe(key);
    expect(addressKey('2001:db8:85a3:1::1')).toBe(key);
    expect(addressKey('2001:DB8:85A3:1:ffff::')).toBe(key);
    expect(addressKey('2001:db8:85a3:1::1%eth0')).toBe(key);
    expect(addressKey('2001:db8:85a3:2::1')).not.toBe(key);
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('2001:db8::')).toBe('2001:db8:0:0::/64');
  });

  it('treats an IPv4-mapped IPv6 address as its IPv4 address', () => {
    expect(addressKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressKey('::ffff:cb00:7107')).toBe('203.0.113.7');
  });

  it('leaves what is not an address alone (a test name, a socket path)', () => {
    expect(addressKey('10.0.0.1')).toBe('10.0.0.1');
    expect(addressKey('unknown')).toBe('unknown');
  });
});
