// Requests and their latency by route. The label is the route's pattern as registered
// (`/:slug.json`, `/plugin/linkmap/…`), fixed when the route is added: never the URL a client
// sent and never its Host, so no visitor can add a series. Requests no route matched share
// one label, `unmatched`. Each route gets its own onResponse hook, closed over its series:
// a request does one Map lookup by method, no allocation.
import { METHODS } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify'
import { counterFamily, Durations, histogramFamily } from './durations.js'
import type { Registry } from 'prom-client'

export const UNMATCHED = 'unmatched'
const KNOWN_METHODS = new Set(METHODS)

/** The requests of one method on one route: latency, and counts by status code. */
class RouteSeries {
  readonly durations: Durations
  readonly statuses = new Map<number, number>()

  constructor(method: string, route: string) {
    this.durations = new Durations({ method, route })
  }

  record(request: FastifyRequest, reply: FastifyReply): void {
    this.durations.observe(reply.elapsedTime / 1000)
    const status = reply.statusCode
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1)
  }
}

type ResponseHook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void

/** Marks the hooks made here, so a route copied with its options (HEAD from GET) is not counted twice. */
const OURS = new WeakSet<ResponseHook>()

export class HttpMetrics {
  readonly #series: RouteSeries[] = []

  /** The series of a route and method; methods outside Node's list (never seen in practice) are one. */
  #seriesFor(method: string, route: string): RouteSeries {
    const series = new RouteSeries(KNOWN_METHODS.has(method) ? method : 'OTHER', route)
    this.#series.push(series)
    return series
  }

  /** A route's own hook: its label is fixed here, once. */
  hookFor(route: string): ResponseHook {
    const byMethod = new Map<string, RouteSeries>()
    const hook: ResponseHook = (request, reply, done) => {
      const method = request.method
      let series = byMethod.get(method)
      if (series === undefined) {
        series = this.#seriesFor(method, route)
        byMethod.set(method, series)
      }
      series.record(request, reply)
      done()
    }
    OURS.add(hook)
    return hook
  }

  /** Adds the hooks to `app`: before any route is registered, so each route gets its own. */
  register(app: FastifyInstance): void {
    app.addHook('onRoute', (route: RouteOptions) => {
      const hooks = route.onResponse === undefined ? [] : Array.isArray(route.onResponse)
        ? route.onResponse : [route.onResponse]
      if (hooks.some((h) => OURS.has(h as ResponseHook))) return
      route.onResponse = [...hooks, this.hookFor(route.url)] as RouteOptions['onResponse']
    })
    // The not-found handler is no route: its requests are counted here, under one label.
    const unmatched = this.hookFor(UNMATCHED)
    app.addHook('onResponse', (request, reply, done) => {
      if (request.is404) unmatched(request, reply, done)
      else done()
    })
  }

  /** The two families, registered in `registry`. */
  expose(registry: Registry): void {
    registry.registerMetric(histogramFamily(
      'wikifarm_http_request_duration_seconds',
      'Time from request to response, by method and route pattern',
      () => this.#series.map((s) => s.durations),
    ))
    registry.registerMetric(counterFamily(
      'wikifarm_http_requests_total',
      'Requests answered, by method, route pattern and status code',
      () => this.#series.flatMap((s) => [...s.statuses].map(([status, value]) =>
        ({ labels: { ...s.durations.labels, status: String(status) }, value }))),
    ))
  }
}
