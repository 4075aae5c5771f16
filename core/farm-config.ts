// The farm's configuration as the kernel sees it: typed, complete, validated once, up front.
// core/cli.ts builds it from flags, a config file and WIKIFARM_* variables.
import type { Placement, Trust } from './plugin-api.js'
import type { IsolationMode } from './plugin-host/isolation/channel.js'

/** The operator's grant for one plugin (config file `plugins.<name>`). */
export interface PluginGrant {
  enabled?: boolean
  /** The trust granted; a plugin requesting more is refused. */
  trust?: Trust
  /** Sites the plugin serves: host names, or '*' for every site of the farm. */
  sites?: string[] | '*'
  options?: unknown
  /** For third-party plugins: an npm package name or a path to the module. */
  package?: string
  /**
   * Where the plugin runs: 'none' (the kernel's thread), 'worker' (a worker thread with a heap
   * limit) or 'process' (a child process under Node's permission model). Default: see
   * defaultIsolation().
   */
  isolation?: IsolationMode
  /** Heap limit of an isolated plugin, MiB. */
  maxHeapMb?: number
  /**
   * Memory limit of an isolated plugin, MiB, Buffers included: its RSS in `process` mode, its
   * isolate's heap and external memory in `worker` mode. Default maxHeapMb + 256.
   */
  maxRssMb?: number
  /** Let a 'process' plugin load native addons (serialport): needed for hardware, and unconfined. */
  allowAddons?: boolean
  /** More paths (absolute) a 'process' plugin may read, beyond its folder and node_modules. */
  allowRead?: string[]
  /**
   * Where the plugin runs in a farm of many nodes on one PostgreSQL store, over what the plugin
   * declares: 'every-node' or 'one-node' (elected; docs/scale-out.md, Plugin placement).
   */
  placement?: Placement
  /**
   * Legacy wiki-plugin-* server parts only: one instance for the farm ('shared') or one per site
   * ('per-site'). Default: see core/plugin-host/legacy/modes.ts.
   */
  mode?: 'shared' | 'per-site'
}

export interface WikiDomain {
  /** Per-domain overrides, as in the reference farm's config file. */
  admin?: string
  cookieSecret?: string
  [key: string]: unknown
}

export interface FarmConfig {
  port: number
  host: string
  /** Port of the Prometheus metrics listener (core/metrics/), or null for none, the default. */
  metricsPort: number | null
  /** Address of the metrics listener: this machine only unless the operator says otherwise. */
  metricsHost: string
  /** Data folder: the site's folder, or in a farm the parent of every site's folder. */
  data: string
  farm: boolean
  /**
   * The PostgreSQL store's URL (a secret: it holds the password), or null for the file store
   * in `data`, the default.
   */
  store: string | null
  /** Hosts served in a farm; ['*'] = the site folders that already exist. */
  allowed: string[]
  wikiDomains: Record<string, WikiDomain>
  security_type: 'friends'
  cookieSecret: string
  /** True when no secret was configured and a random one was made: sessions end on restart. */
  cookieSecretIsRandom: boolean
  /** The friend secret of the farm administrator, or null for no administrator. */
  admin: string | null
  home: string
  /** Sites the client adds to every visitor's neighborhood (the reference's seedNeighbors). */
  neighbors: string
  /** Let visitors edit unclaimed sites (the reference's security_legacy). */
  security_legacy: boolean
  secure_cookie: boolean
  /** Session cookie lifetime in days. */
  session_duration: number
  /** Seconds a site may stay unused before it is closed. */
  idleSeconds: number
  /** Largest request body in bytes. */
  uploadLimit: number
  /** Largest story item an action may bring, in bytes of JSON (413 beyond it). */
  itemLimit: number
  /** Largest page, journal included, in bytes of JSON: old journal entries are compacted to stay under it, else 413. */
  pageLimit: number
  /** Largest journal action, in bytes of JSON (413 beyond it). */
  actionLimit: number
  /** Bytes of page JSON kept in the hot-page cache. */
  cacheBytes: number
  /** Extra origins allowed to send state-changing requests (besides each site's own). */
  origins: string[]
  /**
   * The address other nodes of the farm reach this node at (forwarded one-node plugin requests),
   * e.g. http://10.0.0.5:3000; null: http://<host>:<port> as listened on (127.0.0.1 for 0.0.0.0).
   */
  nodeUrl: string | null
  /**
   * Forward a one-node plugin's requests and websockets to the node that owns it; false: answer
   * 503 WIKIFARM_ERR_PLUGIN_ELSEWHERE naming the owner (a proxy routes the plugin's path itself).
   */
  pluginForwarding: boolean
  /** Trust X-Forwarded-* headers from a reverse proxy. */
  trustProxy: boolean
  /**
   * Start the wiki-plugin-* server parts (core/plugin-host/legacy/). Off by default: they run in
   * the farm's thread, fenced by node:domain, whose async hooks then cost every request.
   */
  legacyPlugins: boolean
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  /** The operator's grants for server-side plugins, by plugin name. */
  plugins: Record<string, PluginGrant>
  /** How long a plugin's launch may take before it is marked failed. */
  pluginLaunchTimeoutMs: number
  /** How long a plugin's REST handler may take before the request answers 504. */
  pluginHandlerTimeoutMs: number
  /** How long a plugin's close may take at shutdown or relaunch. */
  pluginCloseTimeoutMs: number
  /** How long an isolated plugin may leave a heartbeat unanswered before it is ended. */
  pluginHeartbeatTimeoutMs: number
  /** Crashes in a row after which an isolated plugin stays failed. */
  pluginRestartLimit: number
  /** Largest incoming websocket frame, bytes (closed with 1009 beyond it). */
  maxPayload: number
  /** Bytes queued for one websocket client before it is dropped with 1013. */
  sendBufferBytes: number
  /** Websocket heartbeat period; a peer missing one pong is terminated. */
  pingIntervalSeconds: number
  /** Logins (POST /auth/reclaim/) a minute per client address; 0: no limit. */
  loginRate: number
  /** Claims (POST /login) a minute per client address; 0: no limit. */
  claimRate: number
  /** Edits (PUT /page/:slug/action) a minute per client address; 0: no limit. */
  editRate: number
  /** Websocket upgrades a minute per client address; 0: no limit. */
  upgradeRate: number
  /** Open websockets per client address; 0: no cap. */
  socketsPerIp: number
  /** Open websockets per site; 0: no cap. */
  socketsPerSite: number
  /** Open HTTP connections (websockets included) per client address; 0: no cap. */
  connectionsPerIp: number
  /** Reads (GET and HEAD) a minute per client address; 0: no limit. */
  readRate: number
  /** Seconds a client may take to send a request's headers. */
  headerSeconds: number
  /** Seconds a client may take to send a whole request, headers and body. */
  requestSeconds: number
  /** Seconds an idle keep-alive connection stays open between requests. */
  keepAliveSeconds: number
  /** Seconds a connection may stay silent in either direction (not websockets) before it is closed. */
  socketIdleSeconds: number
}

export const DEFAULTS: Omit<FarmConfig, 'cookieSecret' | 'cookieSecretIsRandom'> = {
  port: 3000,
  host: '0.0.0.0',
  metricsPort: null,
  metricsHost: '127.0.0.1',
  data: './data',
  farm: false,
  store: null,
  allowed: [],
  wikiDomains: {},
  security_type: 'friends',
  admin: null,
  home: 'welcome-visitors',
  neighbors: '',
  security_legacy: false,
  secure_cookie: false,
  session_duration: 7,
  idleSeconds: 600,
  uploadLimit: 5 * 1024 * 1024,
  itemLimit: 4 * 1024 * 1024,
  pageLimit: 16 * 1024 * 1024,
  actionLimit: 5 * 1024 * 1024,
  cacheBytes: 64 * 1024 * 1024,
  origins: [],
  nodeUrl: null,
  pluginForwarding: true,
  trustProxy: false,
  legacyPlugins: false,
  logLevel: 'info',
  plugins: {},
  pluginLaunchTimeoutMs: 10_000,
  pluginHandlerTimeoutMs: 30_000,
  pluginCloseTimeoutMs: 5_000,
  pluginHeartbeatTimeoutMs: 5_000,
  pluginRestartLimit: 5,
  maxPayload: 1024 * 1024,
  sendBufferBytes: 4 * 1024 * 1024,
  pingIntervalSeconds: 30,
  loginRate: 10,
  claimRate: 10,
  editRate: 600,
  upgradeRate: 120,
  socketsPerIp: 100,
  socketsPerSite: 2000,
  connectionsPerIp: 256,
  readRate: 3000,
  headerSeconds: 20,
  requestSeconds: 60,
  keepAliveSeconds: 72,
  socketIdleSeconds: 120,
}
