// A real browser (Debian's chromium, driven by playwright-core) loads a page
// served on 127.0.0.1 that uses the STOMP.js and MQTT.js browser bundles from
// node_modules against a spawned wsbroker, and the test checks what the page
// received.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from '../integration/harness.mjs';
import { launchChromium, serveStatic } from './browser.mjs';

test('STOMP.js and MQTT.js in Chromium: round trips and across protocols', { timeout: 60000 }, async () => {
  const broker = await startBroker();
  const web = await serveStatic();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const logs = [];
    page.on('console', (m) => logs.push(m.text()));
    const wsBase = broker.wsUrl('').replace(/\/$/, '');
    await page.goto(`http://127.0.0.1:${web.address().port}/page.html?ws=${encodeURIComponent(wsBase)}`);
    await page.waitForFunction(() => window.result && window.result.done, null, { timeout: 30000 });
    const r = await page.evaluate(() => window.result);
    assert.deepEqual(r.errors, [], `page errors; console: ${logs.join('\n')}`);
    assert.deepEqual(r.stomp, { version: '1.2', body: 'hello from STOMP.js' });
    assert.equal(r.mqtt, 'hello from MQTT.js');
    assert.deepEqual(r.mqttToStomp, { body: 'mqtt to stomp', destination: '/topic/browser.cross.x' });
    assert.equal(r.stompToMqtt, 'stomp to mqtt');
  } finally {
    await browser.close();
    web.close();
    const code = await broker.stop();
    assert.equal(code, 0, `broker exit code; log:\n${broker.log().slice(-3000)}`);
  }
});
