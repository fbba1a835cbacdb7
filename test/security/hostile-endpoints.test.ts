import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HttpClient } from '../../src/delivery/http.js';
import { AddressPolicy } from '../../src/delivery/ssrf.js';
import { startServer, tempDir, type TestServer } from '../helpers/server.js';
import { makeEndpoint, send, settled, Status, type AttemptOut } from '../delivery/support.js';

/**
 * Endpoints that fight back. Each one must end as a recorded attempt within
 * the request timeout, with bounded memory: Hooklane reads at most the
 * response cap and closes the connection, so the hostile server can push no
 * more than what socket buffers hold. Real servers on 127.0.0.1, raw TCP so
 * they can misbehave at the byte level.
 */

const TIMEOUT_MS = 1500;
/** Time allowed past the timeout for the attempt to be recorded and seen. */
const SLACK_MS = 2500;
const CAP = 20_480;
/** What a connection may have pushed before Hooklane closed it: far below the 1 GB offered. */
const PUSHED_BOUND = 32 * 1024 * 1024;

interface Conn {
  socket: Socket;
  openedAt: number;
  closedAt: number | null;
  written: number;
}

interface Hostile {
  url: string;
  conns: Conn[];
  close(): Promise<void>;
}

/** A TCP server on loopback; `behave` runs once the request's first bytes arrive. */
async function hostile(behave: (c: Conn) => void): Promise<Hostile> {
  const conns: Conn[] = [];
  const server: Server = createTcpServer((socket) => {
    const c: Conn = { socket, openedAt: Date.now(), closedAt: null, written: 0 };
    conns.push(c);
    socket.on('error', () => {});
    socket.on('close', () => (c.closedAt = Date.now()));
    socket.once('data', () => behave(c));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    conns,
    close: () =>
      new Promise((resolve) => {
        for (const c of conns) c.socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const write = (c: Conn, data: string | Buffer): boolean => {
  if (c.socket.destroyed) return false;
  c.written += Buffer.byteLength(data);
  return c.socket.write(data);
};

/** Writes `chunk` as fast as the peer reads it, until the connection closes. */
function flood(c: Conn, chunk: () => Buffer | string): void {
  const pump = () => {
    while (!c.socket.destroyed) {
      if (!write(c, chunk())) {
        c.socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

/** Writes `data` every `ms` until the connection closes. */
function drip(c: Conn, data: string, ms: number): void {
  const t = setInterval(() => {
    if (c.socket.destroyed) clearInterval(t);
    else write(c, data);
  }, ms);
  c.socket.on('close', () => clearInterval(t));
}

const ONE_GB = 1024 * 1024 * 1024;
const block = Buffer.alloc(64 * 1024, 'x');

let s: TestServer;
const servers: Hostile[] = [];
beforeAll(async () => {
  s = await startServer({ allowedSubnets: ['127.0.0.0/8'], requestTimeoutMs: TIMEOUT_MS, retrySchedule: [], maxResponseBytes: CAP });
});
afterAll(async () => {
  for (const h of servers) await h.close();
  await s.close();
});

/** Creates an endpoint at `url`, sends one message, returns its only attempt and how long it took to settle. */
async function deliverOnce(url: string, status: number): Promise<{ attempt: AttemptOut; tookMs: number }> {
  const t = await makeEndpoint(s.api, 'hostile', { url });
  const started = Date.now();
  const msg = await send(s.api, t.app, { eventType: 'a.b', payload: { hostile: url } });
  const attempts = await settled(s.api, t.app, msg, t.ep, status, TIMEOUT_MS + SLACK_MS + 5000);
  expect(attempts).toHaveLength(1);
  return { attempt: attempts[0]!, tookMs: Date.now() - started };
}

const expectTimedOut = (a: AttemptOut) => {
  expect([a.status, a.responseStatusCode]).toEqual([Status.fail, 0]);
  expect(a.response).toMatch(new RegExp(`timed out after ${TIMEOUT_MS} ms|UND_ERR_HEADERS_TIMEOUT|UND_ERR_BODY_TIMEOUT`));
  expect(a.responseDurationMs).toBeGreaterThanOrEqual(TIMEOUT_MS - 100);
  expect(a.responseDurationMs).toBeLessThan(TIMEOUT_MS + 1000);
};

describe('hostile endpoints end within the timeout', () => {
  test('slow drip: a 200 whose body trickles a byte at a time is a failed attempt at the total timeout', async () => {
    const h = await hostile((c) => {
      write(c, 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000000\r\n\r\n');
      drip(c, 'x', 50); // never idle long enough for a per-chunk idle timeout
    });
    servers.push(h);
    const { attempt, tookMs } = await deliverOnce(`${h.url}/drip`, Status.fail);
    expectTimedOut(attempt);
    expect(attempt.response).toMatch(/HTTP 200, then the response body failed: timed out/); // the status alone would read as success
    expect(tookMs).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    // Hooklane closed the connection (the server would drip forever).
    expect(h.conns[0]!.closedAt).not.toBeNull();
    expect(h.conns[0]!.closedAt! - h.conns[0]!.openedAt).toBeLessThan(TIMEOUT_MS + 1000);
  });

  test('slow drip of chunked encoding: the same', async () => {
    const h = await hostile((c) => {
      write(c, 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
      drip(c, '1\r\nx\r\n', 50);
    });
    servers.push(h);
    const { attempt } = await deliverOnce(`${h.url}/drip-chunked`, Status.fail);
    expectTimedOut(attempt);
  });

  test('headers that never finish: a failed attempt at the timeout', async () => {
    const h = await hostile((c) => {
      write(c, 'HTTP/1.1 200 OK\r\n');
      drip(c, 'x-never-ending: yes\r\n', 50);
    });
    servers.push(h);
    const { attempt } = await deliverOnce(`${h.url}/headers`, Status.fail);
    expectTimedOut(attempt);
    expect(h.conns[0]!.closedAt).not.toBeNull();
  });

  test('a connection that is accepted and never answered: a failed attempt at the timeout', async () => {
    const h = await hostile(() => {});
    servers.push(h);
    const { attempt } = await deliverOnce(`${h.url}/silent`, Status.fail);
    expectTimedOut(attempt);
    expect(h.conns[0]!.closedAt).not.toBeNull();
  });

  test('a body that stops half way: a failed attempt at the timeout', async () => {
    const h = await hostile((c) => write(c, 'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf'));
    servers.push(h);
    const { attempt } = await deliverOnce(`${h.url}/half`, Status.fail);
    expectTimedOut(attempt);
  });
});

describe('hostile endpoints cannot make Hooklane read more than the cap', () => {
  test('an endless chunked body with an error status: a failed attempt, body cut at the cap, connection closed at once', async () => {
    const h = await hostile((c) => {
      write(c, 'HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n');
      flood(c, () => `${block.length.toString(16)}\r\n${block.toString()}\r\n`);
    });
    servers.push(h);
    const { attempt, tookMs } = await deliverOnce(`${h.url}/endless`, Status.fail);
    expect([attempt.status, attempt.responseStatusCode]).toEqual([Status.fail, 500]);
    expect(attempt.response).toBe('x'.repeat(CAP));
    expect(attempt.responseDurationMs).toBeLessThan(TIMEOUT_MS);
    expect(tookMs).toBeLessThan(TIMEOUT_MS + SLACK_MS);
    const conn = h.conns[0]!;
    await expect.poll(() => conn.closedAt, { timeout: 2000 }).not.toBeNull();
    expect(conn.written).toBeLessThan(PUSHED_BOUND);
  });

  test('a 1 GB body (advertised and streamed): read up to the cap, connection closed, the 2xx stands', async () => {
    const h = await hostile((c) => {
      write(c, `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${ONE_GB}\r\n\r\n`);
      flood(c, () => block);
    });
    servers.push(h);
    const { attempt } = await deliverOnce(`${h.url}/huge`, Status.success);
    // 2xx is success: the receiver accepted the message; the response is stored cut at the cap.
    expect([attempt.status, attempt.responseStatusCode]).toEqual([Status.success, 200]);
    expect(attempt.response).toHaveLength(CAP);
    expect(attempt.responseDurationMs).toBeLessThan(TIMEOUT_MS);
    const conn = h.conns[0]!;
    await expect.poll(() => conn.closedAt, { timeout: 2000 }).not.toBeNull();
    expect(conn.written).toBeLessThan(PUSHED_BOUND);
  });

  test('reading stops at the cap: the connection is closed as soon as the cap is reached, not some way past it', async () => {
    // 1 kB every 10 ms, endlessly; the cap is 4 kB. Paced writes are not hidden by socket buffers:
    // the number written before the close tells how long the client kept reading.
    const h = await hostile((c) => {
      write(c, 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
      drip(c, `400\r\n${'y'.repeat(1024)}\r\n`, 10);
    });
    servers.push(h);
    const client = new HttpClient({ timeoutMs: 5000, maxResponseBytes: 4096, connectionsPerOrigin: 2, policy: new AddressPolicy(['127.0.0.0/8']) });
    try {
      const r = await client.post(`${h.url}/paced`, {}, '{}');
      expect([r.statusCode, r.error, r.body]).toEqual([200, null, 'y'.repeat(4096)]);
      const conn = h.conns[0]!;
      await expect.poll(() => conn.closedAt, { timeout: 2000 }).not.toBeNull();
      expect(conn.written / 1030).toBeLessThan(8); // 4 chunks make the cap; a few more may be in flight
    } finally {
      await client.close();
    }
  });

  test('the HTTP client alone: heap stays flat while a 1 GB body is offered', async () => {
    const h = await hostile((c) => {
      write(c, `HTTP/1.1 200 OK\r\ncontent-length: ${ONE_GB}\r\n\r\n`);
      flood(c, () => block);
    });
    servers.push(h);
    const client = new HttpClient({ timeoutMs: 5000, maxResponseBytes: 1024, connectionsPerOrigin: 2, policy: new AddressPolicy(['127.0.0.0/8']) });
    try {
      const before = process.memoryUsage().heapUsed;
      const results = await Promise.all([0, 1, 2, 3].map((i) => client.post(`${h.url}/huge-${i}`, {}, '{}')));
      const grown = process.memoryUsage().heapUsed - before;
      for (const r of results) {
        expect([r.statusCode, r.error, r.body.length]).toEqual([200, null, 1024]);
        expect(r.durationMs).toBeLessThan(2000);
      }
      expect(grown).toBeLessThan(64 * 1024 * 1024);
      for (const c of h.conns) expect(c.written).toBeLessThan(PUSHED_BOUND);
    } finally {
      await client.close();
    }
  });
});

/** openssl is needed to make the self-signed certificate; the test says so when it is missing. */
const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('TLS', () => {
  test.skipIf(!hasOpenssl)('a self-signed certificate: the attempt fails with a TLS error and nothing is sent', async () => {
    const dir = tempDir('hooklane-tls-');
    let received = 0;
    const server = createHttpsServer({}, (req, res) => {
      received++;
      res.end('should never be reached');
    });
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      ], { stdio: 'ignore' });
      server.setSecureContext({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `https://127.0.0.1:${(server.address() as { port: number }).port}/tls`;
      const { attempt } = await deliverOnce(url, Status.fail);
      expect([attempt.status, attempt.responseStatusCode]).toEqual([Status.fail, 0]);
      expect(attempt.response).toMatch(/DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED|self[- ]signed/i);
      expect(attempt.responseDurationMs).toBeLessThan(TIMEOUT_MS);
      expect(received).toBe(0);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
