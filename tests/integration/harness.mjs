// Node test harness: start the real broker (or the echo test broker) on free
// loopback ports, read its --port-file, stop it afterwards. The build
// directory comes from WSB_BUILD_DIR (default: the repository root).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '..', '..');
export const BUILD = resolve(process.env.WSB_BUILD_DIR || REPO);
const BINARIES = {
  wsbroker: join(BUILD, 'broker', 'wsbroker'),
  'echo-broker': join(BUILD, 'tests', 'echo-broker'),
};
const DEFAULT_LISTENERS = ['127.0.0.1:0/auto', '127.0.0.1:0/ws', '127.0.0.1:0/mqtt', '127.0.0.1:0/stomp'];
const START_TIMEOUT_MS = 10000;
const SANITIZER_MARKS = ['ERROR: AddressSanitizer', 'ERROR: LeakSanitizer', 'runtime error:'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withOpt(prev, add) {
  return [prev, add].filter(Boolean).join(':');
}

// Start a broker. args are extra command-line options; unless they contain
// --listen, the four default test listeners (auto, ws, mqtt, stomp) are added
// on free ports. configText, when given, is written to a file passed with -c.
// Resolves once every listener is bound.
export async function startBroker({ binary = 'wsbroker', args = [], configText = null } = {}) {
  const exe = BINARIES[binary] || binary;
  if (!existsSync(exe)) throw new Error(`broker binary ${exe} not built (WSB_BUILD_DIR=${BUILD})`);
  const dir = mkdtempSync(join(tmpdir(), 'wsb-itest-'));
  const portFile = join(dir, 'ports');
  const argv = [];
  if (configText !== null) {
    const conf = join(dir, 'wsbroker.conf');
    writeFileSync(conf, configText);
    argv.push('-c', conf);
  }
  if (!args.includes('--listen')) for (const l of DEFAULT_LISTENERS) argv.push('--listen', l);
  if (!args.includes('--db')) argv.push('--db', ':memory:');
  if (!args.includes('--log-level')) argv.push('--log-level', 'debug');
  argv.push('--port-file', portFile, ...args);
  const expected = argv.filter((a) => a === '--listen').length;

  const env = { ...process.env };
  env.ASAN_OPTIONS = withOpt(env.ASAN_OPTIONS, 'detect_leaks=1');
  env.UBSAN_OPTIONS = withOpt(env.UBSAN_OPTIONS, 'halt_on_error=1:print_stacktrace=1');
  const child = spawn(exe, argv, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let logText = '';
  child.stdout.on('data', (d) => { logText += d.toString(); });
  child.stderr.on('data', (d) => { logText += d.toString(); });
  let exitCode = null;
  const exited = new Promise((res) => {
    child.on('exit', (code, sig) => {
      exitCode = code !== null ? code : `signal ${sig}`;
      res(exitCode);
    });
  });

  const ports = {};
  const addrs = [];
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exitCode !== null) throw new Error(`broker exited with ${exitCode} before writing its port file:\n${logText}`);
    let text = '';
    try { text = readFileSync(portFile, 'utf8'); } catch { /* not yet */ }
    const lines = text.split('\n').filter(Boolean);
    if (text.endsWith('\n') && lines.length === expected) {
      for (const line of lines) {
        const [kind, addr] = line.trim().split(/\s+/);
        const i = addr.lastIndexOf(':');
        const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
        const port = Number(addr.slice(i + 1));
        addrs.push({ kind, host, port });
        if (!(kind in ports)) ports[kind] = port;
      }
      break;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`no complete port file after ${START_TIMEOUT_MS} ms:\n${logText}`);
    }
    await sleep(20);
  }

  const wsKind = 'ws' in ports ? 'ws' : 'auto';
  const wsHost = addrs.find((a) => a.kind === wsKind).host;
  return {
    ports,
    addrs,
    dir,
    wsUrl(path = '/') {
      const h = wsHost.includes(':') ? `[${wsHost}]` : wsHost;
      return `ws://${h}:${ports[wsKind]}${path}`;
    },
    log() { return logText; },
    sanitizerReport() { return SANITIZER_MARKS.find((m) => logText.includes(m)) || null; },
    // SIGTERM (or sig) and resolve with the exit code; SIGKILL and reject
    // after timeoutMs.
    async stop(sig = 'SIGTERM', timeoutMs = 10000) {
      if (exitCode === null) child.kill(sig);
      let timer;
      const timeout = new Promise((_, rej) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          rej(new Error(`broker still running ${timeoutMs} ms after ${sig}:\n${logText}`));
        }, timeoutMs);
      });
      try {
        const code = await Promise.race([exited, timeout]);
        rmSync(dir, { recursive: true, force: true });
        return code;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
