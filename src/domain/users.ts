import type { User } from '@safechat/protocol';
import { NotFoundError } from '../errors.js';
import type { RateLimiter } from '../limits/limiter.js';
import type { Database } from '../storage/db.js';
import { findUserById, findUserByUsername } from '../storage/repositories/users.js';
import { toUser } from './wire.js';

/**
 * The user directory. Looking up someone else (their identity key, whether a name exists) is
 * limited per requester: registration's "username taken" limit would mean little otherwise.
 */
export class UserService {
  constructor(
    private readonly db: Database,
    private readonly limiter: RateLimiter,
  ) {}

  async me(userId: string): Promise<User> {
    return this.find(userId);
  }

  async byId(requesterId: string, id: string): Promise<User> {
    // One's own profile is not a lookup.
    if (id !== requesterId) await this.limiter.consume('userLookupsPerUser', requesterId);
    return this.find(id);
  }

  async byUsername(requesterId: string, username: string): Promise<User> {
    await this.limiter.consume('userLookupsPerUser', requesterId);
    const row = await findUserByUsername(this.db.db, username);
    if (!row) throw new NotFoundError('user not found');
    return toUser(row);
  }

  private async find(id: string): Promise<User> {
    const row = await findUserById(this.db.db, id);
    if (!row) throw new NotFoundError('user not found');
    return toUser(row);
  }
}
