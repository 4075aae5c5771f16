// Fuzzed slugs, item ids and plugin names in every route that takes one (page reads and
// writes, the recycler, HTML views, plugin REST paths and identity parameters, the push route,
// the relaunch route), sent by the owner: never a 5xx beyond the documented ones, every error
// a coded JSON body, nothing outside the data folder, the other site untouched.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { Agent, request as httpRequest } from 'node:http'
import { join } from 'node:path'
import { claim, listenLocal, putAction, snapshot, startFarm, testData } from './fixtures/test-farm.js'
import { checkInvariants, dataIn, fuzz, percentEncode, RUNS } from './fixtures/fuzz.js'

const HOST = 'a.example'
const OTHER = 'b.example'

/** A path segment: encoded strings, raw pieces (dot segments, %-escapes good and broken), long ones. */
const segment = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 30 }).map(percentEncode) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }).map(percentEncode) },
  {
    weight: 4,
    arbitrary: fc
      .array(
        fc.constantFrom(
          'a',
          'x',
          'welcome-visitors',
          'A',
          '-',
          '_',
          '.',
          '..',
          '%2e',
          '%2E%2e',
          '%2f',
          '%2F',
          '%5c',
          '%00',
          '%0a',
          '%',
          '%E0%A4%A',
          '%C0%AE',
          '%ff',
          '%20',
          '~',
          '.json',
          '.html',
          '__proto__',
          'constructor',
          '0000000000000001',
          ';',
          ',',
          '!',
          '*',
          "'",
          '(',
          ')',
          '$',
          '@',
          '=',
          '+',
        ),
        { minLength: 1, maxLength: 8 },
      )
      .map((p) => p.join('')),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('a', '-', '0', '%41'), fc.integer({ min: 90, max: 900 }))
      .map(([c, n]) => c.repeat(n)),
  },
  { weight: 2, arbitrary: fc.stringMatching(/^[a-z0-9-]{1,12}$/) },
)

type Method = 'GET' | 'PUT' | 'POST' | 'DELETE' | 'HEAD'
interface Route { method: Method; url: (s: string, u: string) => string; form?: boolean }

const ROUTES: Route[] = [
  { method: 'GET', url: (s) => `/${s}.json` },
  { method: 'HEAD', url: (s) => `/${s}.json` },
  { method: 'DELETE', url: (s) => `/${s}.json` },
  { method: 'GET', url: (s) => `/${s}.html` },
  { method: 'GET', url: (s) => `/${s}` },
  { method: 'PUT', url: (s) => `/page/${s}/action`, form: true },
  { method: 'PUT', url: (s, u) => `/page/${s}/${u}`, form: true },
  { method: 'GET', url: (s) => `/recycler/${s}.json` },
  { method: 'DELETE', url: (s) => `/recycler/${s}.json` },
  { method: 'POST', url: (s) => `/system/plugins/${s}/relaunch` },
  { method: 'GET', url: (s, u) => `/plugin/${s}/${u}` },
  { method: 'POST', url: (s) => `/plugin/${s}`, form: true },
  { method: 'GET', url: (s) => `/plugin/linkmap/${s}` },
  { method: 'GET', url: (s, u) => `/plugin/linkmap/?page=${s}&item=${u}` },
  { method: 'GET', url: (s, u) => `/plugin/linkmap/?lineup=${s},${u}&page=${s}&page=${u}` },
  { method: 'GET', url: (s, u) => `/plugin/txtzyme/status?item=${s}&lineup=${u}` },
  { method: 'GET', url: (s, u) => `/system/push?page=${s}&item=${u}` },
  { method: 'GET', url: (s) => `/system/${s}.json` },
  { method: 'GET', url: (s, u) => `/view/${s}/${u}` },
]

const ACTION = `action=${encodeURIComponent(JSON.stringify({ type: 'create', item: { title: 'Fuzzed' }, date: 1 }))}`

/** The 5xx a client can cause that docs/protocol.md lists: a plugin that is not running. */
function documented(status: number, body: string): boolean {
  return status === 503 && body.includes('WIKIFARM_ERR_PLUGIN_UNAVAILABLE')
}

function check(method: string, url: string, status: number, type: string | undefined, body: string): void {
  if (status >= 500 && !documented(status, body)) throw new Error(`${method} ${url}: ${status} ${body.slice(0, 300)}`)
  if (status >= 400 && method !== 'HEAD') {
    const parsed = /^application\/json/.test(type ?? '') ? JSON.parse(body) as { code?: unknown } : null
    if (typeof parsed?.code !== 'string')
      throw new Error(`${method} ${url}: ${status} without a coded JSON body: ${type} ${body.slice(0, 200)}`)
  }
}

async function fuzzFarm(t: Test) {
  const parent = testData(t, { data: {} })
  const data = dataIn(parent)
  // txtzyme finds no device here: its routes answer the documented 503.
  const farm = await startFarm(t, { farm: true, allowed: [HOST, OTHER] }, data)
  const owner = await claim(t, farm.app, HOST)
  const other = await claim(t, farm.app, OTHER)
  t.equal(
    (await putAction(farm.app, OTHER, other.cookie, 'kept', { type: 'create', item: { title: 'Kept' }, date: 1 }))
      .statusCode,
    200,
  )
  await farm.kernel.sites.open(OTHER).flush()
  const before = await snapshot(join(data, OTHER))
  return { parent, data, farm, owner, before }
}

const cases = fc.tuple(fc.constantFrom(...ROUTES), segment, segment)

t.test(`${RUNS} fuzzed slugs, ids and names in every route (inject)`, async (t) => {
  const { parent, data, farm, owner, before } = await fuzzFarm(t)
  await fuzz(t, 'route parameters, injected', cases, async ([route, s, u]) => {
    const url = route.url(s, u)
    const headers: Record<string, string> = { host: HOST, cookie: owner.cookie }
    if (route.form) headers['content-type'] = 'application/x-www-form-urlencoded'
    const response = await farm.app.inject({
      method: route.method,
      url,
      headers,
      ...(route.form ? { payload: ACTION } : {}),
    })
    check(route.method, url, response.statusCode, response.headers['content-type'] as string | undefined, response.body)
  })
  await farm.kernel.close()
  await checkInvariants(t, {
    parent,
    data,
    farm: true,
    allowedSites: (n) => n === HOST || n === OTHER,
    untouched: { [OTHER]: before },
  })
})

t.test('fuzzed route parameters over a real socket, where the URL arrives exactly as written', async (t) => {
  const { parent, data, farm, owner, before } = await fuzzFarm(t)
  const port = await listenLocal(farm)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const send = (method: string, path: string, headers: Record<string, string>, body?: string) =>
    new Promise<{ status: number; type: string | undefined; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: res.headers['content-type'],
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        )
        res.on('error', reject)
      })
      req.setTimeout(5000, () => req.destroy(new Error(`${method} ${path} timed out`)))
      req.on('error', reject)
      req.end(body)
    })
  await fuzz(t, 'route parameters, on the wire', cases, async ([route, s, u]) => {
    const url = route.url(s, u)
    const headers: Record<string, string> = { host: HOST, cookie: owner.cookie }
    if (route.form) headers['content-type'] = 'application/x-www-form-urlencoded'
    const response = await send(route.method, url, headers, route.form ? ACTION : undefined)
    check(route.method, url, response.status, response.type, response.body)
  }, { runs: Math.min(RUNS, 3000) })
  t.equal((await send('GET', '/welcome-visitors.json', { host: HOST })).status, 200, 'the farm still serves')
  agent.destroy()
  await farm.kernel.close()
  await checkInvariants(t, {
    parent,
    data,
    farm: true,
    allowedSites: (n) => n === HOST || n === OTHER,
    untouched: { [OTHER]: before },
  })
})
