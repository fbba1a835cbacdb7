import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

/**
 * TLS for the server itself: HOOKLANE_TLS_CERT and HOOKLANE_TLS_KEY name PEM
 * files (the certificate may be a chain). Both or neither; they are read and
 * checked as a pair when the configuration is loaded, so a wrong path or a
 * key that does not match the certificate stops the start with a message.
 */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
}

function read(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`${setting}: cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Reads and checks the pair; `undefined` when neither is set. Errors name the setting. */
export function loadTls(certPath: string | undefined, keyPath: string | undefined): TlsFiles | undefined {
  if (!certPath && !keyPath) return undefined;
  if (!certPath || !keyPath) {
    const [set, missing] = certPath ? ['HOOKLANE_TLS_CERT', 'HOOKLANE_TLS_KEY'] : ['HOOKLANE_TLS_KEY', 'HOOKLANE_TLS_CERT'];
    throw new Error(`${set} is set but ${missing} is not: set both to serve HTTPS, or neither`);
  }
  const files = { cert: read('HOOKLANE_TLS_CERT', certPath), key: read('HOOKLANE_TLS_KEY', keyPath) };
  try {
    // Parses both and checks that the key belongs to the certificate.
    createSecureContext(files);
  } catch (e) {
    throw new Error(`HOOKLANE_TLS_CERT/HOOKLANE_TLS_KEY: not a PEM certificate with its matching private key (${(e as Error).message})`);
  }
  return files;
}
