/**
 * Every rate limit, in one place. A token bucket per (limit, key): `burst` tokens, refilled at
 * `perSec`. Numbers follow SECURITY.md §2.1/§2.5/§2.8 (Signal, Synapse, OWASP), widened where a
 * busy but honest client would otherwise trip them; the README's security section explains each.
 */
export const LIMITS = {
  /** Failed logins per account (consumed only by failures; checked before every attempt). */
  loginFailuresPerAccount: { burst: 5, perSec: 1 / 60 },
  /** Login attempts per client IP (a NAT'd network shares one address; the per-account limit is the tight one). */
  loginPerIp: { burst: 100, perSec: 1 },
  /** Registrations per client IP. */
  registerPerIp: { burst: 100, perSec: 1 / 3 },
  /** "Username taken" answers per client IP: the one place registration reveals who exists. */
  registerTakenPerIp: { burst: 10, perSec: 1 / 30 },
  /** Refreshes per login (token family); refilled faster when access tokens live under 3 minutes (see limitsFor). */
  refreshPerFamily: { burst: 10, perSec: 1 / 60 },
  /** Pre-key bundle claims per requester: draining a user's one-time pre-keys is an attack. */
  keyClaimsPerUser: { burst: 100, perSec: 1 },
  /** Key uploads per user: a client uploads at registration, when its one-time pre-keys run low and when it rotates its signed pre-key. */
  keyUploadsPerUser: { burst: 20, perSec: 1 / 60 },
  /**
   * Identity-key changes per user (a reinstall): each one writes a `key.changed` event to every
   * contact and resets their sessions, so switching between two key sets was a cheap way to flood
   * every contact's log and warnings and to hold the single SQLite writer.
   */
  identityChangesPerUser: { burst: 3, perSec: 1 / 3600 },
  /** Other users looked up (by id or by name) per requester: crawling the directory is an attack too. */
  userLookupsPerUser: { burst: 100, perSec: 1 },
  /**
   * Chats created per user (group chats, and one-to-one chats made on first contact; finding an
   * existing one is free): anyone can put anyone into a chat, so without it one account could
   * bloat other users' chat lists and the database at the general request rate.
   */
  chatsCreatedPerUser: { burst: 100, perSec: 1 / 60 },
  /** Messages per sender, by count and by ciphertext bytes. */
  sendsPerUser: { burst: 300, perSec: 60 },
  sendBytesPerUser: { burst: 16 * 1024 * 1024, perSec: 1024 * 1024 },
  /**
   * Ciphertext bytes per receiver, from each sender: one account cannot pile an unbounded backlog
   * onto a user, and using up its own allowance stops nobody else. 128 MiB, then 128 MiB an hour.
   */
  receiveBytesPerSender: { burst: 128 * 1024 * 1024, perSec: (128 * 1024 * 1024) / 3600 },
  /**
   * Ciphertext bytes per receiver from the senders it has never written to in their chat, all
   * together (Signal's inbound-bytes bucket, for strangers only): many accounts cannot pile an
   * unbounded backlog onto one user, and strangers that use it up cannot silence the people the
   * receiver writes to (decision 0022). 128 MiB, then 128 MiB an hour.
   */
  receiveBytesFromStrangers: { burst: 128 * 1024 * 1024, perSec: (128 * 1024 * 1024) / 3600 },
  /** WebSocket upgrades per client IP. */
  wsConnectsPerIp: { burst: 200, perSec: 5 },
  /** Inbound WebSocket frames per connection. */
  wsFramesPerSocket: { burst: 300, perSec: 100 },
  /** Any other authenticated request, per user. */
  requestsPerUser: { burst: 600, perSec: 100 },
} as const satisfies Record<string, { burst: number; perSec: number }>;

export type LimitName = keyof typeof LIMITS;

export type Limits = Record<LimitName, { burst: number; perSec: number }>;

/**
 * The catalog as this configuration applies it. A client refreshes once per access-token
 * lifetime; with ACCESS_TOKEN_TTL under 3 minutes one refresh a minute would lock an honest client
 * out once its burst is spent, so the refill becomes 3 per lifetime.
 */
export function limitsFor(accessTtlSec: number): Limits {
  const refresh = LIMITS.refreshPerFamily;
  return { ...LIMITS, refreshPerFamily: { burst: refresh.burst, perSec: Math.max(refresh.perSec, 3 / accessTtlSec) } };
}

/** Caps that are counts, not rates. */
export const CAPS = {
  socketsPerUser: 10,
  sessionsPerUser: 10,
  /** Open sockets per client address, authenticated or not (the default of MAX_SOCKETS_PER_IP). */
  socketsPerIp: 100,
} as const;
