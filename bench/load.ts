// Load from autocannon, the Host rotating over sites; and the bench's own small servers
// (bench/*-server.ts), which print their port on stdout.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import autocannon from 'autocannon'
import { trackChild } from './cleanup.js'

export interface Served {
  child: ChildProcess
  port: number
}

export async function serve(script: string, env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  trackChild(child)
  const [chunk] = await once(child.stdout!, 'data') as [Buffer]
  child.stdout!.resume()
  return { child, port: Number(chunk.toString().trim()) }
}

export async function stop(served: { child: ChildProcess }): Promise<void> {
  if (served.child.exitCode !== null || served.child.signalCode !== null) return
  const exited = once(served.child, 'exit')
  served.child.kill('SIGTERM')
  const timer = setTimeout(() => served.child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

export interface LoadResult {
  rps: number
  p50: number
  p99: number
  errors: number
  non2xx: number
  requests: number
}

export interface LoadOptions {
  method?: 'GET' | 'PUT' | 'POST'
  connections?: number
  /** Extra headers per host (cookies). */
  headersFor?: (host: string) => Record<string, string>
  /** A body per request (a new one each time). */
  body?: (host: string, n: number) => string
}

export async function load(
  port: number,
  path: string | ((host: string, n: number) => string),
  hosts: string[],
  seconds: number,
  opts: LoadOptions = {},
): Promise<LoadResult> {
  let next = 0
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections: opts.connections ?? 100,
    duration: seconds,
    requests: [
      {
        method: opts.method ?? 'GET',
        path: typeof path === 'string' ? path : '/',
        setupRequest: (request) => {
          const n = next++
          const host = hosts[n % hosts.length] as string
          request.headers = { ...request.headers, host, ...opts.headersFor?.(host) }
          if (typeof path !== 'string') request.path = path(host, n)
          if (opts.body) request.body = opts.body(host, n)
          return request
        },
      },
    ],
  })
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    requests: result.requests.total,
  }
}
