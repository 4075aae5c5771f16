// The operator's view of the farm, for the administrator: plugins with their state, reason,
// isolation (pid, crashes), launches and restarts, open sites, websocket connections by plugin
// and site; relaunch; a login form for a browser that is not the administrator's yet; and the
// operator's guides, so the page can link them.
import type { FastifyInstance } from 'fastify'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Guards } from '../http/request-context.js'
import type { PluginRecord, PluginRegistry, PluginStatus } from '../plugin-host/registry.js'
import type { NodeRef, PlacementView } from '../cluster/placement.js'
import type { LegacyPlugins, LegacyStatus } from '../plugin-host/legacy/host.js'
import type { SiteRegistry } from '../pages/sites.js'
import type { SocketHub } from '../sockets/socket-hub.js'
import type { ConnectionGuard } from '../http/connection-guard.js'
import { escapeHtml } from '../client/page-html.js'
import { ERR_PLUGIN_NOT_ENABLED, ERR_ROUTE_NOT_FOUND } from '../errors.js'
import { PACKAGE_ROOT } from '../package-info.js'

export interface FarmStatus {
  /** This node, in a farm of many nodes on PostgreSQL (null on a single node or before it listens). */
  node: NodeRef | null
  plugins: (PluginStatus & { connections: Record<string, number>; placed: PlacementView })[]
  /** The wiki-plugin-* server parts (core/plugin-host/legacy/): one instance for the farm, or one per site. */
  legacy: LegacyStatus[]
  sites: { open: string[] }
  connections: { total: number; byPlugin: Record<string, Record<string, number>> }
  /** HTTP connections open now, and refused over the per-address cap since start. */
  http: { open: number; refused: number }
  uptimeSeconds: number
}

/** Open connections of one plugin: the total, then per site. */
function sockets(bySite: Record<string, number>): string {
  const entries = Object.entries(bySite).sort(([a], [b]) => a.localeCompare(b))
  const total = entries.reduce((sum, [, n]) => sum + n, 0)
  return total === 0 ? '0' : `${total} (${entries.map(([site, n]) => `${escapeHtml(site)}: ${n}`).join(', ')})`
}

const STYLE = '<style>body{font:14px sans-serif;margin:2em}.error{color:#b00020}</style>'
const STATUS_STYLE = `<style>td,th{padding:4px 8px;text-align:left;border-bottom:1px solid #ddd}
.running{color:green}.failed,.unavailable{color:#b00}.restarting{color:#b60}</style>`

/** The operator's guides, served at /system/docs/<name>.md from the package's docs/ folder. */
const GUIDES: readonly (readonly [string, string])[] = [
  ['operators', 'operator guide'], ['security', 'security'], ['plugin-guide', 'plugin authors'],
  ['protocol', 'wire protocol'], ['txtzyme', 'Txtzyme'],
]
const DOCS_LINKS = `<p>Docs: ${GUIDES.map(([name, label]) => `<a href="/system/docs/${name}.md">${label}</a>`)
  .join(' · ')}</p>`

/** How a plugin runs: in-process, or isolated with its pid and the crashes since it last ran stably. */
function isolation(p: PluginStatus): string {
  if (p.isolation === 'none') return 'in process'
  const crashes = p.crashes ? `, ${p.crashes} crash${p.crashes === 1 ? '' : 'es'}` : ''
  return (
    `${p.isolation}${p.pid ? `, pid ${p.pid}` : ''}${crashes}` +
    `${p.violations ? `, ${p.violations} refused messages` : ''}`
  )
}

/** Where a plugin runs: its placement, the owner node, this node's role, and why other nodes do not run it. */
function placedCell(p: FarmStatus['plugins'][number]): string {
  const { placed } = p
  if (placed.placement === 'every-node') return 'every node'
  const owner = placed.owner ? `owner ${escapeHtml(placed.owner.id)}` : 'no owner'
  const refusals = placed.attempts.filter((a) => a.reason !== null)
    .map((a) => `<br><small>${escapeHtml(a.node.id)}: ${escapeHtml(a.reason ?? '')}</small>`).join('')
  return `one node: ${owner}; this node: ${placed.role}${refusals}`
}

function renderStatus(status: FarmStatus): string {
  const rows = status.plugins.map((p) => {
    const relaunch = `<form method="post" action="/system/plugins/${escapeHtml(p.name)}/relaunch">` +
      '<button>relaunch</button></form>'
    return (
      `<tr><td>${escapeHtml(p.name)}</td><td class="${p.state}">${p.state}</td>` +
      `<td>${escapeHtml(p.reason ?? '')}</td><td>${p.trust ?? ''}</td><td>${isolation(p)}</td>` +
      `<td class="placement">${placedCell(p)}</td>` +
      `<td>${escapeHtml(p.launchedAt ?? '')}</td>` +
      `<td>${p.launches}</td><td>${Math.max(0, p.launches - 1)}</td><td>${sockets(p.connections)}</td>` +
      `<td>${p.state === 'disabled' ? '' : relaunch}</td></tr>`
    )
  })
  const legacyRows = status.legacy.map((p) => `<tr><td>${escapeHtml(p.name)}</td>` +
    `<td class="${p.state}">${p.state}</td>` +
    `<td>${escapeHtml(p.reason ?? '')}</td><td>${escapeHtml(p.source)}</td><td>${p.mode}</td>` +
    `<td>${escapeHtml(p.launchedAt ?? '')}</td><td>${p.launches}</td><td>${p.instances}</td>` +
    `<td>${p.websocket ? 'yes' : ''}</td><td>${p.faults}</td></tr>`)
  // Shown when wiki-plugin-* server parts are installed: most farms of the reference have some.
  const legacyTable = legacyRows.length === 0 ? '' : '<h2>Legacy server parts (wiki-plugin-*)</h2>' +
    '<table><tr><th>plugin</th><th>state</th><th>reason</th><th>package</th><th>mode</th><th>launched</th>' +
    `<th>launches</th><th>instances</th><th>websocket</th><th>faults</th></tr>\n${legacyRows.join('\n')}</table>`
  const sites = status.sites.open.map((s) => `<li>${escapeHtml(s)}</li>`).join('')
  return (
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>wikifarm status</title>
${STYLE}${STATUS_STYLE}</head><body>
<h1>wikifarm status</h1>${status.node ? `<p>node ${escapeHtml(status.node.id)} (${escapeHtml(status.node.url)})</p>`
    : ''}
<p>up ${status.uptimeSeconds} s, ${status.connections.total} websocket connections,
${status.http.refused} HTTP connections refused over the per-address cap</p>${DOCS_LINKS}
<h2>Plugins</h2><table><tr><th>plugin</th><th>state</th><th>reason</th><th>trust</th><th>isolation</th>` +
    '<th>placement</th>' +
    `<th>launched</th><th>launches</th><th>restarts</th><th>sockets</th><th></th></tr>
${rows.join('\n')}</table>
${legacyTable}
<h2>Open sites (${status.sites.open.length})</h2><ul>${sites}</ul></body></html>`
  )
}

/** What /system/status.html shows a browser that is not the administrator's: a way in. */
function renderLogin(site: string): string {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>wikifarm status: log in</title>
${STYLE}</head><body>
<h1>wikifarm status</h1>
<p>This page is the farm administrator's. Log in with the administrator's secret (the farm's <code>admin</code>
setting); it logs you in on ${escapeHtml(site)}, whether or not the site is claimed.</p>
<form id="admin-login"><p><input type="password" name="secret" autocomplete="current-password" required autofocus
 size="40" aria-label="administrator secret"> <button>Log in</button></p><p class="error" role="alert"></p></form>
${DOCS_LINKS}<script src="/system/admin-login.js"></script></body></html>`
}

export async function statusRoutes(app: FastifyInstance, opts: {
  guards: Guards
  plugins: PluginRegistry
  legacy: LegacyPlugins
  sites: SiteRegistry
  hub: SocketHub
  connections: ConnectionGuard
  /** Where each plugin runs in the farm, and this node's part. */
  placement: (record: PluginRecord) => PlacementView
  node: () => NodeRef | null
}): Promise<void> {
  const { guards, plugins, legacy, sites, hub, connections } = opts
  const started = Date.now()

  function status(): FarmStatus {
    const byPlugin = hub.counts()
    return {
      node: opts.node(),
      plugins: plugins.records().map((r) => ({
        ...r.status(), connections: byPlugin[r.name] ?? {}, placed: opts.placement(r),
      })),
      legacy: legacy.statuses(),
      sites: { open: sites.openSites() },
      connections: { total: hub.size, byPlugin },
      http: { open: [...connections.open.values()].reduce((sum, n) => sum + n, 0), refused: connections.refused },
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
    }
  }

  app.get('/system/status.json', async (request) => {
    guards.requireAdmin(request)
    return status()
  })

  app.get('/system/status.html', async (request, reply) => {
    // A browser that is not (yet) the administrator's gets the login form, still as a 403.
    if (!guards.isAdmin(request))
      return reply.code(403).type('text/html; charset=utf-8').send(renderLogin(request.site.name))
    return reply.type('text/html; charset=utf-8').send(renderStatus(status()))
  })

  app.get<{ Params: { name: string } }>('/system/docs/:name.md', async (request, reply) => {
    const name = request.params.name
    if (!GUIDES.some(([guide]) => guide === name)) throw new ERR_ROUTE_NOT_FOUND(`/system/docs/${name.slice(0, 60)}.md`)
    const text = await readFile(join(PACKAGE_ROOT, 'docs', `${name}.md`), 'utf8')
    return reply.type('text/markdown; charset=utf-8').send(text)
  })

  app.post<{ Params: { name: string } }>('/system/plugins/:name/relaunch', async (request, reply) => {
    guards.requireAdmin(request)
    if (!plugins.get(request.params.name)) throw new ERR_PLUGIN_NOT_ENABLED(request.params.name.slice(0, 60))
    const result = await plugins.relaunch(request.params.name)
    // A browser form posts here from the status page; send it back there.
    if ((request.headers.accept ?? '').includes('text/html')) return reply.redirect('/system/status.html', 303)
    return result
  })
}
