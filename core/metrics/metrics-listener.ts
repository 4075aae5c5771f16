// The metrics port: a bare node:http server that answers GET /metrics and nothing else. It is
// not the farm's Fastify instance, so no site, Host rule, session, hook or plugin route exists
// here, and a scrape never counts as a request of the farm.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'

/** Seconds a scraper may take to send its request; it sends a few hundred bytes. */
const REQUEST_SECONDS = 10
/** Scrapers at once: Prometheus uses one or two; more is someone else. */
const MAX_CONNECTIONS = 32

export class MetricsListener {
  readonly #server: Server
  readonly #port: number
  readonly #host: string

  constructor(registry: Registry, port: number, host: string) {
    this.#port = port
    this.#host = host
    this.#server = createServer((req, res) => {
      const path = (req.url ?? '').split('?', 1)[0]
      if (path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
          .end('not found: the metrics are at /metrics\n')
        return
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('GET only\n')
        return
      }
      registry.metrics().then((body) => {
        res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : body)
      }, (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' })
          .end(`metrics failed: ${(err as Error)?.message ?? String(err)}\n`)
      })
    })
    this.#server.requestTimeout = REQUEST_SECONDS * 1000
    this.#server.headersTimeout = REQUEST_SECONDS * 1000
    this.#server.maxConnections = MAX_CONNECTIONS
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const failed = (err: NodeJS.ErrnoException) => {
        const why = err.code === 'EADDRINUSE' ? 'is already in use'
          : err.code === 'EACCES' ? 'needs a permission this process lacks' : `failed: ${err.message}`
        reject(Object.assign(new Error(`metrics port ${this.#port} on ${this.#host} ${why}`),
          { code: 'WIKIFARM_ERR_METRICS_LISTEN', cause: err }))
      }
      this.#server.once('error', failed)
      this.#server.listen(this.#port, this.#host, () => {
        this.#server.off('error', failed)
        resolve()
      })
    })
  }

  url(): string | null {
    const address = this.#server.address() as AddressInfo | null
    if (address === null || typeof address === 'string') return null
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    return `http://${host}:${address.port}`
  }

  close(): Promise<void> {
    if (!this.#server.listening) return Promise.resolve()
    return new Promise((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
  }
}
