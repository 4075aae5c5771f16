// The session crosses the isolation boundary as it is used in-process: a fresh visitor gets a
// cookie only when the handler read `ctx.session.id` (a plugin that never looks costs no cookie,
// no signature), and the label the plugin read is the one it reads again with that cookie.
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { http, listenLocal, startFarm } from './fixtures/test-farm.js'
import { ISOLATION_MODES } from '../core/plugin-host/isolation/channel.js'

const PLUGINS = fileURLToPath(new URL('./fixtures/plugins-pipeline/', import.meta.url))
const A = 'a.example'

for (const mode of ISOLATION_MODES) {
  t.test(`${mode}: a cookie only when the session id was read, and the label is stable with it`, async (t) => {
    const farm = await startFarm(t, { farm: true, plugins: { piper: { isolation: mode } } }, undefined,
      { builtinPluginsDir: PLUGINS })
    const port = await listenLocal(farm)
    const quiet = await http(port, 'GET', '/plugin/piper/quiet', A)
    t.equal(quiet.status, 200)
    t.equal(quiet.headers['set-cookie'], undefined, 'no cookie for a handler that did not read the id')
    const first = await http(port, 'GET', '/plugin/piper/session', A)
    const cookie = String(first.headers['set-cookie'] ?? '').split(';')[0] ?? ''
    t.match(cookie, /^wikifarm_session=/, 'a cookie for a handler that read it')
    const label = (JSON.parse(first.body) as { label: string }).label
    t.match(label, /^[A-Za-z0-9_-]{22}$/)
    const again = await http(port, 'GET', '/plugin/piper/session', A, { headers: { cookie } })
    t.equal((JSON.parse(again.body) as { label: string }).label, label, 'the same label with that cookie')
  })
}
