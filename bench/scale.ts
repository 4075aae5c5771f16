// Farm scale: boot time to listening with 1, 1,000 and 10,000 site folders on disk; the
// latency of the first request to a site not yet opened; resident memory after opening 1,000
// and 10,000 sites (bytes per open site). For wikifarm and for the reference farm, each in its
// own process, on one shared set of folders, within a time budget for the reference (which
// creates a whole Express server per site).
import { join } from 'node:path'
import { scratchDir } from './cleanup.js'
import { rssBytes, stopChild, type Child } from './children.js'
import { fetchHost, percentile, visitAll } from './http-client.js'
import { startWikifarm } from './wikifarm-process.js'
import { referenceFarm, startReference } from './reference-farm.js'
import { makeSiteFolders, siteHosts } from './farm-data.js'
import { fmtBytes, fmtMs, fmtRatio, ratio, table, type PartResult } from './report.js'

const PATH = '/welcome-visitors.json'
const COUNTS = [1, 1000, 10_000]
const FIRST_VISITS = 20
/** First requests in flight at once, over this many site folders, none opened before. */
const CONCURRENT_FIRSTS = { folders: 2000, inFlight: 16 }
/** Wall-clock budget for opening sites in one farm process (the reference is slow at it). */
const OPEN_BUDGET_MS = Number(process.env.BENCH_OPEN_BUDGET_MS ?? 40_000)

interface Boot {
  folders: number
  bootMs: number
  firstP50: number
  firstMax: number
}

interface Memory {
  rss0: number
  /** Sites opened, failures and RSS after each step. */
  steps: { target: number; opened: number; failed: number; rss: number; seconds: number }[]
}

type Start = (data: string, log: string) => Promise<Child>

async function settle(ms = 1000): Promise<void> {
  await new Promise((r) => setTimeout(r, ms))
}

/** Boots on `data` twice (keeping the faster), then first visits of sites no one opened yet. */
async function boot(
  start: Start,
  data: string,
  log: string,
  folders: number,
  hosts: string[],
  firstFrom: number,
): Promise<Boot> {
  let best = Infinity
  let firsts: number[] = []
  for (let attempt = 0; attempt < 2; attempt++) {
    const farm = await start(data, log)
    try {
      best = Math.min(best, farm.bootMs)
      if (attempt === 1) {
        // Sites the first boot never saw either: each one's very first request.
        const unopened = hosts.slice(firstFrom, firstFrom + Math.min(FIRST_VISITS, folders))
        firsts = []
        for (const host of unopened) {
          const answer = await fetchHost(farm.port, host, PATH)
          // A fast error is not a first visit.
          if (answer.status !== 200) throw new Error(`${host}${PATH} answered ${answer.status} on its first visit`)
          firsts.push(answer.ms)
        }
      }
    } finally {
      await stopChild(farm)
    }
  }
  return { folders, bootMs: best, firstP50: percentile(firsts, 0.5), firstMax: percentile(firsts, 1) }
}

/**
 * A fresh process on `folders` site folders, then the first request to every one of them,
 * `inFlight` at a time (the 16 a browser-like burst of several visitors would have in flight).
 */
async function concurrentFirsts(start: Start, data: string, log: string, hosts: string[]):
  Promise<{ firsts: number[]; seconds: number[] }> {
  const farm = await start(data, log)
  try {
    const first = await visitAll(farm.port, hosts, PATH, CONCURRENT_FIRSTS.inFlight)
    if (first.failed > 0) throw new Error(`${first.failed} of ${hosts.length} first requests failed`)
    // The baseline of the same run: the same requests once every site is open. A first request
    // cannot be faster than this (a new connection each, 16 in flight, client on the same cores).
    const second = await visitAll(farm.port, hosts, PATH, CONCURRENT_FIRSTS.inFlight)
    if (second.failed > 0) throw new Error(`${second.failed} of ${hosts.length} second requests failed`)
    return { firsts: first.ms, seconds: second.ms }
  } finally {
    await stopChild(farm)
  }
}

async function memory(start: Start, data: string, log: string, hosts: string[]): Promise<Memory> {
  const farm = await start(data, log)
  const pid = farm.child.pid as number
  try {
    await settle()
    const rss0 = rssBytes(pid)
    const steps: Memory['steps'] = []
    const deadline = performance.now() + OPEN_BUDGET_MS
    let opened = 0
    for (const target of [1000, 10_000]) {
      const t0 = performance.now()
      const { visited, failed } = await visitAll(farm.port, hosts.slice(opened, target), PATH, 20, deadline)
      opened += visited
      const seconds = (performance.now() - t0) / 1000
      await settle()
      steps.push({ target, opened, failed, rss: rssBytes(pid), seconds })
      if (opened < target) break
    }
    return { rss0, steps }
  } finally {
    await stopChild(farm)
  }
}

export async function scale(): Promise<PartResult> {
  // Both farms use the same folders, wikifarm first at each step: wikifarm reads only pages/
  // and writes nothing on reads, and 10,000 site folders take seconds to make and to remove on
  // this machine. The reference's first visits go to other sites than wikifarm's, since it
  // leaves files in the sites it opens.
  const dir = scratchDir('scale')
  const data = join(dir, 'data')
  const hosts = siteHosts(10_000)
  const ref = await referenceFarm()
  const startOurs: Start = (d, log) => startWikifarm({ data: d, logFile: log })
  const startTheirs: Start | null = ref.ok ? (d, log) => startReference(ref.install, { data: d, logFile: log }) : null
  const ours = { boots: [] as Boot[], mem: null as unknown as Memory }
  const theirs = startTheirs ? { boots: [] as Boot[], mem: null as unknown as Memory } : null
  let made = 0
  let firsts: number[] = []
  let seconds: number[] = []
  for (const count of COUNTS) {
    makeSiteFolders(data, hosts.slice(made, count))
    made = count
    const from = Math.max(0, count - FIRST_VISITS)
    ours.boots.push(await boot(startOurs, data, join(dir, 'wikifarm.log'), count, hosts, from))
    if (theirs && startTheirs)
      theirs.boots.push(
        await boot(startTheirs, data, join(dir, 'reference.log'), count, hosts, Math.max(0, from - FIRST_VISITS)),
      )
    if (count === 1000) {
      // The concurrent first requests, on folders no process has opened (1,000 to 3,000).
      const fresh = hosts.slice(1000, 1000 + CONCURRENT_FIRSTS.folders)
      makeSiteFolders(data, fresh)
      made = 1000 + CONCURRENT_FIRSTS.folders
      ;({ firsts, seconds } = await concurrentFirsts(startOurs, data, join(dir, 'wikifarm.log'), fresh))
    }
  }
  ours.mem = await memory(startOurs, data, join(dir, 'wikifarm.log'), hosts)
  if (theirs && startTheirs) theirs.mem = await memory(startTheirs, data, join(dir, 'reference.log'), hosts)
  const bootRows = COUNTS.map((count, i) => {
    const a = ours.boots[i] as Boot
    const b = theirs?.boots[i]
    return [count, fmtMs(a.bootMs), b ? fmtMs(b.bootMs) : '—', fmtRatio(b ? ratio(b.bootMs, a.bootMs) : null),
      `${fmtMs(a.firstP50)} / ${fmtMs(a.firstMax)}`, b ? `${fmtMs(b.firstP50)} / ${fmtMs(b.firstMax)}` : '—',
      fmtRatio(b ? ratio(b.firstP50, a.firstP50) : null)]
  })
  const perSite = (m: Memory, i: number) => {
    const s = m.steps[i]
    return s && s.opened > 0 ? (s.rss - m.rss0) / s.opened : NaN
  }
  const memRows = [0, 1].map((i) => {
    const a = ours.mem.steps[i]
    const b = theirs?.mem.steps[i]
    const note = (s: Memory['steps'][number] | undefined) =>
      !s
        ? 'not reached'
        : s.opened < s.target
          ? `only ${s.opened} opened in the ${OPEN_BUDGET_MS / 1000} s budget`
          : `${s.seconds.toFixed(1)} s${s.failed ? `, ${s.failed} failed` : ''}`
    return [[1000, 10_000][i] as number,
      a ? fmtBytes(a.rss) : '—', fmtBytes(perSite(ours.mem, i)), note(a),
      b ? fmtBytes(b.rss) : '—', theirs ? fmtBytes(perSite(theirs.mem, i)) : '—', theirs ? note(b) : '—',
      fmtRatio(theirs ? ratio(perSite(theirs.mem, i), perSite(ours.mem, i)) : null)]
  })
  const last = (m: Memory) => m.steps.length - 1
  return {
    markdown: [
      '### Farm scale: boot, first request, memory per open site',
      '',
      'Boot: spawn of the process until its port accepts a connection, best of two boots, with that many empty site ' +
        `folders on disk. First request: GET ${PATH} to ${FIRST_VISITS} sites no boot had opened, one after another ` +
        '(p50 / max). Neither farm scans its folders at boot (wikifarm opens sites lazily; the reference starts a ' +
          'server ' +
        'per host on its first visit).' +
        (ref.ok ? '' : ` The reference farm could not be run: ${ref.reason}.`),
      '',
      table(
        [
          'site folders',
          'wikifarm boot ms',
          'reference boot ms',
          'boot ratio (ref ÷ ours)',
          'wikifarm first request ms',
          'reference first request ms',
          'first request ratio (p50)',
        ],
        bootRows,
      ),
      '',
      `First requests in flight together: a fresh wikifarm on ${CONCURRENT_FIRSTS.folders.toLocaleString('en')} ` +
        `site folders no process had opened (with 1,000 more beside them), GET ${PATH} once to each, ` +
        `${CONCURRENT_FIRSTS.inFlight} in flight: p50 ${fmtMs(percentile(firsts, 0.5))} ms, ` +
        `p99 ${fmtMs(percentile(firsts, 0.99))} ms, max ${fmtMs(percentile(firsts, 1))} ms. The same requests ` +
        `again, every site open (the baseline: a new connection each, the client on the same cores): ` +
        `p50 ${fmtMs(percentile(seconds, 0.5))} ms, p99 ${fmtMs(percentile(seconds, 0.99))} ms; what opening adds ` +
        `at the median: ${fmtMs(percentile(firsts, 0.5) - percentile(seconds, 0.5))} ms.`,
      '',
      `Memory: a fresh process on the 10,000 site folders; RSS (with its children: the reference serves from a ` +
        `cluster worker) when idle (wikifarm ${fmtBytes(ours.mem.rss0)}` +
        `${theirs ? `, reference ${fmtBytes(theirs.mem.rss0)}` : ''}), then after one GET to each of the first ` +
          `1,000 and then ` +
        'all 10,000 sites (20 at a time), one second after the last. Per open site = (RSS − idle RSS) ÷ sites opened.',
      '',
      table(
        [
          'sites opened',
          'wikifarm RSS',
          'wikifarm per site',
          'wikifarm took',
          'reference RSS',
          'reference per site',
          'reference took',
          'per-site ratio (ref ÷ ours)',
        ],
        memRows,
      ),
    ].join('\n'),
    headlines: [
      {
        label: 'boot to listening, 10,000 folders: reference ÷ wikifarm',
        value: theirs ? ratio((theirs.boots[2] as Boot).bootMs, (ours.boots[2] as Boot).bootMs) : null,
      },
      {
        label: 'first request to a new site (p50): reference ÷ wikifarm',
        value: theirs ? ratio((theirs.boots[2] as Boot).firstP50, (ours.boots[2] as Boot).firstP50) : null,
      },
      {
        label: 'RSS per open site: reference ÷ wikifarm',
        value: theirs ? ratio(perSite(theirs.mem, last(theirs.mem)), perSite(ours.mem, last(theirs.mem))) : null,
      },
    ],
  }
}
