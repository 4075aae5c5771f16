// The plugin the push benchmark drives: POST /publish publishes {n, at} to key `bench` of the
// request's site, `at` being the wall-clock time (ms, sub-ms precision) just before publish.
import { Type } from 'typebox'
import { definePlugin, route } from '../../../core/plugin-api.js'

export default definePlugin({
  name: 'bench-push',
  trust: 'site',
  async launch() {
    return {
      routes: [route({
        method: 'POST', url: '/publish', schema: { body: Type.Object({ n: Type.Number() }) },
        handler: async (request, ctx) => {
          const at = performance.timeOrigin + performance.now()
          const reached = await ctx.site.publish('bench', { n: request.body.n, at })
          return { reached, at }
        },
      })],
    }
  },
})
