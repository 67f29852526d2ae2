/** What to tell a person about a failure. */
import { ApiError, IdentityMismatchError } from '@safechat/sdk';

export function describeError(err: unknown, context: 'login' | 'register' | 'find' | 'send' | 'other' = 'other'): string {
  if (err instanceof ApiError) {
    switch (err.code) {
      case 'network_error':
      case 'timeout':
      case 'not_connected':
        return 'Cannot reach the server. Check your connection and try again.';
      case 'rate_limited':
        return `Too many attempts. Try again in ${err.retryAfter ?? 30} seconds.`;
      case 'unauthorized':
        return context === 'login' ? 'Wrong username or password.' : 'Your session has ended. Please log in again.';
      case 'conflict':
        return context === 'register' ? 'That username is taken. Choose another one.' : err.message;
      case 'not_found':
        return context === 'find' ? 'Nobody has that username. Check the spelling: it must be exact.' : 'Not found.';
      case 'payload_too_large':
        return 'That message is too long.';
      case 'validation_error':
        return capitalise(err.message);
      case 'unavailable':
        return 'The server is busy or restarting. Try again in a moment.';
      default:
        return capitalise(err.message || 'Something went wrong.');
    }
  }
  if (err instanceof IdentityMismatchError) {
    return 'This contact’s keys are changing right now. Try again in a moment.';
  }
  return err instanceof Error ? capitalise(err.message) : 'Something went wrong.';
}

function capitalise(s: string): string {
  return s.length > 0 ? s[0]!.toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? '' : '.') : s;
}
