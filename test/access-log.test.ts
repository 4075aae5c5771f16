// The access log as shipped: one line per request, written once per turn of the event loop
// (core/boot/log-destination.ts) by the root logger (core/http/access-log.ts). Nothing logged
// is lost when the farm stops (SIGTERM), when it closes on an uncaught exception, or when the
// process exits at once; request loggers are pino children made only when used.
import { PACKAGE_ROOT } from '../core/package-info.js'
import t, { type Test } from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Writable } from 'node:stream'
import { createKernel, DEFAULTS } from '../core/kernel.js'
import { http } from './fixtures/test-farm.js'

const BIN = join(PACKAGE_ROOT, 'bin/wikifarm.js')
const TIMEBOMB = fileURLToPath(new URL('./fixtures/plugins-faults/timebomb/index.js', import.meta.url))
const DESTINATION = fileURLToPath(new URL('../core/boot/log-destination.js', import.meta.url))
const HOST = 'a.example'

interface Run { child: ChildProcess; stdout: string; exited: Promise<number | null> }

function start(t: Test): Run {
  const dir = t.testdir({ data: { [HOST]: { pages: {} } } })
  const config = join(dir, 'farm.json')
  writeFileSync(config, JSON.stringify({
    farm: true, host: '127.0.0.1', port: 0, data: join(dir, 'data'), cookieSecret: 'c'.repeat(40),
    readRate: 0, connectionsPerIp: 0,
    plugins: { timebomb: { package: TIMEBOMB, isolation: 'none' } },
  }))
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WIKIFARM_')))
  // stdout is a pipe, as under a supervisor: the log is JSON lines, at the default level (info).
  const child = spawn(process.execPath, [BIN, '--config', config], { env, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const run: Run = { child, stdout: '', exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) }
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { run.stdout += chunk })
  return run
}

async function port(run: Run): Promise<number> {
  const until = Date.now() + 60_000
  for (;;) {
    const match = /on http:\/\/127\.0\.0\.1:(\d+)/.exec(run.stdout)
    if (match) return Number(match[1])
    if (Date.now() > until) throw new Error(`the farm did not start: ${run.stdout}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function lines(stdout: string): Array<Record<string, unknown>> {
  return stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
}

async function burst(at: number, count: number): Promise<number[]> {
  const answers = await Promise.all(
    Array.from({ length: count }, () => http(at, 'GET', '/welcome-visitors.json', HOST)))
  return answers.map((a) => a.status)
}

t.test('SIGTERM right after a burst of requests: every access line is written, then the close', async (t) => {
  const run = start(t)
  const at = await port(run)
  const statuses = await burst(at, 300)
  t.ok(statuses.every((s) => s === 200), '300 reads answered')
  run.child.kill('SIGTERM')
  t.equal(await run.exited, 0)
  const logged = lines(run.stdout)
  const requests = logged.filter((l) => l.msg === 'request')
  t.equal(requests.length, 300, 'one line per request, none lost')
  t.match(requests[0], {
    level: 30, reqId: String, site: HOST, method: 'GET', url: '/welcome-visitors.json', status: 200, ms: Number,
  })
  t.equal(new Set(requests.map((l) => l.reqId)).size, 300, 'each names its own request')
  t.equal(logged.at(-1)?.msg, 'farm closed', 'the last line is the close, after every request line')
})

t.test('an uncaught exception: the request lines before it, the fatal line and the close all written', async (t) => {
  const run = start(t)
  const at = await port(run)
  await burst(at, 100)
  t.equal((await http(at, 'POST', '/plugin/timebomb/throw-later', HOST)).status, 200)
  t.equal(await run.exited, 1, 'the farm exits 1')
  const logged = lines(run.stdout)
  t.equal(logged.filter((l) => l.msg === 'request').length, 101, 'every request line (the arming POST too)')
  t.ok(logged.some((l) => l.level === 60 && String(l.msg).startsWith('uncaught exception')), 'the fatal line')
  t.equal(logged.at(-1)?.msg, 'farm closed')
})

t.test('a process that exits at once still writes the lines of its last turn', async (t) => {
  const script = `
    const { LogDestination } = await import(${JSON.stringify(DESTINATION)})
    const log = new LogDestination(1)
    for (let i = 0; i < 5000; i++) log.write(JSON.stringify({ i }) + '\\n')
    process.exit(3)
  `
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  t.equal(out.status, 3)
  const written = lines(out.stdout)
  t.equal(written.length, 5000, 'all 5000 lines, written at exit')
  t.same(written.map((l) => l.i), Array.from({ length: 5000 }, (_, i) => i), 'in order')
})

t.test('request loggers: a child only when used, and the access line reads as the child would write it', async (t) => {
  const chunks: string[] = []
  const stream = new Writable({ write(chunk: Buffer, _enc, done) { chunks.push(chunk.toString()); done() } })
  const dir = t.testdir({ data: {} })
  const config = { ...DEFAULTS, data: join(dir, 'data'), cookieSecret: 'c'.repeat(40), cookieSecretIsRandom: false }
  const kernel = await createKernel(config,
    { logger: { level: 'info', stream } })
  t.teardown(() => kernel.close())
  kernel.app.get('/logs-twice', async (request) => {
    request.log.warn({ extra: 1 }, 'first')
    request.log.child({ part: 'inner' }).info('second')
    return { level: request.log.level }
  })
  await kernel.app.inject({ url: '/welcome-visitors.json' })
  t.same((await kernel.app.inject({ url: '/logs-twice' })).json(), { level: 'info' }, 'request.log.level as set')
  const logged = lines(chunks.join(''))
  const access = logged.filter((l) => l.msg === 'request')
  t.equal(access.length, 2, 'one access line per request')
  t.same(Object.keys(access[0] ?? {}),
    ['level', 'time', 'pid', 'hostname', 'reqId', 'site', 'method', 'url', 'status', 'ms', 'msg'],
    'the fields, in the order a request child writes them')
  const first = logged.find((l) => l.msg === 'first')
  const second = logged.find((l) => l.msg === 'second')
  t.match(first, { level: 40, reqId: access[1]?.reqId, extra: 1 }, 'a route logging through request.log: its reqId')
  t.match(second, { level: 30, reqId: access[1]?.reqId, part: 'inner' }, "a child of request.log keeps the reqId")
  t.equal(logged.filter((l) => l.reqId !== undefined).length, 4, 'no other line names a request')
})
