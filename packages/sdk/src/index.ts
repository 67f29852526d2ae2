export * from './crypto/index.js';
export * from './store/index.js';
