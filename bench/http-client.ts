// Single HTTP requests on 127.0.0.1 with a chosen Host, timed: for first visits, logins and
// status reads, where autocannon's loops do not fit.
import { request } from 'node:http'

export interface Answer {
  status: number
  body: string
  cookies: string[]
  ms: number
}

export function fetchHost(
  port: number,
  host: string,
  path: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: init.method ?? 'GET',
        agent: false,
        headers: {
          host,
          ...(init.body !== undefined ? { 'content-length': String(Buffer.byteLength(init.body)) } : {}),
          ...init.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            cookies: res.headers['set-cookie'] ?? [],
            ms: performance.now() - started,
          }),
        )
        res.on('error', reject)
      },
    )
    req.setTimeout(60_000, () => req.destroy(new Error(`${host}${path}: no answer in 60 s`)))
    req.on('error', reject)
    req.end(init.body)
  })
}

/**
 * GETs `path` once on every host, `concurrency` at a time, until done or `deadline`
 * (performance.now() ms). Returns how many were visited and how many failed, and the
 * milliseconds of each answer.
 */
export async function visitAll(
  port: number,
  hosts: readonly string[],
  path: string,
  concurrency = 20,
  deadline = Infinity,
): Promise<{ visited: number; failed: number; ms: number[] }> {
  const ms: number[] = []
  let next = 0
  let failed = 0
  let visited = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < hosts.length && performance.now() < deadline) {
        const host = hosts[next++] as string
        const answer = await fetchHost(port, host, path).catch(() => null)
        visited++
        if (!answer || answer.status !== 200) failed++
        else ms.push(answer.ms)
      }
    }),
  )
  return { visited, failed, ms }
}

export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number : 0
}

/** A cookie header from Set-Cookie lines (name=value pairs only). */
export function cookieHeader(setCookies: readonly string[]): string {
  return setCookies.map((c) => c.split(';', 1)[0]).join('; ')
}
