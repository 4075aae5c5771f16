// The browser's files, the same for every site of the farm: the federated-wiki client
// (wiki-client's client/ folder at the paths its HTML and scripts ask for), each client
// plugin's folder at /plugins/<name>/, the security plugin's at /security/, and a site's
// optional theme and assets. Every path is checked before a file is opened: nothing outside the folder
// it names is ever served, whatever the encoding of the request.
import type { FastifyInstance, FastifyReply } from 'fastify'
import fastifyStatic from '@fastify/static'
import { readdir, realpath, stat } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type { ClientPlugin } from './plugins.js'
import { ERR_CLIENT_FILE_NOT_FOUND } from '../errors.js'

const require = createRequire(import.meta.url)
const MAX_PATH = 300
/** File types the client folder holds that a browser needs; its html and docs are not served. */
const CLIENT_FILE = /\.(js|map|css|png|jpg|jpeg|gif|svg|ico|woff2?|ttf|eot)$/
/** First path segments the kernel owns; a client folder of that name is not mounted. */
const RESERVED = new Set([
  'system',
  'plugin',
  'plugins',
  'view',
  'page',
  'recycler',
  'security',
  'theme',
  'assets',
  'auth',
  'remote',
  'proxy',
  'login',
  'logout',
])
const MAX_AGE_MS = 3600_000
/** wikifarm's own browser scripts (core/client/), served under /system/. */
const OWN_CLIENT_DIR = fileURLToPath(new URL('./browser/', import.meta.url))

export function packageFolder(name: string): string | null {
  try {
    return dirname(require.resolve(`${name}/package.json`))
  } catch {
    return null
  }
}

/**
 * The file a relative request path names inside root, or null. Refuses empty segments, `.`,
 * `..`, dotfiles, backslashes and NUL (all after the router has decoded %-escapes once), and
 * anything that resolves outside root.
 */
export function insideFolder(root: string, rel: string): string | null {
  if (rel.length === 0 || rel.length > MAX_PATH || rel.includes('\0') || rel.includes('\\')) return null
  const parts = rel.split('/')
  if (parts.some((part) => part === '' || part.startsWith('.') || part.includes('%'))) return null
  const base = resolve(root)
  const full = resolve(base, ...parts)
  return full.startsWith(base + sep) ? full : null
}

/** insideFolder, then the same check on the real path, so a symlink cannot lead out. */
async function servableFile(root: string, rel: string): Promise<string | null> {
  const full = insideFolder(root, rel)
  if (!full) return null
  try {
    const [realRoot, realFull] = await Promise.all([realpath(root), realpath(full)])
    if (!realFull.startsWith(realRoot + sep)) return null
    return (await stat(realFull)).isFile() ? realFull : null
  } catch {
    return null
  }
}

async function sendInside(reply: FastifyReply, root: string, rel: string, what: string): Promise<FastifyReply> {
  const file = await servableFile(root, rel)
  if (!file) throw new ERR_CLIENT_FILE_NOT_FOUND(`${what}/${rel.slice(0, 200)}`)
  return reply.sendFile(file.slice(file.lastIndexOf(sep) + 1), dirname(file), { maxAge: MAX_AGE_MS })
}

export async function clientFileRoutes(app: FastifyInstance, opts: {
  clientPlugins: ClientPlugin[]
  /** wiki-client's client/ folder; null when the package is not installed (the farm still serves JSON). */
  clientDir: string | null
  securityDir: string | null
}): Promise<void> {
  const { clientDir, securityDir } = opts
  const plugins = new Map(opts.clientPlugins.flatMap((p) => (p.clientDir ? [[p.name, p.clientDir] as const] : [])))
  // sendFile only: every route below checks its own paths first.
  await app.register(fastifyStatic, { root: clientDir ?? process.cwd(), serve: false, dotfiles: 'deny', index: false })

  if (clientDir) {
    for (const entry of await readdir(clientDir, { withFileTypes: true })) {
      if (RESERVED.has(entry.name) || entry.name.startsWith('.')) continue
      if (entry.isFile() && CLIENT_FILE.test(entry.name)) {
        app.get(`/${entry.name}`, async (_request, reply) => sendInside(reply, clientDir, entry.name, ''))
      } else if (entry.isDirectory()) {
        app.get<{ Params: { '*': string } }>(`/${entry.name}/*`, async (request, reply) =>
          sendInside(reply, join(clientDir, entry.name), request.params['*'], `/${entry.name}`))
      }
    }
  }

  app.get<{ Params: { name: string; '*': string } }>('/plugins/:name/*', async (request, reply) => {
    const dir = plugins.get(request.params.name)
    if (!dir)
      throw new ERR_CLIENT_FILE_NOT_FOUND(`no client plugin named ${JSON.stringify(request.params.name.slice(0, 60))}`)
    return sendInside(reply, dir, request.params['*'], `/plugins/${request.params.name}`)
  })
  // The client asks /plugins/<name>/<name>.js first and /plugins/<name>.js second.
  app.get<{ Params: { file: string } }>('/plugins/:file', async (request) => {
    throw new ERR_CLIENT_FILE_NOT_FOUND(`/plugins/${request.params.file.slice(0, 100)}`)
  })

  for (const script of ['claim-secret.js', 'admin-login.js']) {
    app.get(`/system/${script}`, async (_request, reply) => sendInside(reply, OWN_CLIENT_DIR, script, '/system'))
  }

  app.get<{ Params: { '*': string } }>('/security/*', async (request, reply) => {
    if (!securityDir) throw new ERR_CLIENT_FILE_NOT_FOUND('no security client installed')
    return sendInside(reply, securityDir, request.params['*'], '/security')
  })

  // A site's own files (images, uploads the owner put in <site>/assets/), as the reference serves them.
  app.get<{ Params: { '*': string } }>('/assets/*', async (request, reply) =>
    sendInside(reply, join(request.site.root, 'assets'), request.params['*'], '/assets'))

  // A site's own look: status/theme/style.css when its owner put one there, else empty.
  app.get('/theme/style.css', async (request, reply) => {
    const css = await request.site.store.readStatus('theme/style.css')
    return reply.type('text/css; charset=utf-8').header('cache-control', 'no-cache').send(css ?? '')
  })
}
