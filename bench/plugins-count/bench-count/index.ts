// A third-party plugin for the plugin-launches bench: every launch appends a line to
// $BENCH_PLUGIN_COUNT_FILE, counted independently of the kernel's own launch counter. It
// also answers GET /plugin/bench-count/hello, so requests to every site reach it.
import { appendFileSync } from 'node:fs'
import { definePlugin, route } from '../../../core/plugin-api.js'

export default definePlugin({
  name: 'bench-count',
  apiVersion: 1,
  trust: 'site',
  async launch() {
    const file = process.env.BENCH_PLUGIN_COUNT_FILE
    if (file) appendFileSync(file, `${process.pid}\n`)
    return { routes: [route({ method: 'GET', url: '/hello', handler: async (_request, ctx) => ({ site: ctx.site.name }) })] }
  },
})
