// The operator's view of the farm, for the administrator: plugins with their state, reason
// and launch time, open sites, websocket connections by plugin and site; and relaunch.
import type { FastifyInstance } from 'fastify'
import type { Guards } from '../http/request-context.js'
import type { PluginRegistry, PluginStatus } from '../plugin-host/registry.js'
import type { SiteRegistry } from '../pages/sites.js'
import type { SocketHub } from '../sockets/socket-hub.js'
import { escapeHtml } from '../client/page-html.js'
import { ERR_PLUGIN_NOT_ENABLED } from '../errors.js'

export interface FarmStatus {
  plugins: (PluginStatus & { connections: Record<string, number> })[]
  sites: { open: string[] }
  connections: { total: number; byPlugin: Record<string, Record<string, number>> }
  uptimeSeconds: number
}

/** Open connections of one plugin: the total, then per site. */
function sockets(bySite: Record<string, number>): string {
  const entries = Object.entries(bySite).sort(([a], [b]) => a.localeCompare(b))
  const total = entries.reduce((sum, [, n]) => sum + n, 0)
  return total === 0 ? '0' : `${total} (${entries.map(([site, n]) => `${escapeHtml(site)}: ${n}`).join(', ')})`
}

function renderStatus(status: FarmStatus): string {
  const rows = status.plugins.map((p) => {
    const crashes = p.crashes ? `, ${p.crashes} crashes` : ''
    const isolation = p.isolation === 'none' ? '' : ` (${p.isolation}${crashes})`
    const relaunch = `<form method="post" action="/system/plugins/${escapeHtml(p.name)}/relaunch">` +
      '<button>relaunch</button></form>'
    return (
      `<tr><td>${escapeHtml(p.name)}</td><td class="${p.state}">${p.state}</td>` +
      `<td>${escapeHtml(p.reason ?? '')}</td><td>${p.trust ?? ''}${isolation}</td>` +
      `<td>${escapeHtml(p.launchedAt ?? '')}</td>` +
      `<td>${p.launches}</td><td>${sockets(p.connections)}</td>` +
      `<td>${p.state === 'disabled' ? '' : relaunch}</td></tr>`
    )
  })
  const sites = status.sites.open.map((s) => `<li>${escapeHtml(s)}</li>`).join('')
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>wikifarm status</title>
<style>body{font:14px sans-serif;margin:2em}td,th{padding:4px 8px;text-align:left;border-bottom:1px solid #ddd}
.running{color:green}.failed,.unavailable{color:#b00}.restarting{color:#b60}</style></head><body>
<h1>wikifarm status</h1><p>up ${status.uptimeSeconds} s, ${status.connections.total} websocket connections</p>
<h2>Plugins</h2><table>
<tr><th>plugin</th><th>state</th><th>reason</th><th>trust</th><th>launched</th><th>launches</th><th>sockets</th>
<th></th></tr>
${rows.join('\n')}</table>
<h2>Open sites (${status.sites.open.length})</h2><ul>${sites}</ul></body></html>`
}

export async function statusRoutes(app: FastifyInstance, opts: {
  guards: Guards
  plugins: PluginRegistry
  sites: SiteRegistry
  hub: SocketHub
}): Promise<void> {
  const { guards, plugins, sites, hub } = opts
  const started = Date.now()

  function status(): FarmStatus {
    const byPlugin = hub.counts()
    return {
      plugins: plugins.statuses().map((p) => ({ ...p, connections: byPlugin[p.name] ?? {} })),
      sites: { open: sites.openSites() },
      connections: { total: hub.size, byPlugin },
      uptimeSeconds: Math.round((Date.now() - started) / 1000),
    }
  }

  app.get('/system/status.json', async (request) => {
    guards.requireAdmin(request)
    return status()
  })

  app.get('/system/status.html', async (request, reply) => {
    guards.requireAdmin(request)
    return reply.type('text/html; charset=utf-8').send(renderStatus(status()))
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
