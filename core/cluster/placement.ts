// Plugin placement across the nodes of a farm that share one PostgreSQL store. An `every-node`
// plugin runs on each node, as on a single node. A `one-node` plugin (a device on one machine)
// runs on the one node that holds its advisory lock: each node keeps a dedicated session
// connection, and every `intervalMs` tries pg_try_advisory_lock for each one-node plugin it
// does not run. The winner writes itself in wikifarm_plugin_owners and launches the plugin; if
// the launch fails (no device here) it records why, stops, and unlocks, so another node can
// try. A node that loses its session (it died, or the store went away) has lost its locks with
// it: PostgreSQL releases a session's advisory locks when the connection ends, so another node
// wins within one interval, and this node stops its plugin at once. Why advisory locks and no
// heartbeat table: the lock is released by the engine itself when a node dies, and the owner
// row is believed only while pg_locks shows its session still holding the lock.
import pg from 'pg'
import type { Placement, PluginLogger } from '../plugin-api.js'
import type { PluginRecord, PluginRegistry } from '../plugin-host/registry.js'
import { redactStoreUrl } from '../pages/store-url.js'

/** The advisory lock namespace (first key of the two-int form): 'wfpl'. The second key is hashtext(plugin). */
export const PLACEMENT_LOCK_SPACE = 0x7766706c

/** A node of the farm, as the others know it. */
export interface NodeRef {
  readonly id: string
  readonly url: string
}

/** One node's last try at running a one-node plugin: null reason when it runs it. */
export interface PlacementAttempt {
  node: NodeRef
  reason: string | null
  at: string
}

/**
 * This node's part for one plugin: `every-node` runs it; `owner` runs it for the farm; `forwarder`
 * sends its traffic to the owner; `standby` has no owner to send to, or does not forward;
 * `single` is a farm of one node (the file store), where every plugin runs here.
 */
export type PlacementRole = 'every-node' | 'owner' | 'forwarder' | 'standby' | 'single'

export interface PlacementView {
  placement: Placement
  role: PlacementRole
  owner: NodeRef | null
  /** Each node's last attempt at this one-node plugin (why it does not run there). */
  attempts: PlacementAttempt[]
}

/** Where a request for a plugin goes: served here, forwarded to its owner, or refused naming it. */
export type PlacementRoute =
  | { kind: 'local' }
  | { kind: 'forward'; owner: NodeRef }
  | { kind: 'elsewhere'; owner: NodeRef | null }

export interface PlacementOptions {
  /** The store's URL: the election's own session connects with it. */
  storeUrl: string
  registry: PluginRegistry
  log: PluginLogger
  /** Forward a one-node plugin's traffic to its owner (else 503 naming it). */
  forwarding: boolean
  /** How often a node tries to win an unowned plugin, and refreshes who owns what. */
  intervalMs?: number
  /** Told whether this node runs some one-node plugin for the farm, whenever that changes (metrics role). */
  onOwnerChange?: (owner: boolean) => void
}

const OWNERS_SQL = `
  SELECT o.plugin, o.node_id, o.node_url FROM wikifarm_plugin_owners o
  JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.pid = o.backend_pid
    AND l.classid::bigint = $1 AND l.objid::bigint = (hashtext(o.plugin)::bigint & 4294967295)
  WHERE o.plugin = ANY($2)`

export class PluginPlacement {
  readonly #options: PlacementOptions
  readonly #intervalMs: number
  #node: NodeRef | null = null
  #client: pg.Client | null = null
  readonly #owned = new Set<string>()
  #owners = new Map<string, NodeRef>()
  #attempts = new Map<string, PlacementAttempt[]>()
  #timer: NodeJS.Timeout | null = null
  #tick: Promise<void> = Promise.resolve()
  #stopped = false
  #lastProblem: string | null = null
  /** The last reason each plugin could not run here, so a node retrying every second logs it once. */
  readonly #lastRefusal = new Map<string, string>()

  constructor(options: PlacementOptions) {
    this.#options = options
    this.#intervalMs = options.intervalMs ?? 1000
  }

  get node(): NodeRef | null {
    return this.#node
  }

  /** The one-node plugins this node may be elected for (those the registry would launch), and those it runs. */
  #candidates(): PluginRecord[] {
    return this.#options.registry.records().filter((r) => this.#owned.has(r.name) ||
      (r.placement === 'one-node' && (r.state === 'standby' || r.state === 'stopped')))
  }

  /** The registry's launch gate: a one-node plugin launches only while this node holds its lock. */
  gate(record: PluginRecord): string | null {
    if (record.placement !== 'one-node' || this.#owned.has(record.name)) return null
    const owner = this.#owners.get(record.name)
    if (owner) return `runs on node ${owner.id} (${owner.url})`
    const tried = this.#attempts.get(record.name)?.find((a) => a.node.id === this.#node?.id)
    if (tried?.reason) return `not running here: ${tried.reason}; no node of the farm runs it now`
    return this.#node ? 'waiting for its election among the farm\'s nodes' : 'waiting for this node to start'
  }

  /**
   * Starts electing as `node`. The first round is awaited, so that a one-node plugin nobody runs
   * is launched before the farm listens, as every plugin is on a single node.
   */
  async start(node: NodeRef): Promise<void> {
    this.#node = node
    this.#tick = this.#round().catch((err: unknown) => this.#lost(err))
    await this.#tick
    this.#changed()
    this.#schedule(this.#intervalMs)
  }

  /** This node's address became known (it listened on port 0): the rows naming it follow. */
  async moved(node: NodeRef): Promise<void> {
    const old = this.#node
    if (!old || (old.id === node.id && old.url === node.url)) return
    this.#node = node
    await this.#tick.catch(() => {})
    const client = this.#client
    if (!client) return
    try {
      await client.query('UPDATE wikifarm_plugin_owners SET node_id = $1, node_url = $2 WHERE backend_pid = ' +
        'pg_backend_pid()', [node.id, node.url])
      await client.query('UPDATE wikifarm_plugin_attempts SET node_id = $1, node_url = $2 WHERE node_id = $3',
        [node.id, node.url, old.id])
      for (const name of this.#owned) this.#owners.set(name, node)
    } catch (err) {
      await this.#lost(err)
    }
  }

  #schedule(ms: number): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#tick = this.#round().catch((err: unknown) => this.#lost(err))
        .finally(() => this.#schedule(this.#intervalMs))
    }, ms)
    this.#timer.unref()
  }

  async #connect(): Promise<pg.Client> {
    if (this.#client) return this.#client
    const client = new pg.Client({
      connectionString: this.#options.storeUrl,
      application_name: `wikifarm placement ${this.#node?.id ?? ''}`.slice(0, 63),
      connectionTimeoutMillis: 5000,
      keepAlive: true,
    })
    // A broken session has lost every lock it held: stop what this node runs at once.
    client.on('error', (err) => { void this.#lost(err) })
    client.on('end', () => { if (this.#client === client) void this.#lost(new Error('the connection ended')) })
    await client.connect()
    this.#client = client
    if (this.#lastProblem) this.#options.log.info('placement: the store is reachable again')
    this.#lastProblem = null
    return client
  }

  /** The election session is gone: every lock it held is gone, so every plugin it won stops here. */
  async #lost(err: unknown): Promise<void> {
    const client = this.#client
    this.#client = null
    client?.removeAllListeners('end')
    void client?.end().catch(() => {})
    const problem = `lost the store connection (${(err as Error)?.message ?? String(err)})`
    if (problem !== this.#lastProblem) this.#options.log.warn(`placement: ${problem}`)
    this.#lastProblem = problem
    const owned = [...this.#owned]
    this.#owned.clear()
    this.#changed()
    this.#owners.clear()
    for (const name of owned) {
      await this.#options.registry.standDown(name, `${problem}: stopped here, as another node may take it over`)
    }
  }

  /** One round: keep or give up what this node runs, try to win the rest, learn who owns what. */
  async #round(): Promise<void> {
    const node = this.#node
    if (!node || this.#stopped) return
    const candidates = this.#candidates()
    if (candidates.length === 0) return
    const client = await this.#connect()
    for (const record of candidates) {
      if (this.#stopped) return
      if (this.#owned.has(record.name)) {
        // A plugin that lost its device (unavailable) or failed lets another node try.
        if (record.state === 'unavailable' || record.state === 'failed') await this.#release(client, record)
        continue
      }
      const { rows } = await client.query<{ won: boolean }>(
        'SELECT pg_try_advisory_lock($1, hashtext($2)) AS won', [PLACEMENT_LOCK_SPACE, record.name])
      if (!rows[0]?.won) continue
      this.#owned.add(record.name)
      this.#changed()
      await client.query(`INSERT INTO wikifarm_plugin_owners (plugin, node_id, node_url, backend_pid)
        VALUES ($1, $2, $3, pg_backend_pid()) ON CONFLICT (plugin) DO UPDATE SET node_id = $2, node_url = $3,
        backend_pid = pg_backend_pid(), since = now()`, [record.name, node.id, node.url])
      this.#owners.set(record.name, node)
      const status = await this.#options.registry.launchElected(record.name)
      if (status.state === 'running') {
        this.#options.log.info(`placement: this node (${node.id}) runs ${record.name} for the farm`)
        this.#lastRefusal.delete(record.name)
        await this.#attempt(client, record.name, null)
      } else {
        await this.#release(client, record)
      }
    }
    await this.#refresh(client, candidates.map((r) => r.name))
  }

  #changed(): void {
    this.#options.onOwnerChange?.(this.#owned.size > 0)
  }

  /** Gives a plugin up: stopped here, its failure recorded for the status, its lock released. */
  async #release(client: pg.Client, record: PluginRecord): Promise<void> {
    const reason = record.reason ?? `it is ${record.state}`
    const node = this.#node as NodeRef
    if (this.#lastRefusal.get(record.name) !== reason) {
      this.#options.log.warn(`placement: ${record.name} cannot run on this node: ${reason}; letting another node try`)
    }
    this.#lastRefusal.set(record.name, reason)
    await this.#options.registry.standDown(record.name, `not running here: ${reason}`)
    await this.#attempt(client, record.name, reason)
    await client.query('DELETE FROM wikifarm_plugin_owners WHERE plugin = $1 AND node_id = $2', [record.name, node.id])
    await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [PLACEMENT_LOCK_SPACE, record.name])
    this.#owned.delete(record.name)
    this.#changed()
    this.#owners.delete(record.name)
  }

  async #attempt(client: pg.Client, plugin: string, reason: string | null): Promise<void> {
    const node = this.#node as NodeRef
    await client.query(`INSERT INTO wikifarm_plugin_attempts (plugin, node_id, node_url, reason) VALUES ($1, $2, $3, $4)
      ON CONFLICT (plugin, node_id) DO UPDATE SET node_url = $3, reason = $4, at = now()`,
    [plugin, node.id, node.url, reason])
  }

  async #refresh(client: pg.Client, plugins: string[]): Promise<void> {
    const owners = await client.query<{ plugin: string; node_id: string; node_url: string }>(OWNERS_SQL,
      [PLACEMENT_LOCK_SPACE, plugins])
    this.#owners = new Map(owners.rows.map((r) => [r.plugin, { id: r.node_id, url: r.node_url }]))
    const attempts = await client.query<{ plugin: string; node_id: string; node_url: string; reason: string | null;
      at: Date }>('SELECT plugin, node_id, node_url, reason, at FROM wikifarm_plugin_attempts WHERE plugin = ANY($1) ' +
      'ORDER BY plugin, node_id', [plugins])
    const byPlugin = new Map<string, PlacementAttempt[]>()
    for (const r of attempts.rows) {
      const list = byPlugin.get(r.plugin) ?? []
      list.push({ node: { id: r.node_id, url: r.node_url }, reason: r.reason, at: r.at.toISOString() })
      byPlugin.set(r.plugin, list)
    }
    this.#attempts = byPlugin
    // A standby plugin's reason follows who owns it now.
    for (const record of this.#options.registry.records()) {
      if (record.placement === 'one-node' && record.state === 'standby') record.reason = this.gate(record)
    }
  }

  /** Where a request for `plugin` goes from this node. */
  route(record: PluginRecord): PlacementRoute {
    if (record.placement !== 'one-node' || this.#owned.has(record.name)) return { kind: 'local' }
    const owner = this.#owners.get(record.name) ?? null
    if (owner && this.#options.forwarding && owner.id !== this.#node?.id) return { kind: 'forward', owner }
    return { kind: 'elsewhere', owner }
  }

  view(record: PluginRecord): PlacementView {
    const attempts = this.#attempts.get(record.name) ?? []
    if (record.placement !== 'one-node') {
      return { placement: record.placement, role: 'every-node', owner: null, attempts }
    }
    const owner = this.#owned.has(record.name) ? this.#node : this.#owners.get(record.name) ?? null
    const role: PlacementRole = this.#owned.has(record.name) ? 'owner'
      : owner && this.#options.forwarding ? 'forwarder' : 'standby'
    return { placement: 'one-node', role, owner, attempts }
  }

  /** Stops electing (shutdown begins); what this node runs keeps running until close(). */
  async stop(): Promise<void> {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    await this.#tick.catch(() => {})
  }

  /** Ends the election session, after the plugins have closed: its locks go with it. */
  async close(): Promise<void> {
    await this.stop()
    const client = this.#client
    this.#client = null
    client?.removeAllListeners('end')
    await client?.end().catch(() => {})
  }

  /** For logs: the store this node elects on, password hidden. */
  get where(): string {
    return redactStoreUrl(this.#options.storeUrl)
  }
}

/** The view of a plugin on a farm of one node (the file store): everything runs here. */
export function singleNodeView(record: PluginRecord): PlacementView {
  return { placement: record.placement, role: record.placement === 'one-node' ? 'single' : 'every-node', owner: null,
    attempts: [] }
}
