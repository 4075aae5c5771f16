// The legacy child's entry (spawned by child-host.ts): every legacy plugin's Express apps and
// websocket stand-ins live here, out of the farm's process, so the node:domain fence and its
// async hooks, a plugin's crash and its process.exit stay here too. The farm forwards each
// admitted request over a unix socket in a private folder, with what it decided (site, owner,
// administrator, friend token) in a header signed by the spawn's token; the plugin's page reads
// and writes go back to the farm over IPC, into the site's store.
import { rmSync } from 'node:fs'
import { dirname } from 'node:path'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { timingSafeEqual } from 'node:crypto'
import { ERR_PLUGIN_NOT_ENABLED } from '../../errors.js'
import type { PluginLogger } from '../../plugin-api.js'
import { siteArgv } from './argv.js'
import {
  FACTS_HEADER, type ChildToFarm, type FarmToChild, type ForwardedFacts, type PageOp, type StartMessage,
} from './child-protocol.js'
import { LegacyPlugins } from './host.js'
import { installGuard } from '../isolation/guard.js'
import type { LegacyRequestFacts, LegacySite } from './scope.js'
import { sendCoded, type Coded } from './coded.js'
import { runningInstance, serveHttp, serveUpgrade, type ServeLog } from './serve.js'
import { SiteFolders } from './site-folders.js'
import type { Page } from '../../../schemas/page.js'

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])
/** A page call the farm does not answer in this long fails in the plugin's callback. */
const PAGE_CALL_TIMEOUT_MS = 30_000

function send(message: ChildToFarm): void {
  if (process.connected) process.send?.(message)
}

function plain(data: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(data)) {
    out[key] = value instanceof Error ? { message: value.message, stack: value.stack } : value
  }
  return out
}

const log: PluginLogger = {
  debug: () => {},
  info: (message, data) => send({ t: 'log', level: 'info', message, data: plain(data ?? {}) }),
  warn: (message, data) => send({ t: 'log', level: 'warn', message, data: plain(data ?? {}) }),
  error: (message, data) => send({ t: 'log', level: 'error', message, data: plain(data ?? {}) }),
}
const serveLog: ServeLog = (message, data) => log.error(message, data)

let nextCall = 1
const calls = new Map<number, { resolve(value: unknown): void; reject(err: Error): void; timer: NodeJS.Timeout }>()

function pageCall(site: string, op: PageOp): Promise<unknown> {
  const id = nextCall++
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      calls.delete(id)
      reject(new Error('the farm did not answer the page call in time'))
    }, PAGE_CALL_TIMEOUT_MS)
    calls.set(id, { resolve, reject, timer })
    send({ t: 'page', id, site, ...op })
  })
}

/** A site as the plugin's pagehandler reaches it: its pages are the farm's, asked over IPC. */
function remoteSite(name: string, root: string): LegacySite {
  return {
    name, root,
    getPage: async (slug) => (await pageCall(name, { op: 'get', slug })) as { page: Page } | null,
    putPage: (slug, page) => pageCall(name, { op: 'put', slug, page }),
    store: { listSlugs: async () => (await pageCall(name, { op: 'slugs' })) as string[] },
  }
}

function factsOf(req: IncomingMessage, token: Buffer): ForwardedFacts | null {
  const header = req.headers[FACTS_HEADER]
  if (typeof header !== 'string') return null
  try {
    const facts = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as ForwardedFacts
    const given = Buffer.from(String(facts.token))
    return given.length === token.length && timingSafeEqual(given, token) ? facts : null
  } catch {
    return null
  }
}

function coded(err: unknown): Coded {
  const e = err as Partial<Coded>
  if (typeof e.code === 'string' && typeof e.statusCode === 'number') return e as Coded
  return { message: 'legacy child failed', code: 'WIKIFARM_ERR_PLUGIN_FAILED', statusCode: 500 }
}

/** An answer on a raw socket (an upgrade that gets no 101). */
function refuseUpgrade(socket: Duplex, error: Coded): void {
  const body: Record<string, unknown> = { error: error.message, code: error.code }
  if (error.reason !== undefined) body.reason = error.reason
  const text = JSON.stringify(body)
  socket.end(`HTTP/1.1 ${error.statusCode} ${error.code}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`)
}

async function start(message: StartMessage): Promise<void> {
  // The seals of `process` plugins (isolation/guard.ts) before any plugin loads: no signal to the
  // farm (process.kill(process.ppid)), no inspector on it. Native addons stay loadable, as they
  // are for the farm's own legacy plugins in its thread.
  installGuard('process', true)
  const token = Buffer.from(message.token)
  const legacy = new LegacyPlugins({
    config: message.config,
    packages: message.packages,
    builtins: new Set(message.builtins),
    launchTimeoutMs: message.launchTimeoutMs,
    // This is the process they are isolated in.
    isolation: 'none',
    log,
    address: () => ({ address: message.config.host, family: 'IPv4', port: message.config.port }),
  }, message.grants)
  if (message.maxInstances !== null) legacy.setMaxInstances(message.maxInstances)
  await legacy.launchAll()
  const folders = new SiteFolders()

  async function admit(req: IncomingMessage): Promise<{ facts: LegacyRequestFacts; plugin: string } & {
    served: Awaited<ReturnType<typeof runningInstance>>
  }> {
    const forwarded = factsOf(req, token)
    const plugin = forwarded ? legacy.get(forwarded.plugin) : undefined
    if (!forwarded || !plugin) throw new ERR_PLUGIN_NOT_ENABLED('a request the farm did not forward')
    const argv = siteArgv(legacy.farmArgv, forwarded.root, forwarded.site, forwarded.wikiDomain)
    const facts: LegacyRequestFacts = {
      site: remoteSite(forwarded.site, forwarded.root), authorized: forwarded.authorized === true,
      admin: forwarded.admin === true, friend: forwarded.friend, argv,
    }
    delete req.headers[FACTS_HEADER]
    return { facts, plugin: plugin.name, served: await runningInstance(legacy, plugin, facts) }
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void admit(req).then(async ({ facts, plugin: name, served: instance }) => {
      const plugin = legacy.get(name)
      if (!plugin) return
      if (WRITE_METHODS.has(req.method ?? '')) await folders.prepare(name, facts.site.name, facts.site.root)
      await serveHttp({ legacy, plugin, instance, facts, log: serveLog }, req, res, {
        handlerTimeoutMs: message.handlerTimeoutMs, uploadLimit: message.config.uploadLimit,
      })
    }).catch((err: unknown) => sendCoded(res, coded(err)))
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void admit(req).then(({ facts, plugin: name, served: instance }) => {
      const plugin = legacy.get(name)
      if (!plugin) return
      if (!instance.server.takesUpgrades) {
        refuseUpgrade(socket, {
          message: `websocket ${String(req.url).slice(0, 200)}: ${name} takes no websockets`,
          code: 'WIKIFARM_ERR_ROUTE_NOT_FOUND', statusCode: 404,
        })
        return
      }
      serveUpgrade({ legacy, plugin, instance, facts, log: serveLog }, req, socket, head)
    }).catch((err: unknown) => refuseUpgrade(socket, coded(err)))
  })
  // Longer than the farm's agent keeps an idle connection: the farm never reuses one closing here.
  server.keepAliveTimeout = 60_000
  const socket = message.socket
  await new Promise<void>((resolve) => server.listen(socket, resolve))
  folder = dirname(socket)
  process.on('message', (raw: FarmToChild) => {
    if (raw.t === 'max-instances') legacy.setMaxInstances(raw.limit)
    else if (raw.t === 'status') send({ t: 'status', id: raw.id, statuses: legacy.statuses() })
  })
  send({ t: 'ready', socket, statuses: legacy.statuses() })
}

process.on('message', (raw: FarmToChild) => {
  if (raw.t === 'start') {
    void start(raw).catch((err: unknown) => {
      log.error('legacy child could not start', { reason: String((err as Error)?.message ?? err) })
      process.exit(1)
    })
  } else if (raw.t === 'ping') {
    send({ t: 'pong', seq: raw.seq })
  } else if (raw.t === 'page-result') {
    const call = calls.get(raw.id)
    if (!call) return
    calls.delete(raw.id)
    clearTimeout(call.timer)
    if (raw.error !== undefined) call.reject(new Error(raw.error))
    else call.resolve(raw.value)
  }
})
// Messages sent before this listener exists are lost: the farm sends `start` on this.
send({ t: 'hello' })
/** The socket's folder, once listening: the farm removes it at close, this child if the farm was killed. */
let folder: string | null = null

// The farm went away (killed, it could not clean up): nothing is left to serve.
process.on('disconnect', () => {
  if (folder) rmSync(folder, { recursive: true, force: true })
  process.exit(0)
})
