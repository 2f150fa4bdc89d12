// STOMP.js and MQTT.js in Chromium over wss:// against a broker whose
// certificate comes from a CA made here with `openssl`. Chromium is told to
// trust exactly the server's key (--ignore-certificate-errors-spki-list with
// its SPKI pin); a Chromium started without that flag must fail to connect,
// which shows the pin is what makes the first one work.
// Messages cross protocols and transports: Node publishes over mqtts:// to
// the page's STOMP.js subscriber, and over wss:// with STOMP to the page's
// MQTT.js subscriber.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { startBroker, REPO } from '../integration/harness.mjs';
import { launchChromium, serveStatic } from './browser.mjs';
import { makeTestPki } from '../integration/pki.mjs';

const require = createRequire(`${REPO}/package.json`);
const mqtt = require('mqtt');
const WebSocket = require('ws');
const { Client: StompClient } = require('@stomp/stompjs');

const WAIT_MS = 8000;
let pki;
let broker;
let web;

before(async () => {
  pki = makeTestPki({ name: 'wsbroker browser test CA' });
  broker = await startBroker({
    // The auto listener is there because the harness wants a ws or auto one.
    args: ['--listen', '127.0.0.1:0/wss', '--listen', '127.0.0.1:0/mqtts', '--listen', '127.0.0.1:0/auto'],
    configText: `tls_cert ${pki.certFile}\ntls_key ${pki.keyFile}\n`,
  });
  web = await serveStatic();
});

after(async () => {
  web?.close();
  const code = await broker?.stop();
  pki?.remove();
  if (broker) {
    assert.equal(broker.sanitizerReport(), null, broker.log());
    assert.equal(code, 0, `broker exit status\n${broker.log()}`);
  }
});

async function within(p, what, logs = []) {
  let timer;
  const late = new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error(
      `${what} not within ${WAIT_MS} ms\npage console:\n${logs.join('\n')}\nbroker log:\n${broker.log().slice(-4000)}`)), WAIT_MS);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

// Open wss.html in a new page; ready resolves when the page's clients are
// connected and subscribed, done with the page's result.
async function openPage(browser) {
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(m.text()));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  let ready;
  let done;
  const readyP = new Promise((res) => { ready = res; });
  const doneP = new Promise((res) => { done = res; });
  await page.exposeFunction('wsbReady', () => ready());
  await page.exposeFunction('wsbDone', (r) => done(r));
  const wss = `wss://127.0.0.1:${broker.ports.wss}`;
  await page.goto(`http://127.0.0.1:${web.address().port}/wss.html?wss=${encodeURIComponent(wss)}`);
  return { page, logs, wss, ready: readyP, done: doneP };
}

function brokerLines(re) {
  return broker.log().split('\n').filter((l) => re.test(l));
}

// Resolve with the broker's new log lines matching re once `count` of them
// follow the first `before`; the log grows as the broker writes, so look
// again every 20 ms until they are there or WAIT_MS has passed.
async function brokerLogged(re, before, count) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const lines = brokerLines(re);
    if (lines.length >= before + count) return lines.slice(before);
    if (Date.now() > deadline) throw new Error(`no new log line ${re} within ${WAIT_MS} ms\n${broker.log().slice(-3000)}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

test('the SPKI pin is the one the openssl pipeline in docs/security.md prints', () => {
  const pipeline = `openssl x509 -in '${pki.certFile}' -pubkey -noout | openssl pkey -pubin -outform der `
    + '| openssl dgst -sha256 -binary | base64';
  assert.equal(execFileSync('sh', ['-c', pipeline]).toString().trim(), pki.serverSpki);
});

test('Chromium trusting the server key by its SPKI pin: STOMP.js and MQTT.js over wss://', { timeout: 30000 }, async () => {
  const browser = await launchChromium([`--ignore-certificate-errors-spki-list=${pki.serverSpki}`]);
  let pub;
  let sender;
  try {
    const { logs, ready, done } = await openPage(browser);
    const early = await within(Promise.race([ready.then(() => null), done]), 'page connected and subscribed', logs);
    assert.equal(early, null, `the page failed before subscribing: ${JSON.stringify(early)}\n${logs.join('\n')}`);

    // Node publishes over its own TLS connections, trusting the same test CA.
    pub = mqtt.connect(`mqtts://127.0.0.1:${broker.ports.mqtts}`,
      { ca: pki.caPem, protocolVersion: 4, reconnectPeriod: 0, clientId: 'node-publisher' });
    await within(new Promise((res, rej) => { pub.once('connect', res); pub.once('error', rej); }), 'Node MQTT CONNACK');
    await pub.publishAsync('wss/to/stomp', 'from Node over mqtts', { qos: 1 });

    sender = new StompClient({
      webSocketFactory: () => new WebSocket(`wss://127.0.0.1:${broker.ports.wss}/stomp`, ['v12.stomp'], { ca: pki.caPem }),
      reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0,
    });
    await within(new Promise((res, rej) => {
      sender.onConnect = res;
      sender.onStompError = (f) => rej(new Error(f.headers.message));
      sender.onWebSocketError = () => rej(new Error('Node STOMP.js: WebSocket error'));
      sender.activate();
    }), 'Node STOMP CONNECTED');
    sender.publish({ destination: '/topic/wss.to.mqtt', body: 'from Node over wss' });

    const r = await within(done, 'messages in the page', logs);
    assert.deepEqual(r.errors, [], `page errors; console:\n${logs.join('\n')}`);
    assert.deepEqual(r.wsErrors, []);
    assert.equal(r.stompVersion, '1.2');
    assert.deepEqual(r.mqttToStomp, { body: 'from Node over mqtts', destination: '/topic/wss.to.stomp' });
    assert.deepEqual(r.stompToMqtt, { topic: 'wss/to/mqtt', payload: 'from Node over wss' });
  } finally {
    await sender?.deactivate();
    await pub?.endAsync();
    await browser.close();
  }
});

test('Chromium without the pin refuses the certificate: the page sees WebSocket errors', { timeout: 30000 }, async () => {
  const failedBefore = brokerLines(/TLS handshake failed/).length;
  const browser = await launchChromium();
  try {
    const { logs, wss, ready, done } = await openPage(browser);
    let wasReady = false;
    ready.then(() => { wasReady = true; });
    const r = await within(done, 'the page giving up', logs);
    assert.equal(wasReady, false);
    assert.deepEqual(r.errors.sort(), ['MQTT.js: closed before CONNACK', 'STOMP.js: WebSocket error']);
    assert.deepEqual(r.wsErrors.sort(), [`${wss}/mqtt`, `${wss}/stomp`]);
    // Chromium says why in the console: the certificate's issuer is unknown.
    assert.ok(logs.some((l) => l.includes('ERR_CERT_AUTHORITY_INVALID')), logs.join('\n'));
    // The broker logs each refusal (one per WebSocket) as a failed
    // handshake, with the peer and the alert Chromium sent.
    const failed = await brokerLogged(/TLS handshake failed/, failedBefore, 2);
    for (const line of failed) {
      assert.match(line, /peer=127\.0\.0\.1:\d+ TLS handshake failed: .*alert (certificate unknown|unknown ca|bad certificate)/);
    }
  } finally {
    await browser.close();
  }
});
