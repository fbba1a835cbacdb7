import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startServer, type TestServer } from '../helpers/server.js';

const TOTAL = 250;
const LIMIT = 50;
const PAGES = TOTAL / LIMIT;

let s: TestServer;
beforeAll(async () => {
  s = await startServer();
});
afterAll(async () => {
  await s.close();
});

interface Page {
  data: any[];
  iterator: string | null;
  prevIterator: string | null;
  done: boolean;
}

async function get(path: string, srv = s): Promise<Page> {
  const r = await srv.api<Page>('GET', path);
  expect(r.status, path).toBe(200);
  return r.body;
}

/** Follows `iterator` from the first page until `done`; returns every page. */
async function walkForward(base: string, srv = s): Promise<Page[]> {
  const pages: Page[] = [];
  let page = await get(`${base}?limit=${LIMIT}`, srv);
  pages.push(page);
  while (!page.done) {
    expect(pages.length, 'too many pages').toBeLessThan(PAGES + 2);
    page = await get(`${base}?limit=${LIMIT}&iterator=${encodeURIComponent(page.iterator!)}`, srv);
    pages.push(page);
  }
  return pages;
}

/** Follows `prevIterator` back from the last page to the first one. */
async function walkBack(base: string, last: Page, srv = s): Promise<Page[]> {
  const pages = [last];
  let page = last;
  for (let i = 1; i < PAGES; i++) {
    page = await get(`${base}?limit=${LIMIT}&iterator=${encodeURIComponent(page.prevIterator!)}`, srv);
    pages.unshift(page);
  }
  return pages;
}

const ids = (pages: Page[]) => pages.flatMap((p) => p.data.map((x) => x.id as string));

describe('messages: 250 in pages of 50, newest first', () => {
  const created: string[] = [];
  const base = '/app/paged/msg';
  beforeAll(async () => {
    await s.api('POST', '/app', { name: 'Paged', uid: 'paged' });
    for (let i = 0; i < TOTAL; i++) {
      const r = await s.api('POST', base, { eventType: 'page.test', payload: { i } });
      expect(r.status).toBe(202);
      created.push(r.body.id);
    }
  });

  test('forward with iterator: every message once, in order, done only on the last page', async () => {
    const pages = await walkForward(base);
    expect(pages).toHaveLength(PAGES);
    expect(pages.map((p) => p.data.length)).toEqual(Array(PAGES).fill(LIMIT));
    expect(pages.map((p) => p.done)).toEqual([...Array(PAGES - 1).fill(false), true]);
    const all = ids(pages);
    expect(new Set(all).size).toBe(TOTAL);
    expect(all).toEqual([...created].reverse());
    expect(pages.flatMap((p) => p.data.map((m) => m.payload.i))).toEqual(Array.from({ length: TOTAL }, (_, i) => TOTAL - 1 - i));
  });

  test('backward with prevIterator returns the same pages', async () => {
    const forward = await walkForward(base);
    const back = await walkBack(base, forward[PAGES - 1]!);
    expect(back.map((p) => p.data.map((m) => m.id))).toEqual(forward.map((p) => p.data.map((m) => m.id)));
    // Walking back from the first page finds nothing newer.
    const beyond = await get(`${base}?limit=${LIMIT}&iterator=${encodeURIComponent(forward[0]!.prevIterator!)}`);
    expect(beyond.data).toEqual([]);
  });

  // Runs last: it adds a message.
  test('a message sent later is found through the first page\'s prevIterator', async () => {
    const first = await get(`${base}?limit=${LIMIT}`);
    const r = await s.api('POST', base, { eventType: 'page.test', payload: { late: true } });
    const newer = await get(`${base}?limit=${LIMIT}&iterator=${encodeURIComponent(first.prevIterator!)}`);
    expect(newer.data.map((m) => m.id)).toEqual([r.body.id]);
  });
});

describe('applications: 250 in pages of 50, oldest first', () => {
  const created: string[] = [];
  const base = '/app';
  // Its own server, so the list holds exactly these applications.
  let own: TestServer;
  beforeAll(async () => {
    own = await startServer();
    for (let i = 0; i < TOTAL; i++) {
      const r = await own.api('POST', base, { name: `app ${i}` });
      expect(r.status).toBe(201);
      created.push(r.body.id);
    }
  });
  afterAll(async () => {
    await own.close();
  });

  test('forward with iterator: every application once, ascending, done only on the last page', async () => {
    const pages = await walkForward(base, own);
    expect(pages.map((p) => p.data.length)).toEqual(Array(PAGES).fill(LIMIT));
    expect(pages.map((p) => p.done)).toEqual([...Array(PAGES - 1).fill(false), true]);
    expect(ids(pages)).toEqual(created);
    expect(pages.flatMap((p) => p.data.map((a) => a.name))).toEqual(created.map((_, i) => `app ${i}`));
  });

  test('backward with prevIterator returns the same pages', async () => {
    const forward = await walkForward(base, own);
    const back = await walkBack(base, forward[PAGES - 1]!, own);
    expect(back.map((p) => p.data.map((a) => a.id))).toEqual(forward.map((p) => p.data.map((a) => a.id)));
  });

  test('order=descending lists newest first', async () => {
    const page = await get(`${base}?limit=${LIMIT}&order=descending`, own);
    expect(page.data.map((a) => a.id)).toEqual([...created].reverse().slice(0, LIMIT));
    expect(page.done).toBe(false);
  });

  test('limit is capped at 250', async () => {
    const page = await get(`${base}?limit=1000`, own);
    expect(page.data).toHaveLength(TOTAL);
  });
});
