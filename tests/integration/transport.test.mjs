// WebSocket transport driven by Node's `ws` client against the echo test
// broker: subprotocol negotiation, text and binary echo, a large message, and
// the 1 MiB message limit. Run: node --test tests/integration/transport.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { startBroker, REPO } from './harness.mjs';

const require = createRequire(`${REPO}/package.json`);
const WebSocket = require('ws');

let broker;

before(async () => {
  broker = await startBroker({ binary: 'echo-broker' });
});

after(async () => {
  const code = await broker.stop();
  assert.equal(broker.sanitizerReport(), null, broker.log());
  assert.equal(code, 0, `broker exit status\n${broker.log()}`);
});

// Open a client; resolves once open, rejects with the refusal otherwise.
function open(protocols, path = '/') {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(broker.wsUrl(path), protocols);
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body })));
    });
    ws.once('error', reject);
  });
}

// Collect echoed messages until total bytes reach `len` (the echo session
// answers each chunk it is given, so a large message may in principle come
// back in several pieces).
function collect(ws, len) {
  return new Promise((resolve, reject) => {
    const parts = [];
    const kinds = [];
    let total = 0;
    const onMsg = (data, isBinary) => {
      parts.push(Buffer.from(data));
      kinds.push(isBinary);
      total += data.length;
      if (total >= len) { ws.off('message', onMsg); resolve({ data: Buffer.concat(parts), kinds }); }
    };
    ws.on('message', onMsg);
    ws.once('close', (code) => reject(new Error(`closed with ${code} after ${total} bytes`)));
  });
}

function closed(ws) {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

test('subprotocol: the first known token is chosen and echoed', async () => {
  const ws = await open(['nope', 'echo', 'other']);
  assert.equal(ws.protocol, 'echo');
  ws.close();
  await closed(ws);
});

test('subprotocol: only unknown tokens are refused with 400 naming the supported list', async () => {
  await assert.rejects(open(['ECHO', 'ech']), (e) => {
    assert.equal(e.status, 400);
    assert.match(e.body, /\becho\b/);
    return true;
  });
});

test('subprotocol: none offered, the /echo path selects the echo protocol', async () => {
  const ws = await open(undefined, '/echo');
  assert.equal(ws.protocol, '');
  const got = collect(ws, 2);
  ws.send('hi');
  assert.equal((await got).data.toString(), 'hi');
  ws.close();
  await closed(ws);
});

test('text message is echoed as text', async () => {
  const ws = await open(['echo']);
  const msg = 'héllo wörld ✓ 😀';
  const got = collect(ws, Buffer.byteLength(msg));
  ws.send(msg);
  const { data, kinds } = await got;
  assert.equal(data.toString('utf8'), msg);
  assert.deepEqual(kinds, [false]);
  ws.close(1000);
  const c = await closed(ws);
  assert.equal(c.code, 1000);
});

test('binary message is echoed as binary', async () => {
  const ws = await open(['echo']);
  const msg = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x01, 0xc0]);
  const got = collect(ws, msg.length);
  ws.send(msg);
  const { data, kinds } = await got;
  assert.deepEqual(data, msg);
  assert.deepEqual(kinds, [true]);
  ws.close();
  await closed(ws);
});

test('"close" makes the echo session close with 1000 "bye"', async () => {
  const ws = await open(['echo']);
  const c = closed(ws);
  ws.send('close');
  const { code, reason } = await c;
  assert.equal(code, 1000);
  assert.equal(reason, 'bye');
});

test('a 512 KiB message comes back intact', async () => {
  const ws = await open(['echo']);
  const msg = randomBytes(512 * 1024);
  const got = collect(ws, msg.length);
  ws.send(msg);
  const { data } = await got;
  assert.equal(data.length, msg.length);
  assert.ok(data.equals(msg), 'echoed bytes differ');
  ws.close();
  await closed(ws);
});

test('a 1 MiB + 1 message is refused with close 1009', async () => {
  const ws = await open(['echo']);
  ws.on('error', () => {}); // the broker may stop reading mid-message
  const c = closed(ws);
  ws.send(Buffer.alloc(1024 * 1024 + 1, 0x61), { binary: true });
  const { code } = await c;
  assert.equal(code, 1009);
});

test('a message of exactly 1 MiB is accepted', async () => {
  const ws = await open(['echo']);
  const msg = randomBytes(1024 * 1024);
  const got = collect(ws, msg.length);
  ws.send(msg);
  const { data } = await got;
  assert.ok(data.equals(msg), 'echoed bytes differ');
  ws.close();
  await closed(ws);
});

test('the broker still serves a fresh client', async () => {
  const ws = await open(['echo']);
  const got = collect(ws, 5);
  ws.send('fresh');
  assert.equal((await got).data.toString(), 'fresh');
  ws.close();
  await closed(ws);
});
