// `wikifarm import` and `wikifarm export`, run as the command an operator runs, against a real
// PostgreSQL: a farm's folder imported then exported gives back the same files (pages, recycler,
// status files; the sitemap rebuilt with the same entries), a single site keeps the single-site
// layout, and every file the import cannot take is named with its reason and fails the command.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { startPostgres } from './fixtures/postgres.js'
import { claim, putAction, snapshot, startFarm } from './fixtures/test-farm.js'
import type { SitemapEntry } from '../schemas/sitemap.js'

const server = await startPostgres(t)
const BIN = join(import.meta.dirname, '..', '..', 'bin', 'wikifarm.js')
let databases = 0

interface Run { code: number | null; stdout: string; stderr: string }

function wikifarm(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.on('error', reject)
    child.on('exit', (code) => { resolve({ code, stdout, stderr }) })
  })
}

/** A folder of its own for an export (the test's testdir holds the farm's data). */
async function scratch(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wikifarm-export-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** The snapshot without the sitemap, which is compared as entries (its order is the farm's). */
async function files(dir: string): Promise<Record<string, string>> {
  const all = await snapshot(dir)
  return Object.fromEntries(Object.entries(all).filter(([path]) => !path.endsWith('sitemap.json')))
}

async function sitemap(path: string): Promise<SitemapEntry[]> {
  const entries = JSON.parse(await readFile(path, 'utf8')) as SitemapEntry[]
  return entries.sort((a, b) => (a.slug < b.slug ? -1 : 1))
}

if (server) {
  t.test('a farm imported then exported gives back identical files', async (t) => {
    const farm = await startFarm(t, { farm: true, allowed: ['a.example', 'b.example'] })
    for (const host of ['a.example', 'b.example']) {
      const { cookie } = await claim(t, farm.app, host)
      for (let n = 1; n <= 5; n++) {
        const slug = `page-${n}`
        const created = { type: 'create', item: { title: `Page ${n}` }, date: n }
        t.equal((await putAction(farm.app, host, cookie, slug, created)).statusCode, 200)
        const text = `On ${host}: see [[Page ${n + 1}]] ünïcödé ✓`
        const item = { type: 'paragraph', id: `${n}`.padStart(16, '0'), text }
        const added = { type: 'add', id: item.id, item, date: n + 10 }
        t.equal((await putAction(farm.app, host, cookie, slug, added)).statusCode, 200)
      }
      const gone = await farm.app.inject({ method: 'DELETE', url: '/page-5.json', headers: { host, cookie } })
      t.equal(gone.statusCode, 200)
    }
    await farm.kernel.close()
    mkdirSync(join(farm.data, 'a.example', 'status', 'theme'), { recursive: true })
    writeFileSync(join(farm.data, 'a.example', 'status', 'theme', 'style.css'), 'body { color: teal }')
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 255])
    writeFileSync(join(farm.data, 'b.example', 'status', 'favicon.png'), png)

    const store = await server.createDatabase(`transfer_${++databases}`)
    const imported = await wikifarm(['import', '--from', farm.data], { WIKIFARM_STORE: store })
    t.equal(imported.code, 0, `import succeeds: ${imported.stderr}`)
    t.match(imported.stdout, /imported 2 sites: 8 pages, 2 recycled, 4 status files/)
    t.match(imported.stderr, /importing a\.example: \d+\/\d+ files/, 'a progress line')
    t.match(imported.stderr, /sitemap\.json: rebuilt from the pages/, 'the sitemap is said to be rebuilt, not silently skipped')
    t.notMatch(imported.stderr, /NOT TAKEN/)

    const out = await scratch(t)
    const exported = await wikifarm(['export', '--store', store, '--to', join(out, 'farm')])
    t.equal(exported.code, 0, `export succeeds: ${exported.stderr}`)
    t.match(exported.stderr, /--store puts a secret on the command line/, 'a store URL as a flag is warned about')
    t.notMatch(exported.stderr + exported.stdout, new URL(store).password, 'the password is never printed')
    t.same(await files(join(out, 'farm')), await files(farm.data),
      'pages, recycler and status files are byte for byte the same')
    for (const host of ['a.example', 'b.example']) {
      t.same(await sitemap(join(out, 'farm', host, 'status', 'sitemap.json')),
        await sitemap(join(farm.data, host, 'status', 'sitemap.json')),
        `${host}: the sitemap has the same entries`)
    }

    const again = await wikifarm(['import', '--from', farm.data], { WIKIFARM_STORE: store })
    t.equal(again.code, 1, 'importing sites the store already has fails')
    t.match(again.stderr, /NOT TAKEN a\.example: the store already has a site a\.example/)
    const full = await wikifarm(['export', '--to', join(out, 'farm')], { WIKIFARM_STORE: store })
    t.equal(full.code, 1)
    t.match(full.stderr, /is not empty/, 'export writes over nothing')
  })

  t.test('a single site keeps the single-site layout', async (t) => {
    const farm = await startFarm(t, { farm: false })
    const { cookie } = await claim(t, farm.app, 'localhost')
    const created = { type: 'create', item: { title: 'Solo' }, date: 1 }
    t.equal((await putAction(farm.app, 'localhost', cookie, 'solo', created)).statusCode, 200)
    await farm.kernel.close()
    const store = await server.createDatabase(`transfer_${++databases}`)
    t.equal((await wikifarm(['import', '--from', farm.data], { WIKIFARM_STORE: store })).code, 0)
    const out = join(await scratch(t), 'solo')
    t.equal((await wikifarm(['export', '--to', out], { WIKIFARM_STORE: store })).code, 0)
    t.same(await files(out), await files(farm.data), 'pages/ and status/ at the top, as the folder had them')
    const served = await startFarm(t, { farm: false, store })
    const page = await served.app.inject({ url: '/solo.json', headers: { host: 'localhost' } })
    t.equal(page.json().title, 'Solo', 'a single-site farm on the store serves the imported site')
  })

  t.test('every file the import cannot take is named, with why, and the command fails', async (t) => {
    const dir = t.testdir({
      'a.example': {
        pages: {
          good: JSON.stringify({ title: 'Good', story: [] }),
          broken: '{ not json',
          'Bad_Name': JSON.stringify({ title: 'Bad', story: [] }),
          '.good.123.tmp': 'half a write',
          'not-a-page': JSON.stringify({ story: 'no title' }),
        },
        assets: { 'photo.jpg': 'jpeg' },
      },
      'Upper.Example': { pages: {} },
      'no spaces here': { pages: {} },
      'stray.txt': 'hello',
    })
    symlinkSync('/etc/passwd', join(dir, 'a.example', 'pages', 'linked'))
    const store = await server.createDatabase(`transfer_${++databases}`)
    const run = await wikifarm(['import', '--from', dir], { WIKIFARM_STORE: store })
    t.equal(run.code, 1, 'the command fails')
    t.match(run.stdout, /imported 1 sites: 1 pages, 0 recycled, 0 status files; 9 files NOT taken/)
    for (const [path, why] of [
      ['a.example/pages/broken', /not JSON/],
      ['a.example/pages/Bad_Name', /not a page slug/],
      ['a.example/pages/.good.123.tmp', /hidden or temporary/],
      ['a.example/pages/not-a-page', /not a wiki page/],
      ['a.example/pages/linked', /not a regular file/],
      ['a.example/assets', /not part of a site/],
      ['Upper.Example', /not a host name/],
      ['no spaces here', /not a host name/],
      ['stray.txt', /beside the site folders/],
    ] as const) {
      t.match(run.stderr, new RegExp(`NOT TAKEN ${path.replace(/\./g, '\\.')}: .*${why.source}`), `${path} is reported`)
    }
    const bad = await wikifarm(['import', '--from', dir, '--store', 'mysql://root:hunter2@db/x'])
    t.equal(bad.code, 2, 'a URL that is not PostgreSQL is a usage error')
    t.notMatch(bad.stderr, /hunter2/, 'and the error does not repeat its password')
  })
}
