import { Webhook } from 'standardwebhooks';
import { expect } from 'vitest';
import type { Received } from '../helpers/receiver.js';
import { eventually, type Api } from '../helpers/server.js';

/** Shared pieces of the delivery suites: setup through the API, signature checks, polling. */

export interface Target {
  app: string;
  ep: string;
  secret: string;
}

/** One header as a string ('' when absent). */
export function header(req: Received, name: string): string {
  const v = req.headers[name.toLowerCase()];
  return Array.isArray(v) ? v.join(', ') : (v ?? '');
}

/** Creates an application (when it does not exist) and one endpoint; returns their ids and the endpoint's secret. */
export async function makeEndpoint(api: Api, appUid: string, endpoint: Record<string, unknown>): Promise<Target> {
  let app = await api('GET', `/app/${appUid}`);
  if (app.status === 404) app = await api('POST', '/app', { name: appUid, uid: appUid });
  expect(app.status, JSON.stringify(app.body)).toBeLessThan(300);
  const ep = await api('POST', `/app/${app.body.id}/endpoint`, endpoint);
  expect(ep.status, JSON.stringify(ep.body)).toBe(201);
  return { app: app.body.id, ep: ep.body.id, secret: await secretOf(api, app.body.id, ep.body.id) };
}

export async function secretOf(api: Api, app: string, ep: string): Promise<string> {
  const s = await api('GET', `/app/${app}/endpoint/${ep}/secret`);
  expect(s.status).toBe(200);
  expect(s.body.key).toMatch(/^whsec_/);
  return s.body.key as string;
}

/** Posts a message and returns its id; the 202 is required. */
export async function send(api: Api, app: string, msg: Record<string, unknown>): Promise<string> {
  const r = await api('POST', `/app/${app}/msg`, msg);
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.id as string;
}

/** The Standard Webhooks headers of a request, as the verifier wants them. */
export function swHeaders(req: Received, prefix: 'webhook' | 'svix' = 'webhook', signature?: string): Record<string, string> {
  return {
    'webhook-id': header(req, `${prefix}-id`),
    'webhook-timestamp': header(req, `${prefix}-timestamp`),
    'webhook-signature': signature ?? header(req, `${prefix}-signature`),
  };
}

/** Verifies a delivered request with the standardwebhooks package; throws when it does not verify. Returns the parsed body. */
export function verifyWith(secret: string, req: Received, prefix: 'webhook' | 'svix' = 'webhook'): unknown {
  return new Webhook(secret).verify(req.body, swHeaders(req, prefix));
}

/** True when the request's signature (or the single `signature` given) verifies with `secret`. */
export function signedBy(secret: string, req: Received, signature?: string): boolean {
  try {
    new Webhook(secret).verify(req.body, swHeaders(req, 'webhook', signature));
    return true;
  } catch {
    return false;
  }
}

/** Asserts every request verifies with the secret. */
export function expectAllSigned(secret: string, reqs: readonly Received[]): void {
  expect(reqs.length).toBeGreaterThan(0);
  for (const r of reqs) expect(() => verifyWith(secret, r), `signature of ${header(r, 'webhook-id')}`).not.toThrow();
}

export interface AttemptOut {
  id: string;
  msgId: string;
  endpointId: string;
  url: string;
  response: string;
  responseStatusCode: number;
  responseDurationMs: number;
  status: number;
  triggerType: number;
  timestamp: string;
}

/** Every attempt of a message, oldest first. */
export async function attemptsOf(api: Api, app: string, msg: string, ep?: string): Promise<AttemptOut[]> {
  const q = ep ? `&endpoint_id=${ep}` : '';
  const r = await api('GET', `/app/${app}/attempt/msg/${msg}?limit=250${q}`);
  expect(r.status).toBe(200);
  return (r.body.data as AttemptOut[]).slice().reverse();
}

/** The delivery state of a message at one endpoint: {status, nextAttempt}, or null when it has no delivery there. */
export async function destination(api: Api, app: string, msg: string, ep: string): Promise<{ status: number; nextAttempt: string | null } | null> {
  const r = await api('GET', `/app/${app}/msg/${msg}/endpoint?limit=250`);
  expect(r.status).toBe(200);
  const d = (r.body.data as { id: string; status: number; nextAttempt: string | null }[]).find((x) => x.id === ep);
  return d ? { status: d.status, nextAttempt: d.nextAttempt } : null;
}

/** Waits until the delivery of `msg` at `ep` has the given status; returns its attempts. */
export async function settled(api: Api, app: string, msg: string, ep: string, status: number, timeoutMs = 20_000): Promise<AttemptOut[]> {
  await eventually(async () => (await destination(api, app, msg, ep))?.status === status, timeoutMs, `delivery of ${msg} to reach status ${status}`);
  return attemptsOf(api, app, msg, ep);
}

export async function getEndpoint(api: Api, app: string, ep: string): Promise<{ disabled: boolean }> {
  const r = await api('GET', `/app/${app}/endpoint/${ep}`);
  expect(r.status).toBe(200);
  return r.body;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Requests whose path is `path`. */
export const at = (reqs: readonly Received[], path: string) => reqs.filter((r) => r.path === path);

export const Status = { success: 0, pending: 1, fail: 2, sending: 3 } as const;
