import type { User } from '@safechat/protocol';
import { NotFoundError } from '../errors.js';
import type { Database } from '../storage/db.js';
import { findUserById, findUserByUsername } from '../storage/repositories/users.js';
import { toUser } from './wire.js';

export class UserService {
  constructor(private readonly db: Database) {}

  async byId(id: string): Promise<User> {
    const row = await findUserById(this.db.db, id);
    if (!row) throw new NotFoundError('user not found');
    return toUser(row);
  }

  async byUsername(username: string): Promise<User> {
    const row = await findUserByUsername(this.db.db, username);
    if (!row) throw new NotFoundError('user not found');
    return toUser(row);
  }
}
