// The farm's events across nodes. Every node on one PostgreSQL store hears every other node's
// committed changes (the notices the store sends in each write's transaction, store-notices.ts)
// on its own LISTEN connection, and turns them into what its own writes do: the open site
// forgets the sitemap, owner or session epoch it kept, and the event bus gets page.changed,
// page.deleted, site.created and site.claimed, so plugins (Linkmap), push subscribers and the
// search index see every change. A node skips its own notices: its writes already did all this.
//
// Freshness: a notice arrives a moment after its commit. sync() is the barrier that closes the
// gap: the node sends itself a notice and waits for its echo; notices are delivered in commit
// order, so by then every change committed before the call has been applied. Concurrent callers
// share one round trip.
import type { EventBus } from '../pages/events.js'
import type { PostgresPageStore } from '../pages/postgres-store.js'
import { SESSIONS_FILE, type Site, type SiteRegistry } from '../pages/sites.js'
import { StoreError } from '../pages/store-error.js'
import { NOTICE_CHANNEL, parseNotice, type Notice } from '../pages/store-notices.js'
import type { Action } from '../../schemas/action.js'
import { ListenConnection, type ListenOptions, type ListenState } from './listen-connection.js'

export interface ClusterLog {
  info(message: string): void
  warn(message: string, err?: unknown): void
}

export interface ClusterOptions extends ListenOptions {
  /** How long a barrier waits for its echo, ms (default 5000). */
  syncTimeoutMs?: number
  /** How long a barrier waits for a lost LISTEN connection to come back before a 503, ms (default 1000). */
  reconnectWaitMs?: number
}

interface Waiter {
  resolve(): void
  reject(err: Error): void
}

export class ClusterBus {
  readonly #store: PostgresPageStore
  readonly #sites: SiteRegistry
  readonly #events: EventBus
  readonly #log: ClusterLog
  readonly #listen: ListenConnection
  readonly #syncTimeoutMs: number
  readonly #reconnectWaitMs: number
  /** Each site's notices are applied one after another, in commit order. */
  readonly #chains = new Map<string, Promise<void>>()
  /** Callers waiting for the next barrier, and the barrier in flight (its token and callers). */
  #next: Waiter[] = []
  #inFlight: { token: number; waiters: Waiter[]; timer: NodeJS.Timeout; echo: boolean } | null = null
  #tokens = 0
  /** Notices from other nodes applied, and resynchronisations after a lost connection. */
  applied = 0
  resyncs = 0

  constructor(store: PostgresPageStore, sites: SiteRegistry, events: EventBus, log: ClusterLog,
    options: ClusterOptions = {}) {
    this.#store = store
    this.#sites = sites
    this.#events = events
    this.#log = log
    this.#syncTimeoutMs = options.syncTimeoutMs ?? 5000
    this.#reconnectWaitMs = options.reconnectWaitMs ?? 1000
    this.#listen = new ListenConnection(() => store.newClient(), NOTICE_CHANNEL, {
      onPayload: (payload) => this.#receive(payload),
      onLost: (err) => this.#lost(err),
      onRestored: () => this.#restored(),
    }, options)
  }

  get nodeId(): string {
    return this.#store.nodeId
  }

  get state(): ListenState {
    return this.#listen.state
  }

  async start(): Promise<void> {
    try {
      await this.#listen.start()
    } catch (err) {
      throw new StoreError(`the LISTEN connection: ${(err as Error).message}`,
        { cause: err, code: 'WIKIFARM_ERR_STORE_UNAVAILABLE' })
    }
  }

  /** Resolves once every change committed anywhere before the call has been applied here. */
  sync(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#next.push({ resolve, reject })
      if (!this.#inFlight && this.#listen.state === 'listening') this.#sendBarrier()
      else if (!this.#inFlight) this.#armWait()
    })
  }

  #sendBarrier(): void {
    const waiters = this.#next
    this.#next = []
    const token = ++this.#tokens
    const timer = setTimeout(() => this.#failBarrier(token, 'no echo from the store in time'), this.#syncTimeoutMs)
    this.#inFlight = { token, waiters, timer, echo: true }
    this.#store.notice({ k: 'sync', n: this.nodeId, t: token }).catch((err: unknown) => {
      this.#failBarrier(token, (err as Error).message, err)
    })
  }

  /** While the connection is lost, callers wait for it to come back, up to the timeout. */
  #armWait(): void {
    if (this.#inFlight) return
    const token = ++this.#tokens
    const waiters = this.#next
    this.#next = []
    const timer = setTimeout(() => this.#failBarrier(token, 'the LISTEN connection is down'), this.#reconnectWaitMs)
    this.#inFlight = { token, waiters, timer, echo: false }
    this.#listen.kick()
  }

  #failBarrier(token: number, why: string, cause?: unknown): void {
    const flight = this.#inFlight
    if (!flight || flight.token !== token) return
    clearTimeout(flight.timer)
    this.#inFlight = null
    const err = new StoreError(`changes from other nodes cannot be heard: ${why}`,
      { cause, code: 'WIKIFARM_ERR_STORE_UNAVAILABLE' })
    for (const w of flight.waiters) w.reject(err)
    this.#continue()
  }

  #finishBarrier(): void {
    const flight = this.#inFlight
    if (!flight) return
    clearTimeout(flight.timer)
    this.#inFlight = null
    for (const w of flight.waiters) w.resolve()
    this.#continue()
  }

  #continue(): void {
    if (this.#next.length === 0) return
    if (this.#listen.state === 'listening') this.#sendBarrier()
    else this.#armWait()
  }

  #receive(payload: string): void {
    const notice = parseNotice(payload)
    if (!notice) return
    if (notice.k === 'sync') {
      if (notice.n !== this.nodeId || notice.t !== this.#inFlight?.token) return
      // Everything committed before the echo was received before it: wait until it is applied.
      const pending = [...this.#chains.values()]
      void Promise.all(pending).then(() => this.#finishBarrier())
      return
    }
    if (notice.n === this.nodeId) return // this node's own write did all of it already
    const site = this.#sites.opened(notice.s)
    // A site this node has not opened keeps nothing in memory, and nothing here listens to it.
    if (!site) return
    const before = this.#chains.get(notice.s) ?? Promise.resolve()
    const next = before.then(() => this.#apply(site, notice)).catch((err: unknown) => {
      // The notice could not be applied (the store went away mid-read): forget the site whole.
      this.#log.warn(`a change from another node could not be applied to ${notice.s}; the site is re-read`, err)
      this.#forgetSite(site)
    })
    this.#chains.set(notice.s, next)
    void next.then(() => { if (this.#chains.get(notice.s) === next) this.#chains.delete(notice.s) })
  }

  async #apply(site: Site, notice: Notice): Promise<void> {
    this.applied++
    switch (notice.k) {
      case 'page': {
        site.forget('sitemap')
        const stored = await site.store.getPage(notice.p)
        // Gone again already: its delete notice follows.
        if (!stored) return
        // As the writing node tells it: the site's first page. (Not site.sitemap(): that waits for
        // the barrier, which waits for this.)
        const first = notice.c === true && (await site.store.listSlugs()).length === 1
        if (first) this.#events.emit('site.created', { site: notice.s })
        const action = { ...(notice.a ?? { type: 'edit' }) } as unknown as Action
        this.#events.emit('page.changed', { site: notice.s, slug: notice.p, action, page: stored.page })
        return
      }
      case 'delete':
        site.forget('sitemap')
        this.#events.emit('page.deleted', { site: notice.s, slug: notice.p })
        return
      case 'status':
        if (notice.f === 'owner.json') {
          site.forget('owner')
          const owner = await site.ownerAsKept()
          if (owner) this.#events.emit('site.claimed', { site: notice.s, owner: owner.name })
        } else if (notice.f === SESSIONS_FILE) {
          site.forget('sessions')
        }
        return
      case 'site':
        this.#forgetSite(site)
        return
      case 'sync':
        return
    }
  }

  /** Drops everything kept for the site; listeners hear it closed and opened, and drop theirs. */
  #forgetSite(site: Site): void {
    site.forget('all')
    this.#events.emit('site.closed', { site: site.name })
    this.#events.emit('site.opened', { site: site.name })
  }

  #lost(err: Error): void {
    this.#log.warn(`the LISTEN connection to the store broke (${err.message}); reconnecting`)
    // A barrier in flight will get no echo: its callers wait for the connection to come back.
    const flight = this.#inFlight
    if (flight?.echo) {
      clearTimeout(flight.timer)
      this.#inFlight = null
      this.#next = [...flight.waiters, ...this.#next]
      this.#armWait()
    }
  }

  #restored(): void {
    this.resyncs++
    this.#log.info('the LISTEN connection to the store is back: every open site is read again')
    // Notices sent while the connection was down are lost: what each open site kept may be stale.
    for (const name of this.#sites.openSites()) {
      const site = this.#sites.opened(name)
      if (site) this.#forgetSite(site)
    }
    // Nothing is kept any more, so whoever waited reads fresh from the store.
    this.#finishBarrier()
  }

  async close(): Promise<void> {
    await this.#listen.close()
    this.#failBarrier(this.#inFlight?.token ?? -1, 'the farm is closing')
  }
}
