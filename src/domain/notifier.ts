/** Told after a login (token family) or all of a user's logins are revoked, so live sockets close. */
export interface SessionSink {
  sessionsRevoked(userId: string, familyId: string | null): void;
}
