// Fuzzed Host headers (case, ports, dots, `..`, slashes, IDN, control characters, very long)
// on the routes that read, claim and write: never a 5xx, nothing outside the data folder,
// no folder for a host that is not served, and the served sites' pages intact.
import t from 'tap'
import fc from 'fast-check'
import { join } from 'node:path'
import { claim, listenLocal, putAction, rawHttp, snapshot, startFarm, testData } from './fixtures/test-farm.js'
import { checkInvariants, dataIn, documented5xx, fuzz, RUNS } from './fixtures/fuzz.js'
import { normalizeHost } from '../core/http/site-router.js'

const SERVED = ['a.example', 'b.example', 'xn--bcher-kva.example']

const randomCase = (s: string) => fc.array(fc.boolean(), { minLength: s.length, maxLength: s.length })
  .map((flips) => [...s].map((c, i) => (flips[i] ? c.toUpperCase() : c)).join(''))

const piece = fc.oneof(
  fc.constantFrom(
    'a',
    'b',
    'example',
    'www',
    'xn--bcher-kva',
    'bücher',
    'ÄÖÜ',
    'ß',
    '例え',
    'ｅｘａｍｐｌｅ',
    'localhost',
    '127.0.0.1',
    '[::1]',
    '_x',
    '-',
    '[fe80::1%25eth0]',
    '[fe80::1%eth0]',
    '%25',
    '%',
    'eth0',
    '0x7f',
    '2130706433',
    '999',
    'xn--zz',
    '[2001:DB8:0::1]',
  ),
  fc.constantFrom(
    '.',
    '..',
    '/',
    '\\',
    ':',
    ':0',
    ':80',
    ':65536',
    ':99999',
    '%2e',
    '%2f',
    '@',
    '[',
    ']',
    '?',
    '#',
    ' ',
    '*',
    '~',
  ),
  fc.constantFrom('\x00', '\t', '\r', '\n', '\x7f', '\u0085', '\u00a0', '\u200b', '\ufeff', '\ud800', '\u202e'),
  fc.stringMatching(/^[a-z0-9-]{1,12}$/),
)

/** A Host header: a served host bent out of shape, pieces glued together, any string, a very long one. */
const hostArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom(...SERVED, 'www.a.example'), fc.constantFrom('', '.', ':3000', '.:80', ':', '..', '/'))
      .chain(([h, tail]) => randomCase(h + tail)),
  },
  { weight: 4, arbitrary: fc.array(piece, { minLength: 1, maxLength: 12 }).map((parts) => parts.join('')) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('a', 'a.', 'ü', '.'), fc.integer({ min: 60, max: 3000 }))
      .map(([c, n]) => `${c.repeat(n)}.example`),
  },
)

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'
const requestArb = fc.constantFrom<{ method: Method; url: string; form?: boolean }>(
  { method: 'GET', url: '/welcome-visitors.json' },
  { method: 'GET', url: '/system/sitemap.json' },
  { method: 'GET', url: '/' },
  { method: 'POST', url: '/login' },
  { method: 'PUT', url: '/page/x/action', form: true },
  { method: 'DELETE', url: '/x.json' },
  { method: 'GET', url: '/plugin/linkmap/' },
)

const form = `action=${encodeURIComponent(JSON.stringify({ type: 'create', item: { title: 'X' }, date: 1 }))}`

t.test(`${RUNS} fuzzed Host headers on an --allowed farm`, async (t) => {
  const parent = testData(t, { data: {} })
  const data = dataIn(parent)
  const farm = await startFarm(t, { farm: true, allowed: SERVED }, data)
  const owner = await claim(t, farm.app, 'b.example')
  t.equal(
    (await putAction(farm.app, 'b.example', owner.cookie, 'kept', { type: 'create', item: { title: 'Kept' }, date: 1 }))
      .statusCode,
    200,
  )
  await farm.kernel.sites.open('b.example').flush()
  const before = await snapshot(join(data, 'b.example'))
  const statuses = new Map<number, number>()

  await fuzz(t, 'Host on the allowed farm', fc.tuple(hostArb, requestArb), async ([host, request]) => {
    const response = await farm.app.inject({
      method: request.method, url: request.url,
      headers: { host, ...(request.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      ...(request.form ? { payload: form } : {}),
    })
    statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
    if (response.statusCode >= 500 && !documented5xx(request.method, request.url, response.statusCode, response.body)) {
      const what = `${request.method} ${request.url} with Host ${JSON.stringify(host)}`
      throw new Error(`${what}: ${response.statusCode} ${response.body}`)
    }
    if (response.statusCode < 400 && request.url !== '/') {
      // Served means served: the host names a listed site.
      let name = ''
      try { name = normalizeHost(host) } catch { /* refused */ }
      if (!SERVED.includes(name.replace(/^www\./, '')))
        throw new Error(`Host ${JSON.stringify(host)} was served (${response.statusCode})`)
    }
  })
  t.comment(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`)
  await farm.kernel.close()
  await checkInvariants(t, {
    parent, data, farm: true, allowedSites: (name) => SERVED.includes(name), untouched: { 'b.example': before },
  })
})

t.test(
  `${RUNS} fuzzed Host headers on a promiscuous farm: folders only for hosts that normalise to themselves`,
  async (t) => {
    const parent = testData(t, { data: {} })
    const data = dataIn(parent)
    const farm = await startFarm(t, { farm: true }, data)
    await fuzz(t, 'Host on the promiscuous farm', fc.tuple(hostArb, requestArb), async ([host, request]) => {
      const response = await farm.app.inject({
        method: request.method,
        url: request.url,
        headers: { host, ...(request.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        ...(request.form ? { payload: form } : {}),
      })
      if (response.statusCode >= 500 && !documented5xx(request.method, request.url, response.statusCode, response.body))
        throw new Error(
          `${request.method} ${request.url} with Host ${JSON.stringify(host)}: ${response.statusCode} ${response.body}`,
        )
    })
    await farm.kernel.close()
    await checkInvariants(t, {
      parent,
      data,
      farm: true,
      // A claim makes a folder, named exactly as the normalised host and as a browser's URL
      // parser names that host (no zone id, no numeric spelling of an address); nothing else.
      allowedSites: (name) => {
        try {
          return (
            normalizeHost(name) === name && new URL(`http://${name}/`).hostname === name && !name.startsWith('www.')
          )
        } catch {
          return false
        }
      },
    })
  },
)

t.test(
  'fuzzed Host bytes over a real socket: Node and the kernel refuse them with 4xx, the farm serves on',
  async (t) => {
    const parent = testData(t, { data: {} })
    const data = dataIn(parent)
    const farm = await startFarm(t, { farm: true, allowed: SERVED }, data)
    const port = await listenLocal(farm)
    // Real sockets cost a connection each: fewer cases, the bytes exactly as sent.
    const raw = fc.oneof(
      hostArb,
      fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b).toString('latin1')),
    )
    await fuzz(
      t,
      'Host bytes on the wire',
      fc.tuple(raw, fc.constantFrom('GET /welcome-visitors.json', 'POST /login')),
      async ([host, line]) => {
        const head =
          `${line} HTTP/1.1\r\nHost: ${host.replace(/\r\n/g, '')}\r\n` + 'Content-Length: 0\r\nConnection: close\r\n\r\n'
        const response = await rawHttp(port, head)
        if (
          response.status === 0 ||
          (response.status >= 500 &&
            !documented5xx(line.split(' ')[0] ?? '', line.split(' ')[1] ?? '', response.status, response.body))
        )
          throw new Error(`Host ${JSON.stringify(host)}: ${response.status} ${response.head}`)
      },
      { runs: Math.min(RUNS, 2000) },
    )
    const alive = await rawHttp(
      port,
      'GET /welcome-visitors.json HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n',
    )
    t.equal(alive.status, 200, 'the farm still serves')
    await farm.kernel.close()
    await checkInvariants(t, { parent, data, farm: true, allowedSites: (name) => SERVED.includes(name) })
  },
)
