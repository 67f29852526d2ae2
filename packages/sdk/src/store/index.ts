export type { IdentityKeyPair, KeyStore, OneTimePreKeyRecord, SessionRecordJSON, SessionStore, SignedPreKeyRecord } from './types.js';
export { MemoryKeyStore, MemorySessionStore } from './memory.js';
