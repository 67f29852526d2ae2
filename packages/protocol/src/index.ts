export * from './primitives.js';
export * from './errors.js';
export * from './rest.js';
export * from './ws.js';
export * from './keys.js';
