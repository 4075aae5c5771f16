// Loading a legacy plugin's server/server.js. Shared mode imports it once, as the reference
// does. Per-site mode needs a fresh module instance each time, with module state of its own:
// an ES module is imported under a URL with a unique query (Node caches by URL); a CommonJS one
// (the 2016 plugins) is compiled anew as a Module that never enters require's cache, since the
// CommonJS loader caches by file name whatever the query says. Its own require()s (ws, fs, …)
// still come from the cache: libraries are shared, the plugin's module variables are not.
import { readFile } from 'node:fs/promises'
import Module from 'node:module'
import { dirname } from 'node:path'
import { pathToFileURL } from 'node:url'

type ServerModule = { startServer?: unknown; default?: { startServer?: unknown } }
export type StartServer = (params: Record<string, unknown>) => unknown

/** The module's startServer: an ES module exports it by name, a CommonJS one on module.exports. */
function startServerOf(loaded: ServerModule): StartServer {
  const found = loaded.startServer ?? loaded.default?.startServer
  if (typeof found !== 'function') throw new Error('server/server.js exports no startServer function')
  return found as StartServer
}

async function isEsModule(server: string, packageDir: string): Promise<boolean> {
  if (server.endsWith('.mjs')) return true
  try {
    const pkg = JSON.parse(await readFile(`${packageDir}/package.json`, 'utf8')) as { type?: unknown }
    return pkg.type === 'module'
  } catch {
    return false
  }
}

interface InternalModule {
  filename: string
  paths: string[]
  exports: unknown
  _compile(source: string, filename: string): void
}
interface ModuleStatics {
  new (id: string, parent?: unknown): InternalModule
  _nodeModulePaths(from: string): string[]
}

let instances = 0

/** The shared instance (`fresh` false) or a new one of its own. */
export async function loadStartServer(server: string, packageDir: string, fresh: boolean): Promise<StartServer> {
  if (!fresh) return startServerOf(await import(pathToFileURL(server).href) as ServerModule)
  instances++
  if (await isEsModule(server, packageDir)) {
    return startServerOf(await import(`${pathToFileURL(server).href}?wikifarm-instance=${instances}`) as ServerModule)
  }
  const statics = Module as unknown as ModuleStatics
  const mod = new statics(server)
  mod.filename = server
  // require() resolves from the plugin's folder, as its own module's would.
  mod.paths = statics._nodeModulePaths(dirname(server))
  mod._compile(await readFile(server, 'utf8'), server)
  return startServerOf(mod.exports as ServerModule)
}
