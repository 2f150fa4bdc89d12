// A throwaway PKI for tests: a CA and a server certificate for 127.0.0.1
// (and localhost), both made by the `openssl` command at test time, plus the
// base64 SHA-256 of the server's SubjectPublicKeyInfo, which is what
// Chromium's --ignore-certificate-errors-spki-list takes.
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The SPKI pin of a PEM certificate: base64(sha256(DER SubjectPublicKeyInfo)),
// the same value as `openssl x509 -pubkey -noout | openssl pkey -pubin
// -outform der | openssl dgst -sha256 -binary | base64`.
export function spkiSha256(certPem) {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

// Make the CA and the server certificate in a new temporary directory.
// Returns the file names, the CA's PEM (for Node clients' `ca` option), the
// server certificate's SPKI pin, and remove() to delete the directory.
export function makeTestPki({ name = 'wsbroker test CA' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'wsb-pki-'));
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', `/CN=${name}`);
  // Browsers match the URL's host against subjectAltName only, never the CN.
  writeFileSync(join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-CAcreateserial', '-days', '2', '-out', 'server.pem', '-extfile', 'server.ext');
  const caPem = readFileSync(join(dir, 'ca.pem'));
  const serverPem = readFileSync(join(dir, 'server.pem'));
  return {
    dir,
    caFile: join(dir, 'ca.pem'),
    certFile: join(dir, 'server.pem'),
    keyFile: join(dir, 'server.key'),
    caPem,
    serverSpki: spkiSha256(serverPem),
    remove() { rmSync(dir, { recursive: true, force: true }); },
  };
}
