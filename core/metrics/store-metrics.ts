// Page store latency and errors, by operation. The store itself stays unaware (it knows nothing
// of HTTP or metrics): the kernel's store is measured from outside, by giving every site the
// store of its own wrapped. Only a farm with metrics on pays for the two clock reads per call.
import { Counter, type Registry } from 'prom-client'
import { FilePageStore, type PageStore, type SiteStore } from '../pages/page-store.js'
import { PostgresPageStore } from '../pages/postgres-store.js'
import { StoreError } from '../pages/store-error.js'
import { Durations, histogramFamily } from './durations.js'

/** Every operation of a site's store: tsc fails here when SiteStore gains one, so none goes unmeasured. */
const OPERATIONS: Record<keyof SiteStore, true> = {
  getPage: true, listSlugs: true, statPages: true, updatePage: true, recyclePage: true, getRecycled: true,
  listRecycled: true, deleteRecycled: true, readStatus: true, writeStatus: true, createStatus: true, removeStatus: true,
  statStatus: true, flush: true, removeLeftovers: true, sitemapEntries: true,
}

export type StoreKind = 'file' | 'postgres' | 'other'

export function storeKind(store: PageStore): StoreKind {
  return store instanceof FilePageStore ? 'file' : store instanceof PostgresPageStore ? 'postgres' : 'other'
}

type AnyMethod = (...args: unknown[]) => unknown

export class StoreMetrics {
  readonly #durations = new Map<string, Durations>()
  readonly #errors: Counter<'store' | 'operation' | 'code'>
  readonly #kind: StoreKind

  constructor(registry: Registry, kind: StoreKind) {
    this.#kind = kind
    this.#errors = new Counter({
      name: 'wikifarm_store_errors_total',
      help: 'Page store calls that failed, by store, operation and error code',
      labelNames: ['store', 'operation', 'code'],
      registers: [registry],
    })
    registry.registerMetric(histogramFamily(
      'wikifarm_store_operation_duration_seconds',
      'Time of page store calls, by store and operation (a read served from the hot-page cache included)',
      () => this.#durations.values(),
    ))
  }

  #durationsOf(operation: string): Durations {
    let d = this.#durations.get(operation)
    if (!d) {
      d = new Durations({ store: this.#kind, operation })
      this.#durations.set(operation, d)
    }
    return d
  }

  #failed(operation: string, err: unknown): void {
    const code = err instanceof StoreError ? err.code : 'other'
    this.#errors.inc({ store: this.#kind, operation, code })
  }

  /** A site store that times each call of `inner` and counts its failures. */
  measure(inner: SiteStore): SiteStore {
    const measured: Partial<Record<keyof SiteStore, AnyMethod>> = {}
    for (const operation of Object.keys(OPERATIONS) as (keyof SiteStore)[]) {
      const call = (inner[operation] as AnyMethod).bind(inner)
      const durations = this.#durationsOf(operation)
      measured[operation] = (...args: unknown[]) => {
        const start = performance.now()
        let result: unknown
        try {
          result = call(...args)
        } catch (err) {
          this.#failed(operation, err)
          throw err
        }
        return (result as Promise<unknown>).then((value) => {
          durations.observe((performance.now() - start) / 1000)
          return value
        }, (err: unknown) => {
          durations.observe((performance.now() - start) / 1000)
          this.#failed(operation, err)
          throw err
        })
      }
    }
    return measured as SiteStore
  }

  /**
   * Makes `store` hand out measured site stores from now on, and returns how to undo it. The
   * kernel's sites take their store when they open, which is after this runs at boot.
   */
  instrument(store: PageStore): () => void {
    const site = store.site
    store.site = (where) => this.measure(site.call(store, where))
    // hasSite is asked for a host not yet open on an `allowed: *` farm: measured too.
    const hasSite = store.hasSite
    const durations = this.#durationsOf('hasSite')
    store.hasSite = async (where) => {
      const start = performance.now()
      try {
        return await hasSite.call(store, where)
      } catch (err) {
        this.#failed('hasSite', err)
        throw err
      } finally {
        durations.observe((performance.now() - start) / 1000)
      }
    }
    return () => {
      store.site = site
      store.hasSite = hasSite
    }
  }
}
