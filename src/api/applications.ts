import { Type } from '@sinclair/typebox';
import { conflict, invalid } from '../errors.js';
import { newId } from '../ids.js';
import { UniqueViolation, type AppRow } from '../store/types.js';
import { appOut, errorResponses, loadApp, mapPage, pageQuery, type Req, type RouteContext } from './common.js';
import { ApplicationIn, ApplicationPatch, Iterator, Limit, ListResponse, Order, Uid, ApplicationOut } from './schemas.js';

const AppParams = Type.Object({ app_id: Uid });
const tags = ['Application'];

export function newApp(input: ApplicationIn, now = Date.now()): AppRow {
  return {
    id: newId('app', now), uid: input.uid ?? null, name: input.name, metadata: input.metadata ?? {}, throttleRate: input.throttleRate ?? null,
    createdAt: now, updatedAt: now,
  };
}

/** Inserts an application; a taken uid is a 409. */
export async function insertApp(ctx: RouteContext, app: AppRow): Promise<void> {
  if (app.uid !== null && app.uid.startsWith('app_')) throw invalid(['body', 'uid'], 'uid must not start with app_');
  try {
    await ctx.hl.store.insertApp(app);
  } catch (e) {
    if (e instanceof UniqueViolation) throw conflict('An application with this uid already exists');
    throw e;
  }
}

async function saveApp(ctx: RouteContext, app: AppRow): Promise<void> {
  try {
    await ctx.hl.store.updateApp(app);
  } catch (e) {
    if (e instanceof UniqueViolation) throw conflict('An application with this uid already exists');
    throw e;
  }
}

export function applicationRoutes(ctx: RouteContext): void {
  const { app, hl } = ctx;
  const out = { $ref: 'ApplicationOut#' };

  app.get('/api/v1/app', {
    schema: {
      tags, summary: 'List applications',
      querystring: Type.Object({ limit: Limit, iterator: Iterator, order: Order }),
      response: { 200: ListResponse(Type.Ref(ApplicationOut), 'ApplicationOut'), ...errorResponses },
    },
  }, async (req: Req<never, { limit?: number; iterator?: string | null; order?: 'ascending' | 'descending' | null }>) => {
    return mapPage(await hl.store.listApps(pageQuery(req.query, 'asc')), appOut);
  });

  app.post('/api/v1/app', {
    schema: {
      tags, summary: 'Create an application',
      querystring: Type.Object({ get_if_exists: Type.Optional(Type.Boolean()) }),
      body: ApplicationIn,
      response: { 200: out, 201: out, ...errorResponses },
    },
  }, async (req: Req<never, { get_if_exists?: boolean }, ApplicationIn>, reply) => {
    if (req.query.get_if_exists && req.body.uid) {
      const existing = await hl.store.findApp(req.body.uid);
      if (existing) return reply.status(200).send(appOut(existing));
    }
    const row = newApp(req.body);
    await insertApp(ctx, row);
    return reply.status(201).send(appOut(row));
  });

  app.get('/api/v1/app/:app_id', {
    schema: { tags, summary: 'Get an application', params: AppParams, response: { 200: out, ...errorResponses } },
  }, async (req: Req<{ app_id: string }>) => appOut(await loadApp(hl, req.params.app_id)));

  app.put('/api/v1/app/:app_id', {
    schema: { tags, summary: 'Update an application, or create it with this uid', params: AppParams, body: ApplicationIn, response: { 200: out, 201: out, ...errorResponses } },
  }, async (req: Req<{ app_id: string }, unknown, ApplicationIn>, reply) => {
    const existing = await hl.store.findApp(req.params.app_id);
    if (!existing) {
      const row = newApp({ ...req.body, uid: req.body.uid ?? req.params.app_id });
      await insertApp(ctx, row);
      return reply.status(201).send(appOut(row));
    }
    const row: AppRow = {
      ...existing, name: req.body.name, uid: req.body.uid === undefined ? existing.uid : req.body.uid, metadata: req.body.metadata ?? {},
      throttleRate: req.body.throttleRate ?? null, updatedAt: Date.now(),
    };
    await saveApp(ctx, row);
    return reply.status(200).send(appOut(row));
  });

  app.patch('/api/v1/app/:app_id', {
    schema: { tags, summary: 'Partly update an application', params: AppParams, body: ApplicationPatch, response: { 200: out, ...errorResponses } },
  }, async (req: Req<{ app_id: string }, unknown, ApplicationPatch>) => {
    const existing = await loadApp(hl, req.params.app_id);
    const b = req.body;
    const row: AppRow = {
      ...existing,
      name: b.name ?? existing.name,
      uid: b.uid === undefined ? existing.uid : b.uid,
      metadata: b.metadata ?? existing.metadata,
      throttleRate: b.throttleRate === undefined ? existing.throttleRate : b.throttleRate,
      updatedAt: Date.now(),
    };
    await saveApp(ctx, row);
    return appOut(row);
  });

  app.delete('/api/v1/app/:app_id', {
    schema: { tags, summary: 'Delete an application with its endpoints, messages and attempts', params: AppParams, response: { 204: { type: 'null' }, ...errorResponses } },
  }, async (req: Req<{ app_id: string }>, reply) => {
    const existing = await loadApp(hl, req.params.app_id);
    await hl.store.deleteApp(existing.id);
    return reply.status(204).send();
  });
}
