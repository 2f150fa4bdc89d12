// What the browser tests share: Chromium's launch flags and a static server
// for the test pages and the client libraries' browser bundles.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { chromium } from 'playwright-core';
import { REPO } from '../integration/harness.mjs';

export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Debian's chromium with the flags above and any extra ones.
export function launchChromium(extraArgs = []) {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_ARGS, ...extraArgs] });
}

// Serve tests/browser at / and the repository's node_modules at
// /node_modules/ on a free loopback port.
export function serveStatic() {
  const roots = { '/node_modules/': join(REPO, 'node_modules'), '/': join(REPO, 'tests', 'browser') };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const prefix = url.pathname.startsWith('/node_modules/') ? '/node_modules/' : '/';
    const rel = normalize(url.pathname.slice(prefix.length));
    if (rel.startsWith('..')) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(join(roots[prefix], rel));
      const type = rel.endsWith('.html') ? 'text/html' : 'application/javascript';
      res.writeHead(200, { 'content-type': type }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((res) => server.listen(0, '127.0.0.1', () => res(server)));
}
