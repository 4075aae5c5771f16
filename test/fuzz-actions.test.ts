// Fuzzed PUT /page/:slug/action bodies, as the site's owner: random and mutated valid actions
// in a form field or JSON, prototype-poisoning keys, deep nesting, huge strings, wrong content
// types. Every answer is 200 or a coded 4xx; afterwards every page file parses and validates,
// the sitemap lists exactly the pages, and the other site is byte for byte as it was.
import t from 'tap'
import fc from 'fast-check'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { claim, putAction, snapshot, startFarm, testData } from './fixtures/test-farm.js'
import { checkInvariants, dataIn, fuzz, memoryParent, percentEncode, RUNS } from './fixtures/fuzz.js'

const HOST = 'a.example'
const OTHER = 'b.example'
const SLUGS = ['alpha', 'beta', 'gamma', 'delta', 'welcome-visitors', 'epsilon', 'zeta', 'eta', 'theta', 'iota']
const IDS = ['0000000000000001', '0000000000000002', '00000000000000a3', 'ffffffffffffffff', '1234567890abcdef']

const id = fc.oneof(
  { weight: 9, arbitrary: fc.constantFrom(...IDS) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.stringMatching(/^[0-9a-fA-F]{15,17}$/),
      fc.constant('__proto__'),
    ),
  },
)

const huge = fc
  .tuple(fc.constantFrom('x', 'é', '\u0000', '"', '\\', '😀'), fc.integer({ min: 10_000, max: 100_000 }))
  .map(([c, n]) => c.repeat(n))
const text = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 80 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 80 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '__proto__',
      'constructor',
      '[[x]]',
      '<script>alert(1)</script>',
      '../../status/owner.json',
    ),
  },
  { weight: 1, arbitrary: fc.oneof({ weight: 50, arbitrary: fc.constant('short') }, { weight: 1, arbitrary: huge }) },
)
const itemType = fc.oneof({ weight: 12, arbitrary: fc.constantFrom('paragraph', 'html', 'markdown', 'factory') },
  { weight: 1, arbitrary: fc.constantFrom('', 'x'.repeat(101)) })
const item = fc.record({ type: itemType, id, text })
const date = fc.option(
  fc.oneof({ weight: 12, arbitrary: fc.nat() }, { weight: 1, arbitrary: fc.oneof(fc.double(), fc.constant(-1)) }),
  { nil: undefined },
)
const story = fc.array(item, { maxLength: 4 })

/** Actions that are valid, or nearly: the shapes the reference client sends. */
const action = fc.oneof(
  fc.record(
    {
      type: fc.constant('create'),
      item: fc.record({ title: fc.string({ minLength: 1, maxLength: 30 }), story }),
      date,
    },
    { requiredKeys: ['type', 'item'] },
  ),
  fc.record({ type: fc.constant('add'), id, item, after: id, date }, { requiredKeys: ['type', 'id', 'item'] }),
  fc.record({ type: fc.constant('edit'), id, item, date }, { requiredKeys: ['type', 'id', 'item'] }),
  fc.record({ type: fc.constant('remove'), id, date }, { requiredKeys: ['type', 'id'] }),
  fc.record(
    { type: fc.constant('move'), id, order: fc.shuffledSubarray(IDS), date },
    { requiredKeys: ['type', 'id', 'order'] },
  ),
  // A fork that carries its page (a fork naming only a site would fetch it over the network).
  fc.record(
    {
      type: fc.constant('fork'),
      site: fc.constant('127.0.0.1:9'),
      forkPage: fc.record({ title: fc.string({ maxLength: 20 }), story, journal: fc.constant([]) }),
      date,
    },
    { requiredKeys: ['type', 'forkPage'] },
  ),
)

type Json = Record<string, unknown>

/** Structural mutations of a valid action: a key dropped, replaced by any JSON, a type changed. */
const mutated = fc
  .tuple(action, fc.nat(), fc.jsonValue({ maxDepth: 3 }), fc.constantFrom('drop', 'replace', 'retype', 'add', 'wrap'))
  .map(([a, n, value, how]) => {
    const copy: Json = { ...(a as Json) }
    const keys = Object.keys(copy)
    const key = keys[n % keys.length] ?? 'type'
    if (how === 'drop') delete copy[key]
    if (how === 'replace') copy[key] = value
    if (how === 'retype') copy.type = typeof value === 'string' ? value : 'Create'
    if (how === 'add') copy[`extra${n % 5}`] = value
    if (how === 'wrap') return [copy] as unknown
    return copy as unknown
  })

/** Poisoning and depth are textual: JSON.stringify cannot write an own `__proto__` key. */
const textual = fc
  .tuple(
    action,
    fc.constantFrom('proto', 'constructor', 'deep-array', 'deep-object', 'truncated', 'duplicate-key'),
    fc.integer({ min: 2, max: 20_000 }),
  )
  .map(([a, how, n]) => {
    const json = JSON.stringify(a)
    switch (how) {
      case 'proto':
        return json.replace('{', '{"__proto__":{"polluted":true},')
      case 'constructor':
        return json.replace('{', '{"constructor":{"prototype":{"polluted":true}},')
      case 'deep-array':
        return json.replace(/}$/, `,"deep":${'['.repeat(n)}${']'.repeat(n)}}`)
      case 'deep-object':
        return json.replace(/}$/, `,"deep":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`)
      case 'truncated':
        return json.slice(0, n % json.length)
      default:
        return json.replace('{', '{"type":"remove",')
    }
  })

type Body = { contentType: string; payload: string }
const form = (value: string) => `action=${percentEncode(value)}`

const body: fc.Arbitrary<Body> = fc.oneof(
  {
    weight: 8,
    arbitrary: action.map((a) => ({
      contentType: 'application/x-www-form-urlencoded',
      payload: form(JSON.stringify(a)),
    })),
  },
  {
    weight: 2,
    arbitrary: mutated.map((a) => ({
      contentType: 'application/x-www-form-urlencoded',
      payload: form(JSON.stringify(a) ?? 'null'),
    })),
  },
  {
    weight: 2,
    arbitrary: textual.map((s) => ({ contentType: 'application/x-www-form-urlencoded', payload: form(s) })),
  },
  { weight: 1, arbitrary: textual.map((s) => ({ contentType: 'application/json', payload: `{"action":${s}}` })) },
  {
    weight: 1,
    arbitrary: fc
      .oneof(action, mutated)
      .map((a) => ({ contentType: 'application/json', payload: JSON.stringify({ action: a }) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .oneof(action, mutated)
      .map((a) => ({ contentType: 'application/json', payload: JSON.stringify(a) ?? 'null' })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.string({ unit: 'binary', maxLength: 200 }),
        fc.constantFrom(
          'application/x-www-form-urlencoded',
          'application/json',
          'text/plain',
          'application/octet-stream',
          'multipart/form-data; boundary=x',
          '',
          'application/json; charset=latin1',
        ),
      )
      .map(([payload, contentType]) => ({ contentType, payload })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(action, action)
      .map(([a, b]) => ({
        contentType: 'application/x-www-form-urlencoded',
        payload: `${form(JSON.stringify(a))}&${form(JSON.stringify(b))}`,
      })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        'action=',
        'action',
        '=',
        '&&&',
        'action=%E0%A4%A',
        'action[__proto__][polluted]=1',
        '__proto__[polluted]=1',
        'constructor[prototype][polluted]=1',
      )
      .map((payload) => ({ contentType: 'application/x-www-form-urlencoded', payload })),
  },
)

t.test(`${RUNS} fuzzed action bodies from the owner`, async (t) => {
  const { parent, remove } = memoryParent(() => testData(t, { data: {} }))
  const data = dataIn(parent)
  const farm = await startFarm(t, { farm: true, allowed: [HOST, OTHER] }, data)
  t.teardown(remove)
  const owner = await claim(t, farm.app, HOST)
  const other = await claim(t, farm.app, OTHER)
  t.equal(
    (await putAction(farm.app, OTHER, other.cookie, 'kept', { type: 'create', item: { title: 'Kept' }, date: 1 }))
      .statusCode,
    200,
  )
  await farm.kernel.sites.open(OTHER).flush()
  const before = await snapshot(join(data, OTHER))
  const statuses = new Map<string, number>()

  await fuzz(t, 'PUT /page/:slug/action bodies', fc.tuple(fc.constantFrom(...SLUGS), body), async ([slug, b]) => {
    const headers: Record<string, string> = { host: HOST, cookie: owner.cookie }
    if (b.contentType !== '') headers['content-type'] = b.contentType
    const response = await farm.app.inject({ method: 'PUT', url: `/page/${slug}/action`, headers, payload: b.payload })
    const code = response.statusCode === 200 ? 'ok' : (JSON.parse(response.body) as { code?: string }).code ?? 'none'
    statuses.set(`${response.statusCode} ${code}`, (statuses.get(`${response.statusCode} ${code}`) ?? 0) + 1)
    if (response.statusCode >= 500 || code === 'none')
      throw new Error(
        `${b.contentType} ${b.payload.slice(0, 300)}: ${response.statusCode} ${response.body.slice(0, 300)}`,
      )
  })
  t.comment(`answers: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`)
  t.ok((statuses.get('200 ok') ?? 0) > RUNS / 20, 'a fair share of the actions applied')

  const site = farm.kernel.sites.open(HOST)
  await site.flush()
  const onDisk = (await readdir(join(data, HOST, 'pages'))).filter((n) => !n.startsWith('.')).sort()
  const sitemap = (await farm.app.inject({ url: '/system/sitemap.json', headers: { host: HOST } })).json() as {
    slug: string
  }[]
  t.same(sitemap.map((e) => e.slug).sort(), onDisk, 'the sitemap lists exactly the pages on disk')
  for (const slug of onDisk) {
    t.equal(
      (await farm.app.inject({ url: `/${slug}.json`, headers: { host: HOST } })).statusCode,
      200,
      `${slug} reads back`,
    )
  }
  await farm.kernel.close()
  await checkInvariants(t, {
    parent,
    data,
    farm: true,
    allowedSites: (n) => n === HOST || n === OTHER,
    untouched: { [OTHER]: before },
  })
})
