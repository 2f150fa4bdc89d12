// STOMP over WebSocket with @stomp/stompjs (the browser library, here in
// Node with the `ws` package as its WebSocket): connect, subscribe/publish,
// frames split over many WebSocket messages (splitLargeFrames), receipts,
// ack/nack, queues, binary bodies, and an ERROR for a bad destination.
// Run: WSB_BUILD_DIR=<build dir> node --test tests/integration/stomp.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startBroker, REPO } from './harness.mjs';

const require = createRequire(`${REPO}/package.json`);
const WebSocket = require('ws');
const { Client } = require('@stomp/stompjs');

const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];
let broker;

before(async () => {
  broker = await startBroker();
});

after(async () => {
  const code = await broker.stop();
  assert.equal(broker.sanitizerReport(), null, broker.log());
  assert.equal(code, 0, `broker exit status\n${broker.log()}`);
});

// Opens a client; resolves once CONNECTED. `sent` counts WebSocket
// messages the client wrote, `binary` records the type of each one it
// received (stompjs itself hands every body over as bytes too).
function connect({ path = '/stomp', ...opts } = {}) {
  const stats = { sent: 0, binary: [] };
  return new Promise((resolve, reject) => {
    const client = new Client({
      webSocketFactory: () => {
        const ws = new WebSocket(broker.wsUrl(path), SUBPROTOCOLS);
        const send = ws.send.bind(ws);
        ws.send = (data, ...rest) => { stats.sent += 1; return send(data, ...rest); };
        ws.on('message', (data, isBinary) => stats.binary.push(isBinary));
        return ws;
      },
      reconnectDelay: 0,
      debug: () => {},
      ...opts,
    });
    client.onConnect = (frame) => resolve({ client, frame, stats });
    client.onStompError = (frame) => reject(new Error(`ERROR ${frame.headers.message}`));
    client.onWebSocketError = (e) => reject(e);
    client.activate();
  });
}

// A mailbox for a subscription: next() waits for the following message.
function inbox() {
  const items = [];
  const waiters = [];
  return {
    push(m) {
      const w = waiters.shift();
      if (w) w(m); else items.push(m);
    },
    next(timeoutMs = 5000) {
      if (items.length) return Promise.resolve(items.shift());
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no MESSAGE in time')), timeoutMs);
        waiters.push((m) => { clearTimeout(t); resolve(m); });
      });
    },
    async none(ms = 300) {
      await new Promise((r) => setTimeout(r, ms));
      assert.equal(items.length, 0, `unexpected MESSAGE ${items[0] && items[0].body}`);
    },
    get length() { return items.length; },
  };
}

// Resolves when the broker's RECEIPT for id arrives.
function receipt(client, id) {
  return new Promise((resolve) => client.watchForReceipt(id, resolve));
}

let seq = 0;
async function subscribe(client, destination, headers = {}) {
  const box = inbox();
  const id = `r-sub-${++seq}`;
  const got = receipt(client, id);
  const sub = client.subscribe(destination, (m) => box.push(m), { ...headers, receipt: id });
  await got;
  return { box, sub };
}

test('connect over WebSocket, subscribe and publish', async () => {
  const { client: a, frame, stats } = await connect();
  assert.equal(frame.headers.version, '1.2');
  assert.match(frame.headers.server, /^wsbroker\//);
  const { client: b } = await connect({ path: '/' });   // chosen by subprotocol
  const { box } = await subscribe(a, '/topic/chat.room1');
  b.publish({ destination: '/topic/chat.room1', body: 'hello', headers: { 'x-app': 'demo', 'content-type': 'text/plain' } });
  const m = await box.next();
  assert.equal(m.body, 'hello');
  assert.equal(m.headers.destination, '/topic/chat.room1');
  assert.equal(m.headers['x-app'], 'demo');
  assert.equal(m.headers['content-type'], 'text/plain');
  assert.ok(m.headers['message-id']);
  assert.equal(stats.binary.at(-1), false);   // a text body comes as a text message
  await a.deactivate();
  await b.deactivate();
});

test('splitLargeFrames: one frame over many WebSocket messages', async () => {
  const { client: a } = await connect();
  const { client: b, stats } = await connect({ splitLargeFrames: true, maxWebSocketChunkSize: 1024 });
  const { box } = await subscribe(a, '/queue/big');
  const body = Array.from({ length: 200 * 1024 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
  const before = stats.sent;
  const done = receipt(b, 'big-sent');
  b.publish({ destination: '/queue/big', body, headers: { receipt: 'big-sent' } });
  await done;
  assert.ok(stats.sent - before >= 200, `sent in ${stats.sent - before} WebSocket messages`);
  const m = await box.next();
  assert.equal(m.body.length, body.length);
  assert.equal(m.body, body);
  await a.deactivate();
  await b.deactivate();
});

test('receipts', async () => {
  const { client } = await connect();
  const r1 = receipt(client, 'send-1');
  client.publish({ destination: '/topic/receipts', body: 'x', headers: { receipt: 'send-1' } });
  const f = await r1;
  assert.equal(f.headers['receipt-id'], 'send-1');
  await client.deactivate();
});

test('client-individual ack and nack on a queue', async () => {
  const { client: pub } = await connect();
  const { client } = await connect();
  const { box, sub } = await subscribe(client, '/queue/jobs', { ack: 'client-individual' });
  pub.publish({ destination: '/queue/jobs', body: 'job-1' });
  const first = await box.next();
  assert.equal(first.body, 'job-1');
  assert.equal(first.headers.redelivered, undefined);
  first.nack();
  const again = await box.next();
  assert.equal(again.body, 'job-1');
  assert.equal(again.headers.redelivered, 'true');
  const acked = receipt(client, 'ack-1');
  again.ack({ receipt: 'ack-1' });
  await acked;
  sub.unsubscribe();
  // acknowledged: another consumer finds the queue empty
  const { client: other } = await connect();
  const { box: obox } = await subscribe(other, '/queue/jobs');
  await obox.none();
  await Promise.all([pub.deactivate(), client.deactivate(), other.deactivate()]);
});

test('client ack: what was not acknowledged goes to the next consumer', async () => {
  const { client: pub } = await connect();
  const { client: a } = await connect();
  const { box } = await subscribe(a, '/queue/handoff', { ack: 'client' });
  for (const n of [1, 2, 3]) pub.publish({ destination: '/queue/handoff', body: `m${n}` });
  const got = [await box.next(), await box.next(), await box.next()];
  const acked = receipt(a, 'cum');
  got[1].ack({ receipt: 'cum' });   // cumulative: m1 and m2
  await acked;
  await a.deactivate();
  const { client: b } = await connect();
  const { box: bbox } = await subscribe(b, '/queue/handoff');
  const m = await bbox.next();
  assert.equal(m.body, 'm3');
  assert.equal(m.headers.redelivered, 'true');
  await bbox.none();
  await Promise.all([pub.deactivate(), b.deactivate()]);
});

test('queue: competing consumers take turns', async () => {
  const { client: a } = await connect();
  const { client: b } = await connect();
  const { client: pub } = await connect();
  const { box: abox } = await subscribe(a, '/queue/work');
  const { box: bbox } = await subscribe(b, '/queue/work');
  for (let i = 0; i < 6; i++) pub.publish({ destination: '/queue/work', body: `job ${i}` });
  const bodies = [];
  for (let i = 0; i < 3; i++) bodies.push((await abox.next()).body, (await bbox.next()).body);
  assert.deepEqual(bodies.sort(), [0, 1, 2, 3, 4, 5].map((i) => `job ${i}`));
  await abox.none(100);
  await bbox.none(0);
  await Promise.all([a.deactivate(), b.deactivate(), pub.deactivate()]);
});

test('binary body travels as a binary WebSocket message', async () => {
  const { client: a, stats } = await connect();
  const { client: b } = await connect();
  const { box } = await subscribe(a, '/topic/bin');
  const bytes = new Uint8Array([0xff, 0x00, 0xfe, 0x80, 0x00, 0x41]);
  b.publish({ destination: '/topic/bin', binaryBody: bytes, headers: { 'content-type': 'application/octet-stream' } });
  const m = await box.next();
  assert.equal(stats.binary.at(-1), true);
  assert.deepEqual(Array.from(m.binaryBody), Array.from(bytes));
  await a.deactivate();
  await b.deactivate();
});

test('several frames in one WebSocket message', async () => {
  const ws = new WebSocket(broker.wsUrl('/stomp'), ['v12.stomp']);
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const frames = [];
  let buf = '';
  ws.on('message', (d) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\0')) >= 0) {
      frames.push(buf.slice(0, i).replace(/^\n+/, ''));
      buf = buf.slice(i + 1);
    }
  });
  ws.send('CONNECT\naccept-version:1.2\nhost:x\n\n\0SUBSCRIBE\nid:0\ndestination:/queue/multi\n\n\0'
    + 'SEND\ndestination:/queue/multi\n\nfirst\0SEND\ndestination:/queue/multi\nreceipt:r\n\nsecond\0');
  const deadline = Date.now() + 5000;
  while (frames.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(frames.length, 4, JSON.stringify(frames));
  assert.match(frames[0], /^CONNECTED\n/);
  assert.match(frames[1], /^MESSAGE\n[\s\S]*\n\nfirst$/);
  assert.match(frames[2], /^MESSAGE\n[\s\S]*\n\nsecond$/);
  assert.match(frames[3], /^RECEIPT\nreceipt-id:r\n/);
  ws.close();
});

test('a bad destination gets an ERROR, and the broker carries on', async () => {
  const { client } = await connect();
  const err = new Promise((resolve) => { client.onStompError = resolve; });
  client.subscribe('/exchange/amq.topic', () => {});
  const frame = await err;
  assert.equal(frame.headers.message, 'unsupported destination');
  assert.match(frame.body, /\/topic\/<name>/);
  await client.deactivate();
  const { client: fresh } = await connect();
  const { box } = await subscribe(fresh, '/topic/after');
  fresh.publish({ destination: '/topic/after', body: 'ok' });
  assert.equal((await box.next()).body, 'ok');
  await fresh.deactivate();
});
