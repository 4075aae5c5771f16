// The reference wiki-server's page routes: read, act on, delete and recycle pages.
import type { FastifyInstance, FastifyReply } from 'fastify'
import { parseAction } from '../pages/page-actions.js'
import { checkSlug, type Guards } from '../http/request-context.js'
import { ERR_BAD_ACTION, ERR_PAGE_NOT_FOUND, ERR_UNSUPPORTED_MEDIA } from '../errors.js'

interface SlugParams { slug: string }

const JSON_TYPE = 'application/json; charset=utf-8'

function sendJson(reply: FastifyReply, json: string): FastifyReply {
  return reply.type(JSON_TYPE).send(json)
}

export async function pageRoutes(app: FastifyInstance, opts: { guards: Guards }): Promise<void> {
  const { guards } = opts

  app.get<{ Params: SlugParams }>('/:slug.json', async (request, reply) => {
    const slug = checkSlug(request.params.slug)
    const stored = await request.site.getPage(slug)
    if (!stored) throw new ERR_PAGE_NOT_FOUND(slug)
    return sendJson(reply, stored.json)
  })

  // The action arrives as the form field `action` (a JSON string), as the reference client
  // sends it; a JSON body `{action}` or the bare action object is accepted too.
  app.put<{ Params: SlugParams; Body: unknown }>('/page/:slug/action', async (request, reply) => {
    const slug = checkSlug(request.params.slug)
    await guards.requireOwner(request)
    const body = request.body
    // A text/plain body parses to a string: neither a form nor JSON.
    if (typeof body === 'string')
      throw new ERR_UNSUPPORTED_MEDIA(`${request.headers['content-type'] ?? 'none'}: send a form or JSON`)
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new ERR_BAD_ACTION('missing form field "action"')
    const raw = 'action' in body ? (body as { action: unknown }).action : body
    if (raw === undefined || raw === '') throw new ERR_BAD_ACTION('missing form field "action"')
    const action = parseAction(raw)
    await request.site.applyAction(slug, action)
    return reply.type('text/plain; charset=utf-8').send('ok')
  })

  app.delete<{ Params: SlugParams }>('/:slug.json', async (request, reply) => {
    const slug = checkSlug(request.params.slug)
    await guards.requireOwner(request)
    const page = await request.site.recyclePage(slug)
    if (!page) throw new ERR_PAGE_NOT_FOUND(slug)
    return reply.code(200).send('')
  })

  app.get('/recycler/system/slugs.json', async (request, reply) => {
    await guards.requireOwner(request, 'see its recycler')
    const store = request.site.store
    const entries = await Promise.all((await store.listRecycled()).map(async (slug) => {
      const page = await store.getRecycled(slug).catch(() => null)
      return page ? { slug, title: page.title } : null
    }))
    return sendJson(reply, JSON.stringify(entries.filter((e) => e !== null)))
  })

  app.get<{ Params: SlugParams }>('/recycler/:slug.json', async (request, reply) => {
    const slug = checkSlug(request.params.slug)
    await guards.requireOwner(request, 'see its recycler')
    const page = await request.site.store.getRecycled(slug)
    if (!page) throw new ERR_PAGE_NOT_FOUND(slug)
    return sendJson(reply, JSON.stringify(page))
  })

  app.delete<{ Params: SlugParams }>('/recycler/:slug.json', async (request, reply) => {
    const slug = checkSlug(request.params.slug)
    await guards.requireOwner(request)
    if (!(await request.site.store.deleteRecycled(slug))) throw new ERR_PAGE_NOT_FOUND(slug)
    return reply.code(200).send('')
  })
}
