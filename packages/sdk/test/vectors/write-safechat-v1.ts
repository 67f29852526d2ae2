/** Regenerates safechat-v1.json: `npx tsx packages/sdk/test/vectors/write-safechat-v1.ts`. */
import { writeFileSync } from 'node:fs';
import { buildSafeChatV1Vectors } from './safechat-v1.js';

const file = new URL('./safechat-v1.json', import.meta.url);
writeFileSync(file, JSON.stringify(buildSafeChatV1Vectors(), null, 2) + '\n');
console.log(`wrote ${file.pathname}`);
