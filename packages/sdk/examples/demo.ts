/**
 * Two users exchange end-to-end encrypted messages through a running Safe Chat server.
 *
 *   npm start                                   # in another terminal (default settings are fine)
 *   node --import tsx packages/sdk/examples/demo.ts [--url http://127.0.0.1:3000]
 *
 * Each side registers (a fresh identity key, a signed pre-key and 100 one-time pre-keys are made
 * and uploaded), connects the WebSocket, and they talk: the first message sets up the session
 * (X3DH) while Bob is offline, the rest ride the Double Ratchet. For every message the demo prints
 * what the server stores (ciphertext) and what the receiver decrypts, then the safety number each
 * side computes. Exits 0 when every message arrived intact and both safety numbers agree.
 */
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { SafeChatClient, type Plaintext } from '@safechat/sdk';

const TIMEOUT_MS = 30_000;

function parseUrl(argv: string[]): string {
  const i = argv.findIndex((a) => a === '--url' || a.startsWith('--url='));
  if (i === -1) return 'http://127.0.0.1:3000';
  const value = argv[i]!.includes('=') ? argv[i]!.slice('--url='.length) : argv[i + 1];
  if (!value || !/^https?:\/\//.test(value)) throw new Error('--url needs an http(s) URL, e.g. --url http://127.0.0.1:3000');
  return value.replace(/\/+$/, '');
}

function short(b64: string, n = 32): string {
  return b64.length > n ? `${b64.slice(0, n)}… (${b64.length} chars)` : b64;
}

/** Resolves with the next decrypted message `c` receives. */
function nextMessage(c: SafeChatClient): Promise<Plaintext> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no message arrived within 10 s')), 10_000);
    const offOk = c.on('message', ({ plaintext }) => {
      clearTimeout(timer);
      offOk();
      offBad();
      resolve(plaintext);
    });
    const offBad = c.on('undecryptable', ({ error }) => {
      clearTimeout(timer);
      offOk();
      offBad();
      reject(new Error(`a message could not be decrypted: ${String(error)}`));
    });
  });
}

async function main(): Promise<void> {
  const baseUrl = parseUrl(process.argv.slice(2));
  const make = () => new SafeChatClient({ baseUrl, WebSocket });
  const alice = make();
  const bob = make();

  try {
    await alice.api.health();
  } catch {
    throw new Error(`no Safe Chat server answers at ${baseUrl} (start one with \`npm start\`, or pass --url)`);
  }

  const tag = randomBytes(3).toString('hex');
  const password = () => `demo-${randomBytes(12).toString('base64url')}`;
  await alice.register(`alice_${tag}`, password());
  await bob.register(`bob_${tag}`, password());
  console.log(`server   ${baseUrl}`);
  console.log(`alice    ${alice.user!.username}  id ${alice.user!.id}`);
  console.log(`bob      ${bob.user!.username}  id ${bob.user!.id}`);
  console.log('');

  await alice.connect();
  const names = new Map([
    [alice, 'alice'],
    [bob, 'bob'],
  ]);
  const script: [SafeChatClient, SafeChatClient, string][] = [
    [alice, bob, 'Hi Bob! This is the first message: X3DH while you were offline.'],
    [bob, alice, 'Hi Alice, got it. Every message has its own key now.'],
    [alice, bob, 'The server only ever sees ciphertext 🔐'],
    [bob, alice, 'And a MAC over sender, receiver and chat.'],
    [alice, bob, 'Let us compare safety numbers.'],
    [bob, alice, 'Done. Bye!'],
  ];

  let bobOnline = false;
  for (const [from, to, text] of script) {
    const arrival = nextMessage(to);
    const sent = await from.sendText(to.user!.id, text);
    if (!bobOnline) {
      // Bob comes online only after the first message was stored: he gets it by resuming.
      await bob.connect();
      bobOnline = true;
    }
    const got = await arrival;
    const ok = got.type === 'text' && got.body === text;
    console.log(`${names.get(from)} → ${names.get(to)}  [${sent.message.type}]  stored ciphertext: ${short(sent.message.encryptedContent)}`);
    console.log(`${''.padStart(names.get(from)!.length)}   ${names.get(to)} decrypted: ${JSON.stringify(got.body)} ${ok ? '✓' : '✗ MISMATCH'}`);
    if (!ok) throw new Error('a message did not arrive intact');
  }

  const a = await alice.safetyNumber(bob.user!.id);
  const b = await bob.safetyNumber(alice.user!.id);
  console.log('');
  console.log(`safety number (alice's view)  ${a}`);
  console.log(`safety number (bob's view)    ${b}`);
  if (a !== b) throw new Error('the safety numbers differ: a man in the middle, or a bug');
  console.log('the safety numbers match ✓');

  await alice.logout();
  await bob.logout();
}

const deadline = setTimeout(() => {
  console.error(`demo: gave up after ${TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, TIMEOUT_MS);

main().then(
  () => {
    clearTimeout(deadline);
    process.exit(0);
  },
  (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
