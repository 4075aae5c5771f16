// The reference wiki-server's /system routes, the sitemaps, the favicon and the home redirect.
import type { FastifyInstance } from 'fastify'
import { LRUCache } from 'lru-cache'
import type { ClientPlugin } from '../client/plugins.js'
import type { Guards } from '../http/request-context.js'
import { decodeFlag, drawFlag } from '../client/favicon.js'
import type { SiteIndexes } from '../pages/site-index.js'
import type { SitemapEntry } from '../../schemas/sitemap.js'
import { ERR_UNSUPPORTED_MEDIA, ERR_VALIDATION } from '../errors.js'

const JSON_TYPE = 'application/json; charset=utf-8'
/** Bytes of rendered exports and sitemap.xml kept, shared by every site. */
const RENDERED_CACHE_BYTES = 64 * 1024 * 1024

/**
 * Whole-site renderings (export.json, sitemap.xml) are built once per version of the site and
 * served from memory until a page changes: a visitor repeating them costs a copy, not a walk
 * of every page. The sitemap's version moves on every write through the farm (and differs
 * after a site is opened again), so it keys the rendering; entries past the byte budget are
 * forgotten, least recently used first.
 */
class RenderedCache {
  readonly #cache = new LRUCache<string, { version: number; text: string }>({
    maxSize: RENDERED_CACHE_BYTES, sizeCalculation: (value) => Math.max(1, value.text.length),
  })

  async get(key: string, version: number, render: () => Promise<string>): Promise<string> {
    const hit = this.#cache.get(key)
    if (hit && hit.version === version) return hit.text
    const text = await render()
    if (text.length <= RENDERED_CACHE_BYTES / 4) this.#cache.set(key, { version, text })
    return text
  }
}

function xmlEscape(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`)
}

function sitemapXml(entries: SitemapEntry[], base: string): string {
  const urls = entries.map((entry) => {
    // As the reference: a lastmod only for a valid date (toISOString throws on others).
    const when = entry.date !== undefined ? new Date(entry.date) : null
    const lastmod =
      when && Number.isFinite(when.getTime()) ? `<lastmod>${when.toISOString().slice(0, 10)}</lastmod>` : ''
    return `  <url><loc>${xmlEscape(`${base}/${entry.slug}.html`)}</loc>${lastmod}</url>`
  })
  return (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' +
    '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n' +
    urls.join('\n') +
    (urls.length ? '\n' : '') +
    '</urlset>\n'
  )
}

export async function systemRoutes(app: FastifyInstance, opts: {
  guards: Guards
  clientPlugins: ClientPlugin[]
  siteIndexes: SiteIndexes
  home: string
  versions: Record<string, string>
}): Promise<void> {
  const { guards, clientPlugins, home } = opts
  const pluginsJson = JSON.stringify(clientPlugins.map((p) => p.name))
  const factoriesJson = JSON.stringify(clientPlugins.flatMap((p) => (p.factory ? [p.factory] : [])))
  const rendered = new RenderedCache()

  app.get('/system/slugs.json', async (request, reply) =>
    reply.type(JSON_TYPE).send(JSON.stringify(await request.site.store.listSlugs())))

  // The client reloads a neighbour's sitemap only when its Last-Modified is newer than the
  // copy it holds, so the header is part of the protocol, not a cache hint.
  app.get('/system/sitemap.json', async (request, reply) => {
    const sitemap = await request.site.sitemap()
    return reply.type(JSON_TYPE).header('last-modified', new Date(sitemap.modifiedAt).toUTCString())
      .header('cache-control', 'public, max-age=0').send(sitemap.toJSON())
  })

  app.get('/system/site-index.json', async (request, reply) =>
    reply.type(JSON_TYPE).header('cache-control', 'public, max-age=0').send(await opts.siteIndexes.json(request.site)))

  app.get('/sitemap.xml', async (request, reply) => {
    // request.host is the Host header, or behind a trusted proxy the host it forwarded.
    const base = `${request.protocol}://${request.host}`
    const sitemap = await request.site.sitemap()
    const body = await rendered.get(`xml\0${request.site.name}\0${base}`, sitemap.version,
      async () => sitemapXml(sitemap.entries(), base))
    return reply.type('application/xml; charset=utf-8').send(body)
  })

  app.get('/system/plugins.json', async (_request, reply) => reply.type(JSON_TYPE).send(pluginsJson))
  app.get('/system/factories.json', async (_request, reply) => reply.type(JSON_TYPE).send(factoriesJson))

  app.get('/system/export.json', async (request, reply) => {
    const store = request.site.store
    const sitemap = await request.site.sitemap()
    const json = await rendered.get(`export\0${request.site.name}`, sitemap.version, async () => {
      const pages: Record<string, unknown> = {}
      for (const slug of await store.listSlugs()) {
        const stored = await store.getPage(slug).catch(() => null)
        if (stored) pages[slug] = stored.page
      }
      return JSON.stringify(pages)
    })
    return reply.type(JSON_TYPE).send(json)
  })

  app.get('/system/version.json', async (request, reply) => {
    guards.requireAdmin(request)
    return reply.type(JSON_TYPE).send(JSON.stringify(opts.versions))
  })

  app.get('/favicon.png', async (request, reply) => {
    const png = await request.site.store.readStatus('favicon.png') ?? drawFlag(request.site.name)
    return reply.type('image/png').header('cache-control', 'public, max-age=3600').send(png)
  })

  app.post<{ Body: unknown }>('/favicon.png', async (request, reply) => {
    await guards.requireOwner(request)
    if (typeof request.body === 'string')
      throw new ERR_UNSUPPORTED_MEDIA(`${request.headers['content-type'] ?? 'none'}: send a form or JSON`)
    const image = (request.body as { image?: unknown } | null)?.image
    const png = decodeFlag(image)
    if (!png) throw new ERR_VALIDATION('field "image" must be a PNG data URL')
    await request.site.store.writeStatus('favicon.png', png)
    return reply.type('text/plain; charset=utf-8').send('Favicon Saved')
  })

  app.get('/', async (_request, reply) => reply.redirect(`${home}.html`))

}
