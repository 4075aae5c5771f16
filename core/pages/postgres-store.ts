// The PostgreSQL page store: every site of the farm in one database, keyed by site name. Pages
// are kept as the JSON they are served as (text, so keys keep their order and an export gives
// back the same files) and as jsonb (for queries); the sitemap entry of a page is written in the
// page's own transaction, so no crash leaves one without the other. The schema is created and
// migrated when the store opens. No page cache: every read sees the committed page.
import pg from 'pg'
import type { Page } from '../../schemas/page.js'
import type { SitemapEntry } from '../../schemas/sitemap.js'
import {
  parsePage, storedPage, type PageChange, type PageStat, type PageStore, type SiteLocation, type SiteStore,
  type StoredPage, type UpdateOptions,
} from './page-store.js'
import { NOTICE_CHANNEL, encodeNotice, newNodeId, type Notice } from './store-notices.js'
import { KeyedLock } from './keyed-lock.js'
import { sitemapEntry } from './sitemap.js'
import { MIGRATIONS } from './postgres-schema.js'
import { redactStoreUrl } from './store-url.js'
import { StoreError } from './store-error.js'

/** A key no other user of the database is likely to lock: the schema's migrations run under it. */
const MIGRATION_LOCK = 0x77696b69

export interface PostgresStoreOptions {
  /** Connections in the pool (default 10). */
  poolSize?: number
  /** Milliseconds to wait for a connection before a request fails with 503 (default 5000). */
  connectMs?: number
  /** Where failures of idle connections are reported (a restart of the server, a network cut). */
  onIdleError?: (err: Error) => void
  /** This process's id in the notices it sends (default: a new random one). */
  nodeId?: string
}

// SQLSTATE classes that mean "the server is not there" rather than "this statement failed".
const UNAVAILABLE_CLASSES = ['08', '53', '57']
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH'])
// Values PostgreSQL cannot hold: \u0000 in text or jsonb, lone surrogates in jsonb.
const UNSTORABLE_CODES = new Set(['22P05', '22021', '22P02', '22025'])

const CONNECTION_LOST = /timeout exceeded when trying to connect|Connection terminated/i

/** Whether `err` came from the database or the connection to it, rather than from the farm's own code. */
function fromDatabase(err: unknown): boolean {
  if (err instanceof pg.DatabaseError) return true
  const code = (err as { code?: unknown } | null)?.code
  return (typeof code === 'string' && UNAVAILABLE_ERRNOS.has(code)) ||
    (err instanceof Error && CONNECTION_LOST.test(err.message))
}

/** A pg failure as the store's coded error; pg's messages never carry the URL. */
export function storeError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err
  const code = (err as { code?: unknown }).code
  const message = err instanceof Error ? err.message : String(err)
  if (typeof code === 'string' && UNSTORABLE_CODES.has(code)) {
    return new StoreError(`${what}: ${message}`, { cause: err, code: 'WIKIFARM_ERR_UNSTORABLE' })
  }
  const unavailable = typeof code === 'string' &&
    (UNAVAILABLE_ERRNOS.has(code) || (code.length === 5 && UNAVAILABLE_CLASSES.includes(code.slice(0, 2))))
  if (unavailable || CONNECTION_LOST.test(message)) {
    return new StoreError(`${what}: ${message}`, { cause: err, code: 'WIKIFARM_ERR_STORE_UNAVAILABLE' })
  }
  return new StoreError(`${what}: ${message}`, { cause: err })
}

type Queryable = pg.Pool | pg.PoolClient

class PostgresSiteStore implements SiteStore {
  readonly #db: PostgresPageStore
  readonly #site: string
  readonly #lock = new KeyedLock()

  constructor(db: PostgresPageStore, site: string) {
    this.#db = db
    this.#site = site
  }

  #query<R extends pg.QueryResultRow>(what: string, text: string, values: unknown[], on?: Queryable):
    Promise<pg.QueryResult<R>> {
    return this.#db.query<R>(what, text, [this.#site, ...values], on)
  }

  async getPage(slug: string): Promise<StoredPage | null> {
    const { rows } = await this.#query<{ body: string }>(`page ${slug}`,
      'SELECT body FROM wikifarm_pages WHERE site = $1 AND slug = $2', [slug])
    const row = rows[0]
    return row ? storedPage(parsePage(row.body, `page ${slug}`)) : null
  }

  async listSlugs(): Promise<string[]> {
    const { rows } = await this.#query<{ slug: string }>('pages',
      'SELECT slug FROM wikifarm_pages WHERE site = $1 ORDER BY slug COLLATE "C"', [])
    return rows.map((r) => r.slug)
  }

  async statPages(): Promise<PageStat[]> {
    const { rows } = await this.#query<{ slug: string; ms: string }>('pages',
      'SELECT slug, (extract(epoch FROM updated_at) * 1000)::float8 AS ms FROM wikifarm_pages WHERE site = $1 ' +
      'ORDER BY slug COLLATE "C"', [])
    return rows.map((r) => ({ slug: r.slug, mtimeMs: Number(r.ms) }))
  }

  /** Tells every node of the farm, on commit, what this transaction changed (store-notices.ts). */
  async #notify(tx: pg.PoolClient, notice: Notice): Promise<void> {
    const payload = encodeNotice(notice)
    if (payload !== null) await this.#db.query('notice', 'SELECT pg_notify($1, $2)', [NOTICE_CHANNEL, payload], tx)
  }

  updatePage(slug: string, change: PageChange, options: UpdateOptions = {}): Promise<StoredPage | null> {
    // The in-process lock keeps writers of one page from queueing on pool connections; the
    // advisory lock makes them one writer across every process on the database.
    return this.#lock.run(slug, () => this.#db.transaction(`page ${slug}`, async (tx) => {
      await this.#query('lock', 'SELECT pg_advisory_xact_lock(hashtextextended($1 || \'/\' || $2, 0))', [slug], tx)
      const { rows } = await this.#query<{ body: string }>(`page ${slug}`,
        'SELECT body FROM wikifarm_pages WHERE site = $1 AND slug = $2', [slug], tx)
      const body = rows[0]?.body ?? null
      const current = body === null ? null : parsePage(body, `page ${slug}`)
      // The body is the page's JSON as served (JSON.stringify of the page): what the file store passes too.
      const next = await change(current, body)
      if (next === null) return null
      if (options.backup && body !== null) await this.#recycle(tx, slug, body)
      await this.#touchSite(tx)
      const stored = storedPage(next)
      await this.#query(`page ${slug}`,
        'INSERT INTO wikifarm_pages (site, slug, body, page) VALUES ($1, $2, $3::text, $3::text::jsonb) ' +
        'ON CONFLICT (site, slug) DO UPDATE SET body = EXCLUDED.body, page = EXCLUDED.page, updated_at = now()',
        [slug, stored.json], tx)
      await this.#query(`sitemap entry of ${slug}`,
        'INSERT INTO wikifarm_sitemap (site, slug, entry) VALUES ($1, $2, $3) ' +
        'ON CONFLICT (site, slug) DO UPDATE SET entry = EXCLUDED.entry',
        [slug, JSON.stringify(sitemapEntry(slug, stored.page))], tx)
      const notice: Notice = { k: 'page', n: this.#db.nodeId, s: this.#site, p: slug }
      if (current === null) notice.c = true
      if (options.action) notice.a = options.action
      await this.#notify(tx, notice)
      return stored
    }))
  }

  async #recycle(tx: pg.PoolClient, slug: string, body: string): Promise<void> {
    await this.#query(`recycled page ${slug}`,
      'INSERT INTO wikifarm_recycle (site, slug, body, page) VALUES ($1, $2, $3::text, $3::text::jsonb) ' +
      'ON CONFLICT (site, slug) DO UPDATE SET body = EXCLUDED.body, page = EXCLUDED.page, recycled_at = now()',
      [slug, body], tx)
  }

  async #touchSite(tx: pg.PoolClient): Promise<void> {
    await this.#query('site', 'INSERT INTO wikifarm_sites (site) VALUES ($1) ON CONFLICT DO NOTHING', [], tx)
  }

  recyclePage(slug: string): Promise<Page | null> {
    return this.#lock.run(slug, () => this.#db.transaction(`page ${slug}`, async (tx) => {
      await this.#query('lock', 'SELECT pg_advisory_xact_lock(hashtextextended($1 || \'/\' || $2, 0))', [slug], tx)
      const { rows } = await this.#query<{ body: string }>(`page ${slug}`,
        'DELETE FROM wikifarm_pages WHERE site = $1 AND slug = $2 RETURNING body', [slug], tx)
      const body = rows[0]?.body
      if (body === undefined) return null
      await this.#query(`sitemap entry of ${slug}`, 'DELETE FROM wikifarm_sitemap WHERE site = $1 AND slug = $2',
        [slug], tx)
      await this.#recycle(tx, slug, body)
      await this.#notify(tx, { k: 'delete', n: this.#db.nodeId, s: this.#site, p: slug })
      return parsePage(body, `page ${slug}`)
    }))
  }

  /** Puts a page in the recycler as it is (an import of a recycle/ folder). */
  importRecycled(slug: string, page: Page): Promise<void> {
    return this.#lock.run(slug, () => this.#db.transaction(`recycled page ${slug}`, async (tx) => {
      await this.#touchSite(tx)
      await this.#recycle(tx, slug, JSON.stringify(page))
    }))
  }

  async getRecycled(slug: string): Promise<Page | null> {
    const { rows } = await this.#query<{ body: string }>(`recycled page ${slug}`,
      'SELECT body FROM wikifarm_recycle WHERE site = $1 AND slug = $2', [slug])
    const row = rows[0]
    return row ? parsePage(row.body, `recycled page ${slug}`) : null
  }

  async listRecycled(): Promise<string[]> {
    const { rows } = await this.#query<{ slug: string }>('recycler',
      'SELECT slug FROM wikifarm_recycle WHERE site = $1 ORDER BY slug COLLATE "C"', [])
    return rows.map((r) => r.slug)
  }

  async deleteRecycled(slug: string): Promise<boolean> {
    const { rowCount } = await this.#query(`recycled page ${slug}`,
      'DELETE FROM wikifarm_recycle WHERE site = $1 AND slug = $2', [slug])
    return (rowCount ?? 0) > 0
  }

  async readStatus(name: string): Promise<Buffer | null> {
    const { rows } = await this.#query<{ data: Buffer }>(`status/${name}`,
      'SELECT data FROM wikifarm_status WHERE site = $1 AND name = $2', [name])
    return rows[0]?.data ?? null
  }

  writeStatus(name: string, data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data)
    return this.#lock.run(`status/${name}`, () => this.#db.transaction(`status/${name}`, async (tx) => {
      await this.#touchSite(tx)
      await this.#query(`status/${name}`,
        'INSERT INTO wikifarm_status (site, name, data) VALUES ($1, $2, $3) ' +
        'ON CONFLICT (site, name) DO UPDATE SET data = EXCLUDED.data, updated_at = now()', [name, bytes], tx)
      await this.#notify(tx, { k: 'status', n: this.#db.nodeId, s: this.#site, f: name })
    }))
  }

  createStatus(name: string, data: string | Uint8Array): Promise<boolean> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data)
    return this.#lock.run(`status/${name}`, () => this.#db.transaction(`status/${name}`, async (tx) => {
      await this.#touchSite(tx)
      // The primary key (site, name) decides between nodes: one insert wins, the others touch nothing.
      const { rows } = await this.#query(`status/${name}`,
        'INSERT INTO wikifarm_status (site, name, data) VALUES ($1, $2, $3) ' +
        'ON CONFLICT (site, name) DO NOTHING RETURNING name', [name, bytes], tx)
      if (rows.length === 0) return false
      await this.#notify(tx, { k: 'status', n: this.#db.nodeId, s: this.#site, f: name })
      return true
    }))
  }

  removeStatus(name: string): Promise<void> {
    return this.#lock.run(`status/${name}`, () => this.#db.transaction(`status/${name}`, async (tx) => {
      await this.#query(`status/${name}`, 'DELETE FROM wikifarm_status WHERE site = $1 AND name = $2', [name], tx)
      await this.#notify(tx, { k: 'status', n: this.#db.nodeId, s: this.#site, f: name })
    }))
  }

  async statStatus(name: string): Promise<number | null> {
    const { rows } = await this.#query<{ ms: string }>(`status/${name}`,
      'SELECT (extract(epoch FROM updated_at) * 1000)::float8 AS ms FROM wikifarm_status WHERE site = $1 AND name = $2',
      [name])
    const row = rows[0]
    return row ? Number(row.ms) : null
  }

  /** Every status file's name, nested ones (theme/style.css) included: what an export writes. */
  async listStatus(): Promise<string[]> {
    const { rows } = await this.#query<{ name: string }>('status',
      'SELECT name FROM wikifarm_status WHERE site = $1 ORDER BY name COLLATE "C"', [])
    return rows.map((r) => r.name)
  }

  flush(): Promise<void> {
    // A write resolves once committed: waiting for those started is waiting for all.
    return this.#lock.drain()
  }

  removeLeftovers(): Promise<string[]> {
    // A transaction an interrupted write left open is rolled back by the server.
    return Promise.resolve([])
  }

  async sitemapEntries(): Promise<SitemapEntry[]> {
    const { rows } = await this.#query<{ entry: SitemapEntry }>('sitemap',
      'SELECT entry FROM wikifarm_sitemap WHERE site = $1 ORDER BY slug COLLATE "C"', [])
    return rows.map((r) => r.entry)
  }
}

export class PostgresPageStore implements PageStore {
  readonly #pool: pg.Pool
  /** The URL with its password replaced: what messages may show. */
  readonly where: string
  /** The URL itself (with its password): never shown, only connected to. */
  readonly #url: string
  /** This process's id in the notices its writes send; a node skips its own. */
  readonly nodeId: string
  #closed: Promise<void> | null = null

  private constructor(pool: pg.Pool, url: string, nodeId: string) {
    this.#pool = pool
    this.#url = url
    this.where = redactStoreUrl(url)
    this.nodeId = nodeId
  }

  /** Connects, then creates or migrates the schema; fails with a coded error naming no secret. */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresPageStore> {
    const pool = new pg.Pool({
      connectionString: url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: options.connectMs ?? 5000,
      application_name: 'wikifarm',
    })
    // An idle connection that breaks (the server restarts) must not end the process; the pool
    // drops it and the next query opens a new one.
    pool.on('error', (err) => options.onIdleError?.(err))
    const store = new PostgresPageStore(pool, url, options.nodeId ?? newNodeId())
    try {
      await store.migrate()
    } catch (err) {
      await pool.end().catch(() => {})
      throw err
    }
    return store
  }

  async query<R extends pg.QueryResultRow>(what: string, text: string, values: unknown[], on?: Queryable):
    Promise<pg.QueryResult<R>> {
    try {
      return await (on ?? this.#pool).query<R>(text, values)
    } catch (err) {
      throw storeError(err, what)
    }
  }

  /** Runs `work` in one transaction: all of its writes commit together, or none does. */
  async transaction<T>(what: string, work: (tx: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient
    try {
      client = await this.#pool.connect()
    } catch (err) {
      throw storeError(err, what)
    }
    let broken: Error | undefined
    try {
      await client.query('BEGIN')
      const result = await work(client)
      await client.query('COMMIT')
      return result
    } catch (err) {
      await client.query('ROLLBACK').catch((rollback: unknown) => { broken = rollback as Error })
      // The farm's own errors (a refused action in a page change) go through as they are.
      throw fromDatabase(err) ? storeError(err, what) : err
    } finally {
      // A connection whose rollback failed is closed rather than handed to the next request.
      client.release(broken)
    }
  }

  /** Applies the migrations this version knows and the database has not seen, under one lock. */
  async migrate(): Promise<number[]> {
    return this.transaction('schema migration', async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
      await tx.query('CREATE TABLE IF NOT EXISTS wikifarm_migrations (version integer PRIMARY KEY, ' +
        'name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())')
      const { rows } = await tx.query<{ version: number }>('SELECT version FROM wikifarm_migrations')
      const applied = new Set(rows.map((r) => r.version))
      const newest = Math.max(0, ...applied)
      const known = MIGRATIONS.at(-1)?.version ?? 0
      if (newest > known) {
        throw new StoreError(`the database's schema is version ${newest}, newer than this wikifarm knows (${known}): ` +
          'upgrade wikifarm')
      }
      const ran: number[] = []
      for (const migration of MIGRATIONS) {
        if (applied.has(migration.version)) continue
        await tx.query(migration.sql)
        await tx.query('INSERT INTO wikifarm_migrations (version, name) VALUES ($1, $2)',
          [migration.version, migration.name])
        ran.push(migration.version)
      }
      return ran
    })
  }

  /** A connection of its own, outside the pool: a node's LISTEN connection (core/cluster/). */
  newClient(): pg.Client {
    return new pg.Client({ connectionString: this.#url, application_name: 'wikifarm-listen' })
  }

  /** Sends a notice on its own (a node's freshness barrier). */
  async notice(notice: Notice): Promise<void> {
    const payload = encodeNotice(notice)
    if (payload !== null) await this.query('notice', 'SELECT pg_notify($1, $2)', [NOTICE_CHANNEL, payload])
  }

  /** Whether the database answers now (health checks): one trivial statement. */
  async ping(): Promise<boolean> {
    try {
      await this.query('ping', 'SELECT 1', [])
      return true
    } catch {
      return false
    }
  }

  site(where: SiteLocation): PostgresSiteStore {
    return new PostgresSiteStore(this, where.name)
  }

  async hasSite(where: SiteLocation): Promise<boolean> {
    const { rows } = await this.query('sites', 'SELECT 1 FROM wikifarm_sites WHERE site = $1', [where.name])
    return rows.length > 0
  }

  /** Every site that has been written to, by name. */
  async listSites(): Promise<string[]> {
    const { rows } = await this.query<{ site: string }>('sites',
      'SELECT site FROM wikifarm_sites ORDER BY site COLLATE "C"', [])
    return rows.map((r) => r.site)
  }

  /** Ends the pool once; a kernel closed twice (or a test's teardown after it) closes it once. */
  close(): Promise<void> {
    this.#closed ??= this.#pool.end()
    return this.#closed
  }
}

export type { PostgresSiteStore }
