import { hash, verify } from '@node-rs/argon2';
import { UnavailableError } from '../errors.js';

export interface Argon2Params {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

// @NOTE @node-rs/argon2 exports `Algorithm` as an ambient const enum (unusable under
// isolatedModules); 2 is Argon2id.
const ARGON2ID = 2;

/**
 * Argon2id on the libuv thread pool, never on the event loop. At most `maxInFlight` run at once
 * and `maxQueued` wait; beyond that the caller gets 503, so a login flood cannot queue forever.
 */
export class PasswordHasher {
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  private dummyHash: Promise<string> | null = null;

  constructor(
    private readonly params: Argon2Params,
    private readonly maxInFlight: number,
    private readonly maxQueued = 64,
  ) {}

  hash(password: string): Promise<string> {
    return this.limited(() =>
      hash(password, { algorithm: ARGON2ID as never, memoryCost: this.params.memoryCost, timeCost: this.params.timeCost, parallelism: this.params.parallelism }),
    );
  }

  verify(stored: string, password: string): Promise<boolean> {
    return this.limited(() => verify(stored, password).catch(() => false));
  }

  /** Same work as a real verify, for unknown users, so timing does not reveal who exists. */
  async verifyDummy(password: string): Promise<false> {
    this.dummyHash ??= this.hash('dummy password for timing equalisation');
    await this.verify(await this.dummyHash, password);
    return false;
  }

  /** True when a stored hash is weaker than (or different from) the current policy. */
  needsRehash(stored: string): boolean {
    const m = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(stored);
    if (!m) return true;
    return Number(m[1]) < this.params.memoryCost || Number(m[2]) < this.params.timeCost || Number(m[3]) !== this.params.parallelism;
  }

  private async limited<T>(work: () => Promise<T>): Promise<T> {
    if (this.inFlight >= this.maxInFlight) {
      if (this.waiting.length >= this.maxQueued) throw new UnavailableError('too many logins in progress, retry shortly', 1);
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.inFlight++;
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.inFlight--;
    }
  }
}
