// A third-party plugin for the plugin-launches bench: every launch appends a line to the file
// named in its options, counted independently of the kernel's own launch counter. The file
// comes through options, not the environment: as a third-party `site` plugin it runs in a
// worker by default, and isolated plugins do not see the farm's environment. It also answers
// GET /plugin/bench-count/hello, so requests to every site reach it.
import { appendFileSync } from 'node:fs'
import { Type } from 'typebox'
import { definePlugin, route } from '../../../core/plugin-api.js'

export default definePlugin({
  name: 'bench-count',
  trust: 'site',
  options: Type.Object({ countFile: Type.Optional(Type.String()) }),
  async launch(_kernel, options) {
    if (options.countFile) appendFileSync(options.countFile, `${process.pid}\n`)
    return {
      routes: [route({ method: 'GET', url: '/hello', handler: async (_request, ctx) => ({ site: ctx.site.name }) })],
    }
  },
})
