// Moving a farm between the reference's folder layout and the PostgreSQL store, both ways.
// A folder holds one site (<dir>/pages, status, recycle) or a farm (<dir>/<host>/pages …).
// Import takes every page, recycled page and status file it can and names every file it
// cannot, with the reason; export writes the layout the file store and the reference serve.
import { mkdir, readdir, readFile, stat } from 'node:fs/promises'
import { dirname, join, relative, sep } from 'node:path'
import { parsePage, serializePage } from '../pages/page-store.js'
import { writeFileAtomic } from '../pages/atomic-file.js'
import type { PostgresPageStore } from '../pages/postgres-store.js'
import { normalizeHost } from '../http/site-router.js'
import { isSlug } from '../../schemas/page.js'
/** The site name a single-site folder is kept under: the name the farm gives its one site. */
export const SINGLE_SITE = 'default'
const SITE_FOLDERS = ['pages', 'status', 'recycle']
/** Status files the farm derives from the pages: rebuilt, not copied. */
const DERIVED = new Set(['sitemap.json', 'sitemap.dirty'])

export interface TransferProblem {
  /** The file or folder, relative to the folder moved. */
  path: string
  reason: string
}

export interface TransferReport {
  sites: number
  pages: number
  recycled: number
  statusFiles: number
  /** Files rebuilt rather than copied (the sitemap), with why: not failures. */
  notes: TransferProblem[]
  /** Files not taken: any of these makes the command exit non-zero. */
  problems: TransferProblem[]
}

export type Progress = (done: number, total: number, site: string) => void

function emptyReport(): TransferReport {
  return { sites: 0, pages: 0, recycled: 0, statusFiles: 0, notes: [], problems: [] }
}

async function isDir(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isDirectory() === true
}

/** Every file under `dir`, as absolute paths; what is not a file or cannot be read is a problem. */
async function filesUnder(dir: string, problems: TransferProblem[], root: string): Promise<string[]> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (err) {
    problems.push({ path: relative(root, dir), reason: `cannot read the folder: ${(err as Error).message}` })
    return []
  }
  const out: string[] = []
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...await filesUnder(path, problems, root))
    else if (entry.isFile()) out.push(path)
    else problems.push({ path: relative(root, path), reason: 'not a regular file (a link or a device): not copied' })
  }
  return out
}

/** The sites a folder holds: itself when it has a site's folders, else each of its sub-folders. */
async function sitesIn(from: string, problems: TransferProblem[]): Promise<Array<{ name: string; dir: string }>> {
  const single = await Promise.all(SITE_FOLDERS.map((f) => isDir(join(from, f))))
  if (single.some(Boolean)) return [{ name: SINGLE_SITE, dir: from }]
  const sites: Array<{ name: string; dir: string }> = []
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (!entry.isDirectory()) {
      problems.push({ path: entry.name, reason: 'a file beside the site folders: not copied' })
      continue
    }
    let name: string | null
    try {
      name = normalizeHost(entry.name)
    } catch {
      name = null
    }
    if (name === null || name !== entry.name) {
      const reason = 'not a host name the farm would serve (lower case, no www. needed): not copied'
      problems.push({ path: entry.name, reason })
      continue
    }
    sites.push({ name, dir: join(from, entry.name) })
  }
  return sites
}

/** Loads the folder `from` into `store`; what it could not take is in the report's problems. */
export async function importFolder(store: PostgresPageStore, from: string, progress?: Progress):
  Promise<TransferReport> {
  const report = emptyReport()
  if (!await isDir(from)) {
    report.problems.push({ path: from, reason: 'not a folder' })
    return report
  }
  const sites = await sitesIn(from, report.problems)
  const already = new Set(await store.listSites())
  const plan: Array<{ site: string; folder: string; name: string; path: string }> = []
  for (const { name: site, dir } of sites) {
    if (already.has(site)) {
      const reason = `the store already has a site ${site}: not imported over it`
      report.problems.push({ path: relative(from, dir) || '.', reason })
      continue
    }
    for (const sub of await readdir(dir, { withFileTypes: true })) {
      if (SITE_FOLDERS.includes(sub.name) && sub.isDirectory()) continue
      const reason = 'not part of a site (pages/, status/, recycle/): not copied'
      report.problems.push({ path: relative(from, join(dir, sub.name)), reason })
    }
    for (const folder of SITE_FOLDERS) {
      const root = join(dir, folder)
      if (!await isDir(root)) continue
      for (const path of await filesUnder(root, report.problems, from)) {
        plan.push({ site, folder, name: relative(root, path).split(sep).join('/'), path })
      }
    }
  }
  const seen = new Set<string>()
  let done = 0
  for (const { site, folder, name, path } of plan) {
    const shown = relative(from, path)
    try {
      const problem = await importFile(store, site, folder, name, path, report)
      if (problem === null) seen.add(site)
      else if (problem !== 'derived') report.problems.push({ path: shown, reason: problem })
      else report.notes.push({ path: shown, reason: 'rebuilt from the pages, not copied' })
    } catch (err) {
      report.problems.push({ path: shown, reason: (err as Error).message })
    }
    progress?.(++done, plan.length, site)
  }
  report.sites = seen.size
  return report
}

/** Stores one file; null when taken, 'derived' when rebuilt instead, else why it was not taken. */
async function importFile(store: PostgresPageStore, site: string, folder: string, name: string, path: string,
  report: TransferReport): Promise<string | null> {
  const where = `${folder}/${name}`
  const siteStore = store.site({ name: site, root: '' })
  if (name.split('/').some((part) => part.startsWith('.'))) {
    return 'a hidden or temporary file (an interrupted write?): not copied'
  }
  if (folder === 'status') {
    if (DERIVED.has(name)) return 'derived'
    await siteStore.writeStatus(name, await readFile(path))
    report.statusFiles++
    return null
  }
  if (!isSlug(name)) return `${where}: not a page slug (a-z, 0-9 and -): no page of the farm has this name`
  const page = parsePage(await readFile(path, 'utf8'), where)
  if (folder === 'pages') {
    await siteStore.updatePage(name, () => page)
    report.pages++
  } else {
    await siteStore.importRecycled(name, page)
    report.recycled++
  }
  return null
}

/** Writes every site of `store` into `to`, which must be missing or empty. */
export async function exportFolder(store: PostgresPageStore, to: string, progress?: Progress): Promise<TransferReport> {
  const report = emptyReport()
  const existing = await readdir(to).catch(() => null)
  if (existing && existing.length > 0) {
    throw new Error(`${to} is not empty: export writes only into a new or empty folder`)
  }
  const sites = await store.listSites()
  // One site named "default" is a single-site farm: its folders go at the top, as the reference keeps them.
  const single = sites.length === 1 && sites[0] === SINGLE_SITE
  let done = 0
  for (const site of sites) {
    const dir = single ? to : join(to, site)
    const siteStore = store.site({ name: site, root: dir })
    const write = async (path: string, data: string | Uint8Array) => {
      await mkdir(dirname(path), { recursive: true })
      await writeFileAtomic(path, data)
    }
    const slugs = await siteStore.listSlugs()
    const recycled = await siteStore.listRecycled()
    const status = await siteStore.listStatus()
    const total = slugs.length + recycled.length + status.length
    for (const slug of slugs) {
      const stored = await siteStore.getPage(slug)
      if (stored) {
        await write(join(dir, 'pages', slug), serializePage(stored.page))
        report.pages++
      }
      progress?.(++done, total, site)
    }
    for (const slug of recycled) {
      const page = await siteStore.getRecycled(slug)
      if (page) {
        await write(join(dir, 'recycle', slug), serializePage(page))
        report.recycled++
      }
      progress?.(++done, total, site)
    }
    for (const name of status) {
      const data = await siteStore.readStatus(name)
      if (data) {
        await write(join(dir, 'status', ...name.split('/')), data)
        report.statusFiles++
      }
      progress?.(++done, total, site)
    }
    if (slugs.length > 0) {
      await write(join(dir, 'status', 'sitemap.json'), JSON.stringify(await siteStore.sitemapEntries(), null, 2))
    }
    done = 0
    report.sites++
  }
  return report
}
