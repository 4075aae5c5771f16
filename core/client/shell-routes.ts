// The HTML entry points that start the federated-wiki client: /<slug>.html (one page,
// rendered by the server too) and lineups /view/<slug>/view/<slug>… (empty pages the client
// fetches). Each carries the visitor's standing on this site for the security plugin.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { checkSlug, type Guards } from '../http/request-context.js'
import { renderStory } from './page-html.js'
import { renderClientShell, type ClientAssets, type ShellSecurity } from './shell.js'
import { lineupTitle, parseLineup } from './lineup.js'
import { ERR_PAGE_NOT_FOUND, ERR_ROUTE_NOT_FOUND } from '../errors.js'

const HTML = 'text/html; charset=utf-8'

async function security(request: FastifyRequest, guards: Guards): Promise<ShellSecurity> {
  const owner = await request.site.owner()
  const session = request.session
  return {
    // Logged in on this site: the cookie holds a proved secret for it (owner or admin).
    authenticated: session.friend !== null && session.site === request.site.name,
    claimed: owner !== null,
    isOwner: await guards.isOwner(request),
    ownerName: owner?.name ?? '',
  }
}

export interface ShellOptions { guards: Guards; assets: ClientAssets; neighbors: string }

/** Answers a lineup path with the client shell; throws 404 when the path is not a lineup. */
export function lineupHandler(opts: ShellOptions) {
  return async (request: FastifyRequest, reply: FastifyReply, path: string): Promise<FastifyReply> => {
    const entries = parseLineup(path)
    if (!entries) throw new ERR_ROUTE_NOT_FOUND(`GET ${path.slice(0, 200)} (not a lineup of /<site>/<slug> pairs)`)
    const pages = entries.map((entry) => ({ id: entry.id, site: entry.site, rendered: null }))
    return reply
      .type(HTML)
      .send(
        renderClientShell(
          opts.assets,
          lineupTitle(entries),
          pages,
          await security(request, opts.guards),
          opts.neighbors,
        ),
      )
  }
}

export async function shellRoutes(app: FastifyInstance, opts: ShellOptions): Promise<void> {
  const { guards, assets, neighbors } = opts
  const lineup = lineupHandler(opts)

  app.get<{ Params: { slug: string } }>('/:slug.html', async (request, reply) => {
    const slug = checkSlug(request.params.slug)
    const stored = await request.site.getPage(slug)
    if (!stored) throw new ERR_PAGE_NOT_FOUND(slug)
    const page = { id: slug, site: null, rendered: { title: stored.page.title, storyHtml: renderStory(stored.page) } }
    return reply
      .type(HTML)
      .send(renderClientShell(assets, stored.page.title, [page], await security(request, guards), neighbors))
  })

  // A lineup that starts on another site (/fed.wiki.org/some-page/view/local-page) has no
  // fixed prefix to route on: the kernel's not-found handler tries lineupHandler last.
  app.get('/view/*', async (request, reply) => lineup(request, reply, request.url.split('?')[0] ?? ''))
}
