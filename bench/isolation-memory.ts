// The farm's memory while an isolated plugin tries to hold 1 GB of Buffers (memory outside the
// V8 heap, which maxHeapMb does not see), with maxHeapMb 64: the farm's RSS before, at its peak
// and after, the plugin's own process's peak, and how the request ended. Standalone:
//   node dist/bench/isolation-memory.js [checkout] [worker|process] [maxRssMb]
// `checkout` (default: this one) is any wikifarm checkout whose `node bin/wikifarm.js` runs, so
// the same script measures an older farm for a baseline.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PACKAGE_ROOT } from '../core/package-info.js'

const HOARD = fileURLToPath(new URL('./plugins-memory/hoard/index.mjs', import.meta.url))
const PAGE = 4096

/** Resident MiB of a process, 0 once it is gone. */
function rssMb(pid: number): number {
  try {
    return Math.round(Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * PAGE / 1048576)
  } catch {
    return 0
  }
}

function descendants(pid: number): number[] {
  let children: number[] = []
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch { /* gone */ }
  return children.flatMap((child) => [child, ...descendants(child)])
}

function post(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1', port, method: 'POST', path,
      headers: { host: 'a.example', 'content-type': 'application/json', origin: 'http://a.example' },
    }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve(`${res.statusCode} ${body.slice(0, 200)}`))
    })
    req.on('error', (err) => resolve(`error ${err.message}`))
    req.end('{}')
  })
}

export interface MemoryRun {
  checkout: string
  mode: string
  maxRssMb: number | 'default'
  farmRssBefore: number
  farmRssPeak: number
  farmRssAfter: number
  pluginProcessRssPeak: number
  ms: number
  result: string
}

export async function isolationMemory(checkout: string, mode: 'worker' | 'process',
  maxRssMb?: number): Promise<MemoryRun> {
  const dir = mkdtempSync(join(tmpdir(), 'wikifarm-bench-memory-'))
  const grant = { package: HOARD, isolation: mode, maxHeapMb: 64, ...(maxRssMb ? { maxRssMb } : {}) }
  writeFileSync(join(dir, 'farm.json'), JSON.stringify({
    farm: true, host: '127.0.0.1', port: 0, data: join(dir, 'data'), cookieSecret: 'bench-'.repeat(8), logLevel: 'info',
    plugins: { hoard: grant, txtzyme: { enabled: false }, linkmap: { enabled: false } },
  }))
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WIKIFARM_')))
  const farm = spawn(process.execPath, ['bin/wikifarm.js', '--config', join(dir, 'farm.json')],
    { cwd: checkout, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  farm.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  farm.stderr.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  try {
    const listening = /listening at http:\/\/127\.0\.0\.1:(\d+)/i
    const until = Date.now() + 60_000
    while (!listening.test(out)) {
      if (farm.exitCode !== null || Date.now() > until) throw new Error(`the farm did not start: ${out.slice(-500)}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const port = Number(listening.exec(out)?.[1])
    const pid = farm.pid as number
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const before = rssMb(pid)
    let peak = before
    let pluginPeak = 0
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssMb(pid))
      for (const child of descendants(pid)) pluginPeak = Math.max(pluginPeak, rssMb(child))
    }, 20)
    const started = Date.now()
    const result = await post(port, '/plugin/hoard/hoard')
    const ms = Date.now() - started
    await new Promise((resolve) => setTimeout(resolve, 1500))
    clearInterval(sampler)
    return {
      checkout, mode, maxRssMb: maxRssMb ?? 'default', farmRssBefore: before, farmRssPeak: peak,
      farmRssAfter: rssMb(pid), pluginProcessRssPeak: pluginPeak, ms, result,
    }
  } finally {
    farm.kill('SIGKILL')
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [checkout = PACKAGE_ROOT, mode = 'worker', rss] = process.argv.slice(2)
  if (mode !== 'worker' && mode !== 'process') throw new Error('mode: worker or process')
  console.log(JSON.stringify(await isolationMemory(checkout, mode, rss ? Number(rss) : undefined)))
}
