// Writes: PUT /page/welcome-visitors/action edits per second on 100 claimed sites, each
// connection logged in as the site's owner, wikifarm beside the reference farm. wikifarm's
// writes are durable (temp file, fsync, rename, fsync of the folder); the reference writes with
// fs.writeFile and no fsync, so its figure is the cheaper kind of write.
import { join } from 'node:path'
import { scratchDir } from './cleanup.js'
import { stopChild, type Child } from './children.js'
import { cookieHeader, fetchHost } from './http-client.js'
import { load, type LoadResult } from './load.js'
import { alternate } from './alternate.js'
import { startWikifarm } from './wikifarm-process.js'
import { referenceFarm, startReference } from './reference-farm.js'
import { claimedSites, siteHosts } from './farm-data.js'
import { fmtRatio, ratio, table, type PartResult } from './report.js'

const SITES = 100
const SLUG = 'welcome-visitors'
// The first paragraph of the default welcome-visitors page, in both farms.
const ITEM = '7b56f22a4b9ee974'
const secretOf = (host: string) => `bench-secret-${host}`

/** Logs in on every site with the owner's secret, as the friends client does. */
async function logins(port: number, hosts: string[]): Promise<Map<string, string>> {
  const cookies = new Map<string, string>()
  for (const host of hosts) {
    const answer = await fetchHost(port, host, '/auth/reclaim/', {
      method: 'POST',
      body: secretOf(host),
      headers: { 'content-type': 'text/plain' },
    })
    if (answer.status !== 200 || answer.cookies.length === 0)
      throw new Error(`login on ${host} answered ${answer.status}: ${answer.body.slice(0, 200)}`)
    cookies.set(host, cookieHeader(answer.cookies))
  }
  return cookies
}

function editBody(n: number): string {
  const action = {
    type: 'edit',
    id: ITEM,
    item: { type: 'paragraph', id: ITEM, text: `Edited by the bench, edit ${n}.` },
    date: Date.now(),
  }
  return `action=${encodeURIComponent(JSON.stringify(action))}`
}

export async function writes(opts: { seconds: number; rounds: number }): Promise<PartResult> {
  const dir = scratchDir('writes')
  const hosts = siteHosts(SITES)
  const ref = await referenceFarm()
  const servers: (Child & { cookies: Map<string, string> })[] = []
  const seconds = Math.max(1, Math.round(opts.seconds / opts.rounds))
  const put = (s: Child & { cookies: Map<string, string> }, secs: number) =>
    load(s.port, `/page/${SLUG}/action`, hosts, secs, {
      method: 'PUT',
      headersFor: (host) => ({
        cookie: s.cookies.get(host) as string,
        'content-type': 'application/x-www-form-urlencoded',
      }),
      body: (_host, n) => editBody(n),
    })
  let results: Map<string, LoadResult>
  try {
    claimedSites(join(dir, 'wikifarm'), hosts, secretOf)
    const ours = await startWikifarm({ data: join(dir, 'wikifarm'), logFile: join(dir, 'wikifarm.log') })
    servers.push({ ...ours, cookies: await logins(ours.port, hosts) })
    if (ref.ok) {
      claimedSites(join(dir, 'reference'), hosts, secretOf)
      const theirs = await startReference(ref.install, {
        data: join(dir, 'reference'),
        logFile: join(dir, 'reference.log'),
      })
      servers.push({ ...theirs, cookies: await logins(theirs.port, hosts) })
    }
    for (const s of servers) await put(s, 1) // warm-up
    results = await alternate(servers, opts.rounds, (s) => put(s, seconds), (a, b) => a.rps > b.rps)
    // The edits landed: the page now holds the bench's text.
    for (const s of servers) {
      const page = await fetchHost(s.port, hosts[0] as string, `/${SLUG}.json`)
      if (!page.body.includes('Edited by the bench'))
        throw new Error(`${s.name}: the edit is not in the page: ${page.body.slice(0, 200)}`)
    }
  } finally {
    for (const s of servers) await stopChild(s)
  }
  const a = results.get('wikifarm') as LoadResult
  const b = results.get('reference farm')
  return {
    markdown: [
      `### Writes: PUT /page/${SLUG}/action (an edit of one paragraph), ${SITES} claimed sites, owners logged in, ` +
        `100 connections, best of ${opts.rounds} alternating rounds of ${seconds} s`,
      '',
      'wikifarm writes durably (temp file, fsync, rename, fsync of the folder; one writer per page) and updates the ' +
        'sitemap ' +
        'in memory; the reference farm writes the page with `fs.writeFile`, without fsync. The data folders are on ' +
          'ext4 ' +
        '(a real disk, where fsync costs time).' +
        (ref.ok ? '' : ` The reference farm could not be run: ${ref.reason}.`),
      '',
      table(
        ['server', 'edits/s', 'p50 ms', 'p99 ms', 'ratio to reference', 'errors'],
        [
          ['wikifarm', Math.round(a.rps), a.p50, a.p99, fmtRatio(b ? ratio(a.rps, b.rps) : null), a.errors + a.non2xx],
          ...(b ? [['reference farm (no fsync)', Math.round(b.rps), b.p50, b.p99, '1.00', b.errors + b.non2xx]] : []),
        ],
      ),
    ].join('\n'),
    headlines: [
      { label: 'edits/s (durable vs no fsync): wikifarm ÷ reference', value: b ? ratio(a.rps, b.rps) : null },
    ],
  }
}
