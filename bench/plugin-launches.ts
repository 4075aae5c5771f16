// Plugin instances: how many times each server-side plugin is launched after requests to
// 1,000 sites. wikifarm launches each plugin once at boot; the reference farm calls each server
// plugin's startServer per site, on the site's first visit (see bench/reference-farm.ts for
// how that is counted).
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scratchDir } from './cleanup.js'
import { stopChild } from './children.js'
import { cookieHeader, fetchHost, visitAll } from './http-client.js'
import { startWikifarm } from './wikifarm-process.js'
import { referenceFarm, referencePluginStarts, startReference } from './reference-farm.js'
import { makeSiteFolders, siteHosts } from './farm-data.js'
import { fmtRatio, ratio, table, type PartResult } from './report.js'

const COUNTER = fileURLToPath(new URL('./plugins-count/bench-count/index.js', import.meta.url))
const ADMIN = 'bench-admin-secret'

function lines(file: string): number {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0
}

async function ours(hosts: string[]): Promise<{ launches: Record<string, number>; failed: number }> {
  const dir = scratchDir('plugins-wikifarm')
  const data = join(dir, 'data')
  const countFile = join(dir, 'launches')
  makeSiteFolders(data, hosts)
  const farm = await startWikifarm({
    data, logFile: join(dir, 'farm.log'),
    env: {
      // Secrets through the environment, never argv (docs/operators.md).
      WIKIFARM_ADMIN: ADMIN,
      // Txtzyme runs its device simulator (as `npm start` does), so every plugin is running.
      WIKIFARM_PLUGINS: JSON.stringify({
        txtzyme: { options: { simulator: true } },
        'bench-count': { package: COUNTER, isolation: 'worker', options: { countFile } },
      }),
    },
  })
  try {
    // Each site: a page read and a request to each plugin that answers REST.
    let failed = 0
    for (const path of [
      '/welcome-visitors.json',
      '/plugin/linkmap/map.json',
      '/plugin/bench-count/hello',
      '/plugin/txtzyme/status',
    ]) {
      failed += (await visitAll(farm.port, hosts, path, 20)).failed
    }
    const login = await fetchHost(farm.port, hosts[0] as string, '/auth/reclaim/', {
      method: 'POST',
      body: ADMIN,
      headers: { 'content-type': 'text/plain' },
    })
    if (login.status !== 200) throw new Error(`admin login answered ${login.status}: ${login.body}`)
    const status = await fetchHost(farm.port, hosts[0] as string, '/system/status.json', {
      headers: { cookie: cookieHeader(login.cookies) },
    })
    const plugins = (JSON.parse(status.body) as { plugins: { name: string; launches: number; state: string }[] })
      .plugins
    const launches: Record<string, number> = {}
    for (const p of plugins) launches[`${p.name} (${p.state})`] = p.launches
    launches['bench-count (counter file)'] = lines(countFile)
    return { launches, failed }
  } finally {
    await stopChild(farm)
  }
}

async function theirs(hosts: string[]): Promise<{ launches: Record<string, number>; failed: number } | string> {
  const ref = await referenceFarm()
  if (!ref.ok) return ref.reason
  const dir = scratchDir('plugins-reference')
  const data = join(dir, 'data')
  const countFile = join(dir, 'launches')
  const logFile = join(dir, 'farm.log')
  makeSiteFolders(data, hosts)
  const farm = await startReference(ref.install, { data, logFile, countFile })
  try {
    const { failed } = await visitAll(farm.port, hosts, '/welcome-visitors.json', 20)
    // Its plugins start asynchronously after a site's first answer.
    let previous = -1
    for (let i = 0; i < 50 && lines(countFile) !== previous; i++) {
      previous = lines(countFile)
      await new Promise((r) => setTimeout(r, 200))
    }
    return { launches: referencePluginStarts(logFile, countFile), failed }
  } finally {
    await stopChild(farm)
  }
}

export async function pluginLaunches(sites: number): Promise<PartResult> {
  const hosts = siteHosts(sites)
  const a = await ours(hosts)
  const b = await theirs(hosts)
  const sum = (r: Record<string, number>) => Object.values(r).reduce((x, y) => x + y, 0)
  const perPluginOurs = sum(a.launches) / Math.max(1, Object.keys(a.launches).length)
  const perPluginTheirs = typeof b === 'string' ? NaN : sum(b.launches) / Math.max(1, Object.keys(b.launches).length)
  return {
    markdown: [
      `### Plugin instances: launches of each server-side plugin after requests to ${sites} sites`,
      '',
      `wikifarm: every site got GET /welcome-visitors.json and a request to each plugin's REST route (linkmap, ` +
        `txtzyme with ` +
        'its simulator, and bench-count, a third-party plugin loaded by package path, which runs in a worker ' +
          'thread, granted so: its counter file is a write the default process isolation ' +
        'refuses); launches as the kernel counts them ' +
        '(`/system/status.json`, admin login) and, for bench-count, by a line its launch appends to a file. ' +
        `Reference: every site got GET /welcome-visitors.json; starts counted from its "starting plugin" log lines ` +
          `and ` +
        'a counter plugin (wiki-plugin-benchcount) added to its scratch install whose startServer appends a line to ' +
          'a file.',
      '',
      table(
        ['farm', 'plugin', 'launches', 'failed requests'],
        [
          ...Object.entries(a.launches).map(([name, n]) => ['wikifarm', name, n, a.failed]),
          ...(typeof b === 'string'
            ? [['reference', `could not be run: ${b}`, '—', '—']]
            : Object.entries(b.launches).map(([name, n]) => ['reference', name, n, b.failed])),
        ],
      ),
      '',
      `Mean launches per plugin: wikifarm ${perPluginOurs.toFixed(1)}, reference ` +
        `${Number.isFinite(perPluginTheirs) ? perPluginTheirs.toFixed(1) : '—'} ` +
        `(ratio ${fmtRatio(ratio(perPluginTheirs, perPluginOurs))}).`,
    ].join('\n'),
    headlines: [
      {
        label: `plugin launches per plugin, ${sites} sites: reference ÷ wikifarm`,
        value: ratio(perPluginTheirs, perPluginOurs),
      },
    ],
  }
}
