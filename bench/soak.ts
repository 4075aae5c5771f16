// Soak (from the hardening issue): two minutes of mixed traffic on 100 claimed sites against one
// wikifarm process: REST reads (pages, sitemap, the linkmap plugin's map), owners' edits that
// change links, and websocket traffic (linkmap clients asking for the map and receiving live
// updates, push subscribers receiving every edit, a connection closed and reopened every
// second). Reports errors (must be 0), RSS at start, peak and end, and p99 latencies.
// Not in the default run (it alone takes two minutes): `npm run bench -- soak`.
import { join } from 'node:path'
import WebSocket from 'ws'
import { scratchDir } from './cleanup.js'
import { rssBytes, stopChild } from './children.js'
import { cookieHeader, fetchHost, percentile, visitAll } from './http-client.js'
import { load } from './load.js'
import { startWikifarm } from './wikifarm-process.js'
import { claimedSites, siteHosts } from './farm-data.js'
import { fmtBytes, fmtMs, table, type PartResult } from './report.js'

const SITES = 100
const ITEM = '7b56f22a4b9ee974'
const READS = ['/welcome-visitors.json', '/system/sitemap.json', '/plugin/linkmap/map.json', '/about-this-wiki.json']
const secretOf = (host: string) => `soak-secret-${host}`

interface WsStats {
  errors: string[]
  answered: number[]
  updates: number
  published: number
  reopened: number
}

/** A linkmap client that asks for the map every 500 ms and times each answer. */
function linkmapClient(port: number, host: string, stats: WsStats): { close: () => void; pending: () => number } {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/plugin/linkmap`, ['wikifarm.v1'], {
    headers: { host, origin: `http://${host}` },
  })
  const asked = new Map<string, number>()
  let n = 0
  let closing = false
  const timer = setInterval(() => {
    if (ws.readyState !== WebSocket.OPEN) return
    const id = `q${n++}`
    asked.set(id, performance.now())
    ws.send(JSON.stringify({ type: 'map', id }))
  }, 500)
  ws.on('message', (data) => {
    const message = JSON.parse(data.toString()) as { type: string; id?: string }
    if (message.type === 'update') stats.updates++
    else if (message.type === 'map' && message.id !== undefined) {
      const at = asked.get(message.id)
      if (at !== undefined) stats.answered.push(performance.now() - at)
      asked.delete(message.id)
    } else if (message.type !== 'map') stats.errors.push(`${host} linkmap: unexpected ${data.toString().slice(0, 100)}`)
  })
  ws.on('error', (err) => stats.errors.push(`${host} linkmap: ${err.message}`))
  ws.on('close', (code) => {
    clearInterval(timer)
    if (!closing) stats.errors.push(`${host} linkmap closed by the server: ${code}`)
  })
  return {
    close: () => { closing = true; clearInterval(timer); ws.close() },
    pending: () => [...asked.values()].filter((t) => performance.now() - t > 5000).length,
  }
}

function pushSubscriber(port: number, host: string, stats: WsStats): () => void {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/system/push`, ['wikifarm.v1'], {
    headers: { host, origin: `http://${host}` },
  })
  let closing = false
  ws.on('open', () => ws.send(JSON.stringify({ type: 'subscribe', id: 's', data: { key: 'welcome-visitors' } })))
  ws.on('message', (data) => {
    const message = JSON.parse(data.toString()) as { type: string }
    if (message.type === 'published') stats.published++
    else if (message.type !== 'subscribed')
      stats.errors.push(`${host} push: unexpected ${data.toString().slice(0, 100)}`)
  })
  ws.on('error', (err) => stats.errors.push(`${host} push: ${err.message}`))
  ws.on('close', (code) => { if (!closing) stats.errors.push(`${host} push closed by the server: ${code}`) })
  return () => { closing = true; ws.close() }
}

export async function soak(seconds: number): Promise<PartResult> {
  const dir = scratchDir('soak')
  const data = join(dir, 'data')
  const hosts = siteHosts(SITES)
  claimedSites(data, hosts, secretOf)
  const farm = await startWikifarm({ data, logFile: join(dir, 'farm.log') })
  const pid = farm.child.pid as number
  const stats: WsStats = { errors: [], answered: [], updates: 0, published: 0, reopened: 0 }
  const rss: number[] = []
  try {
    const cookies = new Map<string, string>()
    for (const host of hosts) {
      const login = await fetchHost(farm.port, host, '/auth/reclaim/', {
        method: 'POST',
        body: secretOf(host),
        headers: { 'content-type': 'text/plain' },
      })
      if (login.status !== 200) throw new Error(`login on ${host}: ${login.status} ${login.body}`)
      cookies.set(host, cookieHeader(login.cookies))
    }
    for (const path of READS) {
      const { failed } = await visitAll(farm.port, hosts, path, 10)
      if (failed) stats.errors.push(`warm-up: ${failed} of ${hosts.length} GET ${path} failed`)
    }
    const linkmaps = hosts.map((h) => linkmapClient(farm.port, h, stats))
    const subscribers = hosts.map((h) => pushSubscriber(farm.port, h, stats))
    await new Promise((r) => setTimeout(r, 1000))
    rss.push(rssBytes(pid))
    const sampler = setInterval(() => rss.push(rssBytes(pid)), 5000)
    let turn = 0
    const churn = setInterval(() => {
      const i = turn++ % linkmaps.length
      linkmaps[i]?.close()
      linkmaps[i] = linkmapClient(farm.port, hosts[i] as string, stats)
      stats.reopened++
    }, 1000)
    const [reads, edits] = await Promise.all([
      load(farm.port, (_host, n) => READS[n % READS.length] as string, hosts, seconds, { connections: 20 }),
      load(farm.port, '/page/welcome-visitors/action', hosts, seconds, {
        connections: 4,
        method: 'PUT',
        headersFor: (host) => ({
          cookie: cookies.get(host) as string,
          'content-type': 'application/x-www-form-urlencoded',
        }),
        body: (_host, n) =>
          `action=${encodeURIComponent(
            JSON.stringify({
              type: 'edit',
              id: ITEM,
              item: {
                type: 'paragraph',
                id: ITEM,
                text: `Soak edit ${n}, see [[Soak ${Math.floor(n / SITES) % 50}]].`,
              },
              date: Date.now(),
            }),
          )}`,
      }),
    ])
    clearInterval(churn)
    clearInterval(sampler)
    await new Promise((r) => setTimeout(r, 1000))
    const unanswered = linkmaps.reduce((sum, c) => sum + c.pending(), 0)
    if (unanswered) stats.errors.push(`${unanswered} map requests unanswered after 5 s`)
    for (const c of linkmaps) c.close()
    for (const close of subscribers) close()
    rss.push(rssBytes(pid))
    const errors = reads.errors + reads.non2xx + edits.errors + edits.non2xx + stats.errors.length
    return {
      markdown: [
        `### Soak: ${seconds} s of mixed traffic on ${SITES} sites, one wikifarm process`,
        '',
        `REST reads (20 connections, rotating ${READS.join(', ')}), owners' edits that change a link (4 connections, ` +
          `PUT /page/welcome-visitors/action), ${SITES} linkmap websocket clients asking for the map every 500 ms ` +
            `(one closed ` +
          `and reopened every second), ${SITES} push subscribers of welcome-visitors.`,
        '',
        table(
          ['measure', 'value'],
          [
            ['errors (HTTP errors, non-2xx, websocket errors and unexpected closes, unanswered requests)', errors],
            [
              'of which reads (errors / non-2xx), edits (errors / non-2xx), websocket',
              `${reads.errors} / ${reads.non2xx}, ${edits.errors} / ${edits.non2xx}, ${stats.errors.length}`,
            ],
            ['REST reads: requests, p50 / p99 ms', `${reads.requests}, ${reads.p50} / ${reads.p99}`],
            ['edits: requests, p50 / p99 ms', `${edits.requests}, ${edits.p50} / ${edits.p99}`],
            [
              'websocket map requests answered, p50 / p99 ms',
              `${stats.answered.length}, ${fmtMs(percentile(stats.answered, 0.5))} / ` +
                `${fmtMs(percentile(stats.answered, 0.99))}`,
            ],
            [
              'linkmap updates received, push messages received, connections reopened',
              `${stats.updates}, ${stats.published}, ${stats.reopened}`,
            ],
            [
              'RSS at start / peak / end',
              `${fmtBytes(rss[0] as number)} / ${fmtBytes(Math.max(...rss))} / ` +
                `${fmtBytes(rss[rss.length - 1] as number)}`,
            ],
          ],
        ),
        ...(stats.errors.length ? ['', 'First errors:', '', ...stats.errors.slice(0, 5).map((e) => `- ${e}`)] : []),
      ].join('\n'),
      headlines: [],
    }
  } finally {
    await stopChild(farm)
  }
}
