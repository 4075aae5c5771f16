// A write killed mid-way leaves a temp file beside the page (core/pages/atomic-file.ts names
// it `.<name>.<pid>.<n>.tmp`). Opening the site removes the ones of its own pages, recycled
// pages and status files whose writer is gone; pages are untouched, and a file that only
// looks like a temp file (another tool's, a running process's) is left alone.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startFarm, testData } from './fixtures/test-farm.js'
import { writeFileAtomic } from '../core/pages/atomic-file.js'

const HOST = 'a.example'
const PAGE = { title: 'Kept', story: [{ type: 'paragraph', id: '0123456789abcdef', text: 'Kept whole.' }], journal: [] }

/** The id of a process that ran and is gone: the writer an interrupted write had. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await once(child, 'exit')
  if (child.pid === undefined) throw new Error('no pid')
  return child.pid
}

t.test('opening a site removes the temp files interrupted writes left, and nothing else', async (t) => {
  const data = testData(t, { data: {} })
  const folder = join(data, 'data')
  const site = join(folder, HOST)
  for (const dir of ['pages', 'status', 'recycle']) await mkdir(join(site, dir), { recursive: true })
  const pageJson = JSON.stringify(PAGE, null, 2)
  await writeFile(join(site, 'pages', 'kept'), pageJson)
  await writeFile(join(site, 'recycle', 'old'), pageJson)

  const dead = await deadPid()
  // Another farm still writing (a farm draining while its successor starts): its temp file is live.
  const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' })
  t.teardown(() => { live.kill('SIGKILL') })
  const truncated = pageJson.slice(0, 40)
  const ours = {
    'pages': [`.kept.${dead}.7.tmp`, `.never-saved.${dead}.3.tmp`],
    'recycle': [`.old.${dead}.2.tmp`],
    'status': [`.sitemap.json.${dead}.4.tmp`, `.owner.json.${dead}.1.tmp`],
  }
  const notOurs = {
    'pages': [
      '.kept.swp', '.notes.tmp', `.kept.${dead}.tmp`, `.Kept.${dead}.1.tmp`, `kept.${dead}.1.tmp`,
      `.kept.${dead}.1.tmp~`,
      `.kept.${live.pid}.1.tmp`, '.kept.0.1.tmp', `.kept.${dead}.0.tmp`,
    ],
    'recycle': ['.old.swp'],
    'status': [`.${'x'.repeat(120)}.${dead}.1.tmp`, `.theme.${dead}.tmp`],
  }
  for (const [dir, names] of [...Object.entries(ours), ...Object.entries(notOurs)]) {
    for (const name of names) await writeFile(join(site, dir, name), truncated)
  }

  const farm = await startFarm(t, { farm: true }, folder)
  const sitemap = await farm.app.inject({ url: '/system/sitemap.json', headers: { host: HOST } })
  t.equal(sitemap.statusCode, 200)
  t.same((sitemap.json() as Array<{ slug: string }>).map((e) => e.slug), ['kept'],
    'the sitemap lists the page, and no temp file')
  for (const [dir, names] of Object.entries(ours)) {
    const left = await readdir(join(site, dir))
    for (const name of names) t.notOk(left.includes(name), `${dir}/${name} removed`)
  }
  for (const [dir, names] of Object.entries(notOurs)) {
    const left = await readdir(join(site, dir))
    for (const name of names) t.ok(left.includes(name), `${dir}/${name} left alone`)
  }
  t.equal(await readFile(join(site, 'pages', 'kept'), 'utf8'), pageJson, 'the page is untouched')
  t.equal(await readFile(join(site, 'recycle', 'old'), 'utf8'), pageJson, 'the recycled page is untouched')
  const page = await farm.app.inject({ url: '/kept.json', headers: { host: HOST } })
  t.same(page.json(), PAGE)
  const owner = await farm.app.inject({ url: '/system/session.json', headers: { host: HOST } })
  t.equal((owner.json() as { claimed: boolean }).claimed, false,
    'a claim whose owner.json never landed left the site unclaimed')
})

t.test("this process's own temp files: a leftover is removed, a write in flight is not", async (t) => {
  const data = testData(t, { data: {} })
  const folder = join(data, 'data')
  const farm = await startFarm(t, { farm: true }, folder)
  const site = join(folder, HOST)
  await mkdir(join(site, 'pages'), { recursive: true })
  // A leftover bearing our own pid: a farm restarted in a container often gets the same pid.
  const stale = `.kept.${process.pid}.999999.tmp`
  await writeFile(join(site, 'pages', stale), '{"title": "Ke')
  const opening = farm.kernel.sites.open(HOST)
  t.same(await opening.opened, [`pages/${stale}`], 'a temp file of our pid that no write holds is a leftover')
  const store = opening.store

  // A write of ours still landing (a big page, a slow disk) while the site opens: it is caught
  // with its temp file on disk, and the sweep must leave that file to the write.
  const story = Array.from({ length: 20000 }, (_, i) =>
    ({ type: 'paragraph', id: i.toString(16).padStart(16, '0'), text: 'x'.repeat(50) }))
  const big = JSON.stringify({ ...PAGE, story })
  let caught = 0
  for (let attempt = 0; attempt < 50 && caught === 0; attempt++) {
    let done = false
    const writing = writeFileAtomic(join(site, 'pages', 'big'), big).finally(() => { done = true })
    while (!done) {
      if ((await readdir(join(site, 'pages'))).some((n) => n.startsWith('.big.') && !done)) {
        t.same(await store.removeLeftovers(), [], 'the temp file of a write in flight is not removed')
        caught++
        break
      }
    }
    await writing // rejects (ENOENT on rename) had its temp file been removed
  }
  t.ok(caught > 0, 'a sweep ran while a write had its temp file on disk')
  t.equal(await readFile(join(site, 'pages', 'big'), 'utf8'), big, 'the write landed whole')
  t.same((await readdir(join(site, 'pages'))).filter((n) => n.startsWith('.')), [], 'and left nothing behind')
})
