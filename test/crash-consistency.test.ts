// kill -9 while clients write: every page must be the old or the new version, never torn,
// and the sitemap must agree with the pages when the farm opens the site again.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, readdirSync, existsSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { once } from 'node:events'
import { createKernel } from '../core/kernel.js'
import { DEFAULTS } from '../core/farm-config.js'
import { httpCall, type HttpResult } from './fixtures/http-client.js'
import { PageValidator } from '../schemas/page.js'

const KILLS = Number(process.env.WIKIFARM_CRASH_KILLS ?? 25)
const SECRET = 'c'.repeat(64)
const HOST = 'crash.example'
const ITEM = 'aaaaaaaaaaaaaaaa'
const PAD = 'x'.repeat(128 * 1024)

async function startChild(data: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'fixtures/farm-child.js')], {
    env: { ...process.env, WIKIFARM_TEST_CONFIG: JSON.stringify({ data, farm: true, idleSeconds: 0 }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const [chunk] = await once(child.stdout!, 'data') as [Buffer]
  return { child, port: Number(chunk.toString().trim()) }
}

async function login(port: number): Promise<string> {
  const response = await httpCall(port, {
    method: 'POST', path: '/auth/reclaim/', headers: { host: HOST, 'content-type': 'text/plain' }, body: SECRET,
  })
  if (response.status !== 200) throw new Error(`login failed: ${response.status}`)
  return String(response.headers['set-cookie'] ?? '').split(';')[0] as string
}

function edit(port: number, cookie: string, slug: string, version: number): Promise<HttpResult> {
  const action = {
    type: 'edit',
    id: ITEM,
    item: { type: 'paragraph', id: ITEM, text: `v${version} ${PAD}` },
    date: version,
  }
  return httpCall(port, {
    method: 'PUT', path: `/page/${slug}/action`,
    headers: { host: HOST, cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: `action=${encodeURIComponent(JSON.stringify(action))}`,
  })
}

function versionOnDisk(site: string, slug: string): number {
  const page: unknown = JSON.parse(readFileSync(join(site, 'pages', slug), 'utf8'))
  if (!PageValidator.Check(page)) throw new Error(`page ${slug} is not a valid page`)
  const match = /^v(\d+) /.exec(String(page.story[0]?.text ?? ''))
  if (!match) throw new Error(`page ${slug} has no version`)
  const version = Number(match[1])
  // The journal is written with the story, in the same file: its last entry is this version's edit.
  const last = page.journal?.at(-1)
  if (version > 0 ? last?.date !== version : (page.journal?.length ?? 0) !== 0) {
    throw new Error(`page ${slug}: story v${version} but journal ends with ${JSON.stringify(last?.date)}`)
  }
  return version
}

t.test(`${KILLS} kills with SIGKILL mid-write leave only whole pages`, async (t) => {
  const data = t.testdir()
  const site = join(data, HOST)
  const slugs = ['alpha', 'beta', 'gamma']
  mkdirSync(join(site, 'pages'), { recursive: true })
  mkdirSync(join(site, 'status'), { recursive: true })
  writeFileSync(join(site, 'status', 'owner.json'), JSON.stringify({ name: 'crasher', friend: { secret: SECRET } }))
  for (const slug of slugs) {
    writeFileSync(join(site, 'pages', slug), JSON.stringify({
      title: slug, story: [{ type: 'paragraph', id: ITEM, text: `v0 ${PAD}` }], journal: [],
    }))
  }
  const acked = new Map(slugs.map((s) => [s, 0]))
  const sent = new Map(slugs.map((s) => [s, 0]))
  let next = 1
  let torn = 0

  // Up to KILLS rounds, but within tap's per-file limit on a loaded machine: at least 5, then
  // as many as fit in 70 s (each round starts a farm process, ~1 s on a quiet machine).
  const deadline = Date.now() + 70_000
  let rounds = 0
  for (let round = 0; round < KILLS && (round < 5 || Date.now() < deadline); round++) {
    rounds++
    const { child, port } = await startChild(data)
    t.teardown(() => { child.kill('SIGKILL') })
    const cookie = await login(port)
    let stop = false
    const writers = slugs.map(async (slug) => {
      while (!stop) {
        const version = next++
        sent.set(slug, version)
        const response = await edit(port, cookie, slug, version).catch(() => null)
        if (response?.status === 200) acked.set(slug, Math.max(acked.get(slug) ?? 0, version))
        else if (response) throw new Error(`write answered ${response.status}: ${response.body}`)
        else break
      }
    })
    await new Promise((resolve) => setTimeout(resolve, 30 + Math.floor(Math.random() * 150)))
    child.kill('SIGKILL')
    stop = true
    await Promise.all([once(child, 'exit'), ...writers])
    for (const slug of slugs) {
      let version = -1
      try {
        version = versionOnDisk(site, slug)
      } catch {
        torn++
      }
      // Whatever is on disk is a version that was sent, and no older than the last acknowledged one.
      t.ok(version >= (acked.get(slug) ?? 0) && version <= (sent.get(slug) ?? 0),
        `round ${round}: ${slug} is v${version}, acked v${acked.get(slug)}, sent v${sent.get(slug)}`)
    }
  }
  t.comment(`${rounds} kills`)
  t.equal(torn, 0, 'no page was torn, unparsable, invalid, or with a journal that disagrees with its story')
  t.ok(
    readdirSync(join(site, 'pages')).every((name) => /^[a-z]+$/.test(name) || name.startsWith('.')),
    'only pages and hidden temp files',
  )
  const temps = () => ['pages', 'status']
    .flatMap((dir) => readdirSync(join(site, dir)).filter((name) => name.endsWith('.tmp')))
  t.comment(`${temps().length} temp files left by the kills`)

  // Reopening the site rebuilds a sitemap that lags behind the pages.
  const kernel = await createKernel(
    { ...DEFAULTS, data, farm: true, cookieSecret: 'k'.repeat(32), cookieSecretIsRandom: false },
    { logger: false },
  )
  const response = await kernel.app.inject({ url: '/system/sitemap.json', headers: { host: HOST } })
  const sitemap = JSON.parse(response.body) as { slug: string; date: number }[]
  t.same(sitemap.map((e) => e.slug).sort(), slugs, 'the sitemap lists exactly the pages')
  for (const entry of sitemap) {
    t.equal(entry.date, versionOnDisk(site, entry.slug), `sitemap date of ${entry.slug} matches the page on disk`)
  }
  await kernel.close()
  t.same(temps(), [], 'opening the site removed the temp files the kills left')
  t.ok(existsSync(join(site, 'status', 'owner.json')), 'owner.json survived')
  t.notOk(existsSync(join(site, 'status', 'sitemap.dirty')), 'the rebuilt sitemap is saved and marked clean')
})
