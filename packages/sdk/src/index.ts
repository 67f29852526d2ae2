export * from './crypto/index.js';
export * from './store/index.js';
export * from './client/index.js';
