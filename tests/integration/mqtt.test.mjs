// MQTT over WebSocket with MQTT.js (npm `mqtt`), protocolVersion 4 (3.1.1)
// and 3 (3.1), against the spawned broker; STOMP.js (@stomp/stompjs over
// `ws`) for the round trips between the two protocols. Misbehaviour that
// MQTT.js will not produce (a killed socket, silence past the keepalive) goes
// through a bare `ws` connection carrying hand-made packets.
// Run: node --test tests/integration/mqtt.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startBroker, REPO } from './harness.mjs';

const require = createRequire(`${REPO}/package.json`);
const mqtt = require('mqtt');
const WebSocket = require('ws');
const { Client: StompClient } = require('@stomp/stompjs');

const WAIT_MS = 5000;
const QUIET_MS = 300;
const VERSIONS = [4, 3];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let broker;
let seq = 0;

before(async () => {
  broker = await startBroker();
});

after(async () => {
  for (const c of opened) c.end(true);
  const code = await broker.stop();
  assert.equal(broker.sanitizerReport(), null, broker.log());
  assert.equal(code, 0, `broker exit status\n${broker.log()}`);
});

// ---- MQTT.js clients with an inbox ----

const opened = new Set();

// Connected client; c.connack is the broker's CONNACK.
async function client(version, opts = {}) {
  const c = mqtt.connect(broker.wsUrl('/mqtt'), {
    protocolVersion: version,
    protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
    clientId: `js${version}-${++seq}`,
    reconnectPeriod: 0,
    connectTimeout: WAIT_MS,
    ...opts,
  });
  // Listening before the CONNACK: a resumed session's messages follow it
  // in the same read.
  c.inbox = [];
  c.waiters = [];
  c.on('message', (topic, payload, packet) => {
    const m = { topic, payload, qos: packet.qos, retain: packet.retain };
    const w = c.waiters.shift();
    if (w) w(m); else c.inbox.push(m);
  });
  c.connack = await new Promise((resolve, reject) => {
    c.once('connect', resolve);
    c.once('error', reject);
  });
  opened.add(c);
  return c;
}

function next(c, ms = WAIT_MS) {
  if (c.inbox.length) return Promise.resolve(c.inbox.shift());
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms);
    c.waiters.push((m) => { clearTimeout(t); resolve(m); });
  });
}

async function nextN(c, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await next(c));
  return out;
}

async function expectNone(c) {
  await sleep(QUIET_MS);
  assert.equal(c.inbox.length, 0, `unexpected: ${c.inbox.map((m) => m.topic)}`);
}

async function end(...cs) {
  for (const c of cs) {
    opened.delete(c);
    await c.endAsync();
  }
}

// ---- hand-made packets over a bare WebSocket ----

function str(s) {
  const b = Buffer.from(s);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

function remlen(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}

function connectPacket(version, clientId, keepalive, will) {
  const name = version === 3 ? 'MQIsdp' : 'MQTT';
  let flags = 0x02;
  let payload = str(clientId);
  if (will) {
    flags |= 0x04 | (will.qos << 3);
    payload = Buffer.concat([payload, str(will.topic), str(will.payload)]);
  }
  const ka = Buffer.alloc(2);
  ka.writeUInt16BE(keepalive);
  const body = Buffer.concat([str(name), Buffer.from([version, flags]), ka, payload]);
  return Buffer.concat([Buffer.from([0x10]), remlen(body.length), body]);
}

// Resolves with the socket once the CONNACK came; `closed` resolves when
// the broker ends the connection.
function rawConnect(version, clientId, keepalive, will) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(broker.wsUrl('/mqtt'), [version === 3 ? 'mqttv3.1' : 'mqtt']);
    ws.closed = new Promise((r) => ws.once('close', (code) => r(code)));
    ws.once('error', reject);
    ws.once('open', () => ws.send(connectPacket(version, clientId, keepalive, will)));
    ws.once('message', (data) => {
      assert.deepEqual([...data], [0x20, 2, 0, 0]);
      resolve(ws);
    });
  });
}

// ---- the tests, once per protocol version ----

for (const v of VERSIONS) {
  test(`v${v}: QoS 0, 1 and 2 round trips, QoS = min(publish, subscription)`, async () => {
    const sub = await client(v);
    const pub = await client(v);
    const granted = await sub.subscribeAsync('rt/#', { qos: 2 });
    assert.equal(granted[0].qos, 2);
    for (const qos of [0, 1, 2]) {
      await pub.publishAsync(`rt/q${qos}`, Buffer.from([qos, 0, 255]), { qos });
      const m = await next(sub);
      assert.equal(m.topic, `rt/q${qos}`);
      assert.deepEqual([...m.payload], [qos, 0, 255]);
      assert.equal(m.qos, qos);
      assert.equal(m.retain, false);
    }
    await sub.subscribeAsync('low/+', { qos: 1 });
    await pub.publishAsync('low/x', 'two', { qos: 2 });
    const m = await next(sub);
    assert.equal(m.qos, 1);
    await expectNone(sub);
    await end(sub, pub);
  });

  test(`v${v}: 500 QoS 2 messages arrive exactly once, in order`, async () => {
    const sub = await client(v);
    const pub = await client(v);
    await sub.subscribeAsync('eo', { qos: 2 });
    await Promise.all(Array.from({ length: 500 }, (_, i) => pub.publishAsync('eo', `${i}`, { qos: 2 })));
    const got = (await nextN(sub, 500)).map((m) => Number(m.payload.toString()));
    assert.deepEqual(got, Array.from({ length: 500 }, (_, i) => i));
    await expectNone(sub);
    await end(sub, pub);
  });

  test(`v${v}: 1,000 messages in order and a 256 KiB payload`, async () => {
    const sub = await client(v);
    const pub = await client(v);
    await sub.subscribeAsync(['order', 'big'], { qos: 1 });
    await Promise.all(Array.from({ length: 1000 }, (_, i) => pub.publishAsync('order', `${i}`, { qos: 1 })));
    const got = (await nextN(sub, 1000)).map((m) => Number(m.payload.toString()));
    assert.deepEqual(got, Array.from({ length: 1000 }, (_, i) => i));
    const big = Buffer.alloc(256 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
    await pub.publishAsync('big', big, { qos: 1 });
    const m = await next(sub);
    assert.equal(m.payload.length, big.length);
    assert.ok(m.payload.equals(big));
    await end(sub, pub);
  });

  test(`v${v}: retained message to a late subscriber, then cleared`, async () => {
    const pub = await client(v);
    const topic = `ret${v}/a`;
    await pub.publishAsync(topic, 'kept', { qos: 1, retain: true });
    const late = await client(v);
    await late.subscribeAsync(`ret${v}/#`, { qos: 1 });
    const m = await next(late);
    assert.deepEqual([m.topic, m.payload.toString(), m.retain], [topic, 'kept', true]);
    await pub.publishAsync(topic, '', { qos: 1, retain: true });
    assert.equal((await next(late)).payload.length, 0);
    const later = await client(v);
    await later.subscribeAsync(`ret${v}/#`, { qos: 1 });
    await expectNone(later);
    await end(pub, late, later);
  });

  test(`v${v}: will published on a killed socket, not after DISCONNECT`, async () => {
    const watch = await client(v);
    await watch.subscribeAsync(`will${v}/#`, { qos: 1 });
    const ws = await rawConnect(v, `dying${v}`, 60, { topic: `will${v}/dying`, payload: 'gone', qos: 1 });
    ws._socket.destroy();
    const m = await next(watch);
    assert.deepEqual([m.topic, m.payload.toString(), m.qos], [`will${v}/dying`, 'gone', 1]);
    const polite = await client(v, { will: { topic: `will${v}/polite`, payload: 'no', qos: 1 } });
    await end(polite);
    await expectNone(watch);
    await end(watch);
  });

  test(`v${v}: persistent session catches up after reconnect`, async () => {
    const id = `persist${v}`;
    let p = await client(v, { clientId: id, clean: false });
    await p.subscribeAsync(`persist${v}/#`, { qos: 1 });
    await end(p);
    const pub = await client(v);
    for (let i = 0; i < 5; i++) await pub.publishAsync(`persist${v}/x`, `away ${i}`, { qos: 1 });
    p = await client(v, { clientId: id, clean: false });
    // 3.1 has no session-present flag.
    assert.equal(p.connack.sessionPresent, v === 4);
    const got = (await nextN(p, 5)).map((m) => m.payload.toString());
    assert.deepEqual(got, [0, 1, 2, 3, 4].map((i) => `away ${i}`));
    await end(p, pub);
  });

  test(`v${v}: a second connection with the same client id takes over`, async () => {
    const id = `twin${v}`;
    const old = await client(v, { clientId: id });
    const oldClosed = new Promise((r) => old.once('close', r));
    const fresh = await client(v, { clientId: id });
    await oldClosed;
    await fresh.subscribeAsync(`twin${v}`, { qos: 0 });
    await fresh.publishAsync(`twin${v}`, 'still here');
    assert.equal((await next(fresh)).payload.toString(), 'still here');
    opened.delete(old);
    await end(fresh);
  });

  test(`v${v}: wildcard and $ rules`, async () => {
    const sub = await client(v);
    const pub = await client(v);
    await sub.subscribeAsync({ '#': { qos: 0 }, 'sport/+/score': { qos: 0 }, '+/x': { qos: 0 } });
    for (const t of ['sport/tennis/score', 'sport/tennis/player', 'a/x', '$foo/x']) {
      await pub.publishAsync(t, t, { qos: 1 });
    }
    const got = (await nextN(sub, 3)).map((m) => m.topic).sort();
    assert.deepEqual(got, ['a/x', 'sport/tennis/player', 'sport/tennis/score']);
    await expectNone(sub);
    await sub.subscribeAsync('$foo/+', { qos: 0 });
    await pub.publishAsync('$foo/x', 'seen', { qos: 1 });
    assert.equal((await next(sub)).topic, '$foo/x');
    await end(sub, pub);
  });
}

test('keepalive: silence past 1.5 x keepalive closes and publishes the will (v4 and v3)', async () => {
  const watch = await client(4);
  await watch.subscribeAsync('ka/#', { qos: 0 });
  const t0 = Date.now();
  const socks = await Promise.all(VERSIONS.map((v) => rawConnect(v, `sleeper${v}`, 1,
    { topic: `ka/sleeper${v}`, payload: 'timed out', qos: 0 })));
  await Promise.all(socks.map((ws) => ws.closed));
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 1200 && elapsed < 3500, `closed after ${elapsed} ms`);
  const topics = (await nextN(watch, 2)).map((m) => m.topic).sort();
  assert.deepEqual(topics, ['ka/sleeper3', 'ka/sleeper4']);
  await end(watch);
});

// ---- MQTT <-> STOMP ----

async function stompClient() {
  const sc = new StompClient({
    webSocketFactory: () => new WebSocket(broker.wsUrl('/stomp'), ['v12.stomp']),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
  });
  await new Promise((resolve, reject) => {
    sc.onConnect = resolve;
    sc.onStompError = (f) => reject(new Error(f.headers.message));
    sc.onWebSocketError = reject;
    sc.activate();
  });
  return sc;
}

function receipt(sc, id) {
  return new Promise((resolve) => sc.watchForReceipt(id, resolve));
}

test('MQTT publish reaches STOMP subscribers of /topic/chat.room1, chat.* and chat.#', async () => {
  const sc = await stompClient();
  const frames = [];
  let wake;
  for (const [i, dest] of ['/topic/chat.room1', '/topic/chat.*', '/topic/chat.#'].entries()) {
    const r = receipt(sc, `s${i}`);
    sc.subscribe(dest, (msg) => { frames.push(msg); if (wake) wake(); }, { id: `sub${i}`, receipt: `s${i}` });
    await r;
  }
  const pub = await client(4);
  const body = 'héllo ☃ from MQTT';
  await pub.publishAsync('chat/room1', body, { qos: 1 });
  const deadline = Date.now() + WAIT_MS;
  while (frames.length < 3 && Date.now() < deadline) {
    await new Promise((r) => { wake = r; setTimeout(r, 100); });
  }
  assert.equal(frames.length, 3);
  assert.deepEqual(frames.map((f) => f.headers.subscription).sort(), ['sub0', 'sub1', 'sub2']);
  for (const f of frames) {
    assert.equal(f.headers.destination, '/topic/chat.room1');
    assert.equal(f.body, body);
  }
  await end(pub);
  await sc.deactivate();
});

test('STOMP SEND reaches MQTT subscribers of chat/room1, chat/+ and #, bytes unchanged', async () => {
  const subs = [];
  for (const [i, f] of ['chat/room1', 'chat/+', '#'].entries()) {
    const c = await client(i === 1 ? 3 : 4);
    await c.subscribeAsync(f, { qos: 1 });
    subs.push(c);
  }
  const sc = await stompClient();
  const bytes = new Uint8Array([0, 1, 2, 0xff, 0xfe, 0x80, 10, 0]);
  const r = receipt(sc, 'sent');
  sc.publish({ destination: '/topic/chat.room1', binaryBody: bytes, headers: { receipt: 'sent' } });
  await r;
  for (const c of subs) {
    const m = await next(c);
    assert.equal(m.topic, 'chat/room1');
    assert.deepEqual([...m.payload], [...bytes]);
  }
  await end(...subs);
  await sc.deactivate();
});
