// The plugin the dispatch benchmark measures: the same handlers as bench/direct-server.ts.
import { definePlugin, route, socket } from '../../../core/plugin-api.js'

export default definePlugin({
  name: 'bench-echo',
  trust: 'site',
  async launch() {
    return {
      routes: [
        route({ method: 'GET', url: '/echo', handler: async (_request, ctx) => ({ ok: true, site: ctx.site.name }) }),
      ],
      sockets: [
        socket({
          url: '/',
          codec: 'text',
          onMessage: (conn, text) => {
            conn.send(text)
          },
        }),
      ],
    }
  },
})
