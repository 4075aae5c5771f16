// Fuzzed Origin headers: a foreign Origin (another site of the same farm, a look-alike, another
// scheme or port, `null`, garbage) never upgrades a websocket (cross-site websocket hijacking)
// and never changes state over REST, even with the owner's cookie; the site's own origin, in
// any letter case, and the configured extra origins do. The oracle is the documented rule.
import t from 'tap'
import fc from 'fast-check'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { actionForm, claim, FORM, listenLocal, putAction, startFarm, testData } from './fixtures/test-farm.js'
import { refusedUpgrade } from './fixtures/ws-client.js'
import { dataIn, fuzz, memoryParent, RUNS } from './fixtures/fuzz.js'

const HOST = 'a.example'
const EXTRA = 'https://editor.example'

const randomCase = (s: string) => fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length })
  .map((flips) => [...s].map((c, i) => (flips[i] ? c.toUpperCase() : c)).join(''))

const origin = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('http://a.example', 'https://a.example', EXTRA).chain(randomCase) },
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        fc.constantFrom('http://', 'https://', 'ws://', 'file://', '', 'http:/', '//', 'HTTP://'),
        fc.constantFrom(
          'a.example',
          'b.example',
          'a.example.evil.com',
          'evil.com',
          'a.example@evil.com',
          'evil.com#a.example',
          'a.exampl',
          'xa.example',
          'editor.example',
          '127.0.0.1',
          'localhost',
        ),
        fc.constantFrom('', ':80', ':443', ':3000', '.', '/', '/a.example', '?a.example', ' '),
      )
      .map(([s, h, tail]) => s + h + tail),
  },
  { weight: 1, arbitrary: fc.constantFrom('null', '', ' http://a.example', 'http://a.example ', 'http://a.example\t') },
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
)

/** docs/protocol.md: the site's own origins (either scheme, its Host as sent) and the operator's extras. */
function allowed(value: string): boolean {
  const v = value.toLowerCase()
  return v === `http://${HOST}` || v === `https://${HOST}` || v === EXTRA
}

t.test(`${RUNS} fuzzed Origins on every state-changing REST route`, async (t) => {
  const { parent, remove } = memoryParent(() => testData(t, { data: {} }))
  const farm = await startFarm(t, { farm: true, origins: [EXTRA] }, dataIn(parent))
  t.teardown(remove)
  const owner = await claim(t, farm.app, HOST)
  t.equal(
    (await putAction(farm.app, HOST, owner.cookie, 'victim', { type: 'create', item: { title: 'Victim' }, date: 1 }))
      .statusCode,
    200,
  )
  const created = new Set(['victim'])
  // GET /logout changes state too; sent with a visitor's cookie, so an allowed logout ends no login the fuzz needs.
  const visit = await farm.app.inject({ url: '/welcome-visitors.html', headers: { host: HOST } })
  const visitor = String(visit.headers['set-cookie']).split(';')[0] ?? ''
  let n = 0
  const kinds = ['put', 'delete', 'reclaim', 'favicon', 'relaunch', 'logout-post', 'logout', 'cross-site'] as const
  await fuzz(t, 'Origin on REST writes', fc.tuple(origin, fc.constantFrom(...kinds)), async ([o, kind]) => {
    const headers: Record<string, string> = { host: HOST, cookie: owner.cookie, origin: o }
    const slug = `p${n++}`
    let response
    switch (kind) {
      case 'put':
        response = await farm.app.inject({
          method: 'PUT',
          url: `/page/${slug}/action`,
          headers: { ...headers, 'content-type': FORM },
          payload: actionForm({ type: 'create', item: { title: slug }, date: 1 }),
        })
        if (response.statusCode === 200) created.add(slug)
        break
      case 'delete':
        response = await farm.app.inject({ method: 'DELETE', url: '/victim.json', headers })
        if (response.statusCode === 200) created.delete('victim')
        break
      case 'reclaim':
        response = await farm.app.inject({
          method: 'POST',
          url: '/auth/reclaim/',
          headers: { ...headers, 'content-type': 'text/plain' },
          payload: owner.secret,
        })
        break
      case 'favicon':
        response = await farm.app.inject({
          method: 'POST',
          url: '/favicon.png',
          headers: { ...headers, 'content-type': 'application/json' },
          payload: { image: 'data:image/png;base64,iVBORw0KGgo=' },
        })
        break
      case 'relaunch':
        response = await farm.app.inject({ method: 'POST', url: '/system/plugins/linkmap/relaunch', headers })
        break
      case 'logout-post':
        response = await farm.app.inject({ method: 'POST', url: '/plugin/linkmap/', headers })
        break
      case 'logout':
        response = await farm.app.inject({ method: 'GET', url: '/logout', headers: { ...headers, cookie: visitor } })
        break
      default: {
        // No Origin, but the browser says the request is cross-site: refused the same.
        const { origin: _o, ...rest } = headers
        response = await farm.app.inject({
          method: 'PUT',
          url: `/page/${slug}/action`,
          headers: { ...rest, 'sec-fetch-site': 'cross-site', 'content-type': FORM },
          payload: actionForm({ type: 'create', item: { title: slug }, date: 1 }),
        })
        if (response.statusCode !== 403 || response.json().code !== 'WIKIFARM_ERR_FOREIGN_ORIGIN')
          throw new Error(`Sec-Fetch-Site: cross-site answered ${response.statusCode}`)
        return
      }
    }
    const refused =
      response.statusCode === 403 && (response.json() as { code?: string }).code === 'WIKIFARM_ERR_FOREIGN_ORIGIN'
    if (allowed(o) === refused)
      throw new Error(`${kind} with Origin ${JSON.stringify(o)}: ${response.statusCode} ${response.body.slice(0, 200)}`)
  })
  await farm.kernel.sites.open(HOST).flush()
  const onDisk = (await readdir(join(farm.data, HOST, 'pages'))).filter((f) => !f.startsWith('.')).sort()
  t.same(onDisk, [...created].sort(), 'exactly the pages the allowed origins wrote exist')
})

t.test('fuzzed Origins on websocket upgrades: a foreign one never gets a 101', async (t) => {
  const farm = await startFarm(t, { farm: true, origins: [EXTRA] })
  const owner = await claim(t, farm.app, HOST)
  const port = await listenLocal(farm)
  // Node refuses some header bytes before sending: those are not Origins a browser can send.
  const sendable = origin.filter((o) => /^[\x20-\x7e]*$/.test(o) && o.trim() === o && o !== '')
  let upgraded = 0
  await fuzz(
    t,
    'Origin on upgrades',
    fc.tuple(sendable, fc.constantFrom('/system/push', '/plugin/linkmap/', '/plugin/linkmap/v1')),
    async ([o, path]) => {
      const answer = await refusedUpgrade(port, path, HOST, {
        origin: o,
        cookie: owner.cookie,
        protocols: path.endsWith('v1') ? 'wikifarm.v1' : [],
      })
      if (answer.status === 101) upgraded++
      const ok = allowed(o)
        ? answer.status === 101
        : answer.status === 403 && answer.body.includes('WIKIFARM_ERR_FOREIGN_ORIGIN')
      if (!ok)
        throw new Error(
          `upgrade of ${path} with Origin ${JSON.stringify(o)}: ${answer.status} ${answer.body.slice(0, 200)}`,
        )
    },
    { runs: Math.min(RUNS, 1500) },
  )
  t.ok(upgraded > 0, `${upgraded} upgrades from the site's own origins went through`)
})
