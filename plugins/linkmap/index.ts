// Linkmap: for each site, the map from every page slug to the slugs its story links to,
// built lazily from the site's pages on first use, then kept current from page events (one
// edit costs work proportional to that page). Served as GET /plugin/linkmap/map.json and over
// a websocket at /plugin/linkmap: wikifarm.v1 clients get envelopes ({type:'map'} then
// {type:'update'}), plain (legacy) clients the whole map as one JSON text frame on connect and
// after every change. Each change is also published to the kernel's push key `<slug>` (the
// changed page's) as {slug, links}. See docs/linkmap.md.
import { Type } from 'typebox'
import {
  SUBPROTOCOL_V1, definePlugin, route, socket,
  type Connection, type Envelope, type PluginInstance, type SiteHandle,
} from 'wikifarm/plugin'
import { pageLinks } from '../../schemas/links.js'
import type { Page } from '../../schemas/page.js'

/** slug → the slugs it links to, in the order they first appear on the page. */
type LinkMap = Map<string, string[]>

/** What a wikifarm.v1 client may send: ask for the whole map again. */
const Message = Type.Object({ type: Type.Literal('map'), id: Type.Optional(Type.String({ maxLength: 100 })) })

interface SiteState {
  /** The finished map; null while it is being built. */
  map: LinkMap | null
  /** The build in progress (or done): every caller awaits the same one. */
  ready: Promise<LinkMap>
  /** Changes heard while the build runs: applied over its result (a later event wins). */
  pending: Map<string, string[] | null>
  /** Plain clients' frame of the whole map, serialised once per change and shared. */
  text: string | null
}

/** The links of one page: proportional to that page only. pageLinks bounds each link's length. */
export function linksOf(page: Page): string[] {
  return Object.keys(pageLinks(page))
}

function sameLinks(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((slug, i) => slug === b[i])
}

function asJson(map: LinkMap): { [slug: string]: string[] } {
  // Object.fromEntries defines own properties, so no slug can reach Object.prototype.
  return Object.fromEntries(map)
}

export default definePlugin({
  name: 'linkmap',
  trust: 'site',

  async launch(kernel): Promise<PluginInstance> {
    const sites = new Map<string, SiteState>()                 // site name ─▶ its map
    const v1Clients = new Set<Connection<Envelope>>()          // every site; filtered by conn.site.name
    const plainClients = new Set<Connection<string>>()
    let closed = false

    async function build(site: SiteHandle, state: SiteState): Promise<LinkMap> {
      const map: LinkMap = new Map()
      for (const slug of await site.listSlugs()) {
        const page = await site.getPage(slug)
        if (page) map.set(slug, linksOf(page))
      }
      for (const [slug, links] of state.pending) {
        if (links === null) map.delete(slug)
        else map.set(slug, links)
      }
      state.pending.clear()
      state.map = map
      return map
    }

    /** The site's map, building it on first use; concurrent callers share one build. */
    function mapOf(site: SiteHandle): Promise<LinkMap> {
      let state = sites.get(site.name)
      if (!state) {
        const fresh: SiteState = { map: null, ready: Promise.resolve(new Map()), pending: new Map(), text: null }
        fresh.ready = build(site, fresh).catch((err: unknown) => {
          // A failed build is forgotten so the next use tries again.
          if (sites.get(site.name) === fresh) sites.delete(site.name)
          throw err
        })
        sites.set(site.name, fresh)
        state = fresh
      }
      return state.ready
    }

    function plainFrame(name: string, map: LinkMap): string {
      const state = sites.get(name)
      if (state?.map === map) return (state.text ??= JSON.stringify(asJson(map)))
      return JSON.stringify(asJson(map))
    }

    /**
     * A page's links changed (links) or it was deleted (null): update the map and tell the
     * site's clients. False when it is known not to be news (the map already says so).
     */
    function change(name: string, slug: string, links: string[] | null): boolean {
      const state = sites.get(name)
      if (!state) return true                   // not built yet: the lazy build will read the page
      if (!state.map) {                         // building: apply when the build finishes
        state.pending.set(slug, links)
        return true
      }
      const before = state.map.get(slug)
      if (links === null) {
        if (before === undefined) return false
        state.map.delete(slug)
      } else {
        if (sameLinks(before, links)) return false // an edit that changed no link is not news
        state.map.set(slug, links)
      }
      state.text = null
      const update: Envelope = { type: 'update', data: { slug, links } }
      for (const conn of v1Clients) {
        if (conn.site.name === name) conn.send(update)
      }
      let frame: string | null = null
      for (const conn of plainClients) {
        if (conn.site.name === name) conn.send(frame ??= plainFrame(name, state.map))
      }
      return true
    }

    /** The same news to the kernel's push subscribers of the page's key, `<slug>`, on its site only. */
    function publish(site: SiteHandle, slug: string, links: string[] | null): void {
      site.publish(slug, { slug, links }).catch((err: unknown) => {
        kernel.log.warn('linkmap publish failed', { site: site.name, slug, err: String(err) })
      })
    }

    async function connectV1(conn: Connection<Envelope>): Promise<void> {
      const map = await mapOf(conn.site)
      if (closed || conn.closed) return
      // No await between sending the map and joining: no update can fall in between.
      conn.send({ type: 'map', data: asJson(map) })
      v1Clients.add(conn)
    }

    async function connectPlain(conn: Connection<string>): Promise<void> {
      const map = await mapOf(conn.site)
      if (closed || conn.closed) return
      conn.send(plainFrame(conn.site.name, map))
      plainClients.add(conn)
    }

    const v1Socket = (url: string) => socket({
      url, codec: 'json', protocol: SUBPROTOCOL_V1, message: Message,
      onConnect: connectV1,
      onMessage: async (conn, message) => {
        const map = await mapOf(conn.site)
        conn.send({ type: 'map', id: message.id, data: asJson(map) })
      },
      onClose: (conn) => { v1Clients.delete(conn) },
    })
    const plainSocket = (url: string) => socket({
      url, codec: 'text',
      onConnect: connectPlain,
      onClose: (conn) => { plainClients.delete(conn) },
    })

    kernel.log.info('linkmap ready')
    return {
      routes: [
        route({
          method: 'GET', url: '/map.json',
          schema: { response: Type.Record(Type.String(), Type.Array(Type.String())) },
          handler: async (_request, ctx) => asJson(await mapOf(ctx.site)),
        }),
      ],
      sockets: [
        v1Socket('/'), plainSocket('/'),
        // The old client's path. The <host> segment is not read: every connection is served
        // the map of the site its Host header chose, so no path can reach another site.
        v1Socket('/:host'), plainSocket('/:host'),
      ],
      events: {
        'page.changed': (event, ctx) => {
          const links = linksOf(event.page)
          if (change(event.site, event.slug, links)) publish(ctx.site, event.slug, links)
        },
        'page.deleted': (event, ctx) => {
          if (change(event.site, event.slug, null)) publish(ctx.site, event.slug, null)
        },
        'site.closed': (event) => { sites.delete(event.site) },
      },
      async close() {
        closed = true
        v1Clients.clear()
        plainClients.clear()
        sites.clear()
      },
    }
  },
})
