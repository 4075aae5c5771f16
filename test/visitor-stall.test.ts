// One visitor's pathological page does not stall another site: a farm in its own process
// saves, serves (JSON and server-rendered HTML), indexes and maps a 4 MB paragraph of `[` on
// one site while another site's reads are timed. Before the parsers of page text were made
// linear, the other site waited 22 s (save), 7 s (view) and 10 s (site index).
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { httpCall } from './fixtures/http-client.js'
import { RATE_LIMITS_OFF } from '../core/http/rate-limits.js'

const ATTACKER = 'a.example'
const BYSTANDER = 'b.example'
const ORIGIN = `http://${ATTACKER}`
/** The longest a bystander's read may wait on a loaded 2-core machine; the old parsers took 7 to 22 s. */
const STALL_BOUND_MS = 1500
const MB = 1024 * 1024

t.test('a 4 MB page of [ on one site does not stall reads of another', async (t) => {
  const data = t.testdir()
  const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures/farm-child.js')], {
    env: {
      ...process.env,
      WIKIFARM_TEST_CONFIG: JSON.stringify({
        data,
        farm: true,
        ...RATE_LIMITS_OFF,
        uploadLimit: 20 * MB,
        itemLimit: 8 * MB,
        actionLimit: 8 * MB,
      }),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => { child.kill('SIGKILL') })
  const [chunk] = await once(child.stdout!, 'data') as [Buffer]
  const port = Number(chunk.toString().trim())

  const login = await httpCall(port, { method: 'POST', path: '/login', headers: { host: ATTACKER, origin: ORIGIN } })
  t.equal(login.status, 200, 'the attacker claims a site')
  const cookie = String(login.headers['set-cookie']).split(';')[0] as string

  const latencies: number[] = []
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      const started = performance.now()
      const read = await httpCall(port, { path: '/welcome-visitors.json', headers: { host: BYSTANDER } })
      if (read.status !== 200) throw new Error(`bystander read answered ${read.status}`)
      latencies.push(performance.now() - started)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()

  const text = '['.repeat(4 * 1024 * 1024)
  const action = {
    type: 'create',
    item: { title: 'Evil', story: [{ type: 'paragraph', id: 'a'.repeat(16), text }] },
    date: 1,
  }
  const save = await httpCall(port, {
    method: 'PUT', path: '/page/evil/action', body: JSON.stringify({ action }),
    headers: { host: ATTACKER, origin: ORIGIN, cookie, 'content-type': 'application/json' },
  })
  t.equal(save.status, 200, 'the page is saved')
  for (const path of ['/evil.json', '/evil.html', '/system/site-index.json', '/system/sitemap.json', '/sitemap.xml']) {
    t.equal((await httpCall(port, { path, headers: { host: ATTACKER } })).status, 200, `GET ${path}`)
  }
  sampling = false
  await sampler
  const worst = Math.max(...latencies)
  t.ok(latencies.length >= 5, `${latencies.length} bystander reads during the attack`)
  t.ok(worst < STALL_BOUND_MS, `the bystander's slowest read took ${worst.toFixed(0)} ms (bound ${STALL_BOUND_MS} ms)`)
})
