// STOMP.js (@stomp/stompjs over `ws`) and MQTT.js over wss:// (and MQTT.js
// over mqtts://) against a broker with a certificate made by the
// `openssl` command (pki.mjs); the clients trust only that test CA, and check the
// certificate's name (localhost) as a browser would.
// Run: node --test tests/integration/tls.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startBroker, REPO } from './harness.mjs';
import { makeTestPki } from './pki.mjs';

const require = createRequire(`${REPO}/package.json`);
const mqtt = require('mqtt');
const WebSocket = require('ws');
const { Client: StompClient } = require('@stomp/stompjs');

const WAIT_MS = 5000;
let broker;
let pki;
let ca;

before(async () => {
  pki = makeTestPki({ name: 'wsbroker node test CA' });
  ca = pki.caPem;
  broker = await startBroker({
    // The harness wants a ws or auto listener for its wsUrl.
    args: ['--listen', '127.0.0.1:0/wss', '--listen', '127.0.0.1:0/mqtts', '--listen', '127.0.0.1:0/auto'],
    configText: `tls_cert ${pki.certFile}\ntls_key ${pki.keyFile}\n`,
  });
});

after(async () => {
  const code = await broker.stop();
  pki.remove();
  assert.equal(broker.sanitizerReport(), null, broker.log());
  assert.equal(code, 0, `broker exit status\n${broker.log()}`);
});

async function within(p, what) {
  let timer;
  const late = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what} not within ${WAIT_MS} ms\n${broker.log()}`)), WAIT_MS);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function mqttClient(url) {
  const c = mqtt.connect(url, { ca, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: WAIT_MS });
  await within(new Promise((res, rej) => { c.once('connect', res); c.once('error', rej); }), 'CONNACK');
  return c;
}

async function stompClient() {
  const url = `wss://localhost:${broker.ports.wss}/stomp`;
  const sc = new StompClient({
    webSocketFactory: () => new WebSocket(url, ['v12.stomp'], { ca }),
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
  });
  await within(new Promise((resolve, reject) => {
    sc.onConnect = resolve;
    sc.onStompError = (f) => reject(new Error(f.headers.message));
    sc.onWebSocketError = () => reject(new Error('WebSocket error'));
    sc.activate();
  }), 'STOMP CONNECTED');
  return sc;
}

test('STOMP.js over wss:// round trip', async () => {
  const sc = await stompClient();
  const got = new Promise((res) => sc.subscribe('/topic/tls.stomp', (m) => res(m.body)));
  // The SUBSCRIBE is ahead of the SEND on the same connection.
  sc.publish({ destination: '/topic/tls.stomp', body: 'over wss' });
  assert.equal(await within(got, 'MESSAGE'), 'over wss');
  await sc.deactivate();
});

test('MQTT.js over wss:// and mqtts://, and across to STOMP.js', async () => {
  const sub = await mqttClient(`wss://localhost:${broker.ports.wss}/mqtt`);
  const pub = await mqttClient(`mqtts://localhost:${broker.ports.mqtts}`);
  await new Promise((res, rej) => sub.subscribe('tls/mqtt', { qos: 1 }, (e) => (e ? rej(e) : res())));
  const got = new Promise((res) => sub.once('message', (t, p) => res([t, p.toString()])));
  pub.publish('tls/mqtt', 'from mqtts', { qos: 1 });
  assert.deepEqual(await within(got, 'PUBLISH'), ['tls/mqtt', 'from mqtts']);

  const sc = await stompClient();
  const toStomp = new Promise((res) => sc.subscribe('/topic/tls.cross', (m) => res(m.body)));
  // A receipt says the SUBSCRIBE is in place before MQTT publishes.
  await within(new Promise((res) => {
    sc.watchForReceipt('sub-ready', res);
    sc.publish({ destination: '/topic/tls.noop', body: '', headers: { receipt: 'sub-ready' } });
  }), 'RECEIPT');
  pub.publish('tls/cross', 'mqtt to stomp', { qos: 0 });
  assert.equal(await within(toStomp, 'MESSAGE'), 'mqtt to stomp');
  await sc.deactivate();
  await Promise.all([sub.endAsync(), pub.endAsync()]);
});

test('a client that does not trust the certificate is refused by itself', async () => {
  const c = mqtt.connect(`wss://localhost:${broker.ports.wss}/mqtt`,
    { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: WAIT_MS });
  const err = await within(new Promise((res) => c.once('error', res)), 'certificate error');
  assert.match(String(err.code || err.message), /SELF_SIGNED|UNABLE_TO|self.signed|unable to/i);
  c.end(true);
});
