// Starting a server in a child process and loading it with autocannon, Host rotating over sites.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import autocannon from 'autocannon'

export interface Served {
  child: ChildProcess
  port: number
}

export async function serve(script: string, env: Record<string, string>): Promise<Served> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = await once(child.stdout!, 'data') as [Buffer]
  return { child, port: Number(chunk.toString().trim()) }
}

export async function stop(served: Served): Promise<void> {
  if (served.child.exitCode !== null) return
  served.child.kill('SIGTERM')
  await Promise.race([once(served.child, 'exit'), new Promise((r) => setTimeout(r, 5000))])
  served.child.kill('SIGKILL')
}

export interface LoadResult {
  rps: number
  p50: number
  p99: number
  errors: number
  non2xx: number
}

export async function load(port: number, path: string, hosts: string[], seconds: number, connections = 100): Promise<LoadResult> {
  let next = 0
  const result = await autocannon({
    url: `http://127.0.0.1:${port}`,
    connections,
    duration: seconds,
    requests: [{
      method: 'GET', path,
      setupRequest: (request) => {
        request.headers = { ...request.headers, host: hosts[next++ % hosts.length] as string }
        return request
      },
    }],
  })
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors,
    non2xx: result.non2xx,
  }
}
