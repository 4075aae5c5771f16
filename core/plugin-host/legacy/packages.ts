// The federated-wiki plugins installed beside wikifarm that have a server part: npm packages
// `wiki-plugin-<name>` with a `server/server.js`, found as the reference finds them (its
// lib/plugins.js looks for `<packageDir>/wiki-plugin-*/server/server.js`). The nearest copy of
// a package wins, as for client plugins.
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { nodeModulesFolders } from '../../package-info.js'

const PREFIX = 'wiki-plugin-'
const NAME = /^[a-z0-9][a-z0-9-]{0,59}$/

export interface LegacyPackage {
  /** The plugin's name: `image` for wiki-plugin-image. */
  name: string
  /** `wiki-plugin-<name>`. */
  packageName: string
  version: string
  /** The package's folder. */
  dir: string
  /** The node_modules folder it is in: the reference's `argv.packageDir`. */
  packageDir: string
  /** Its server/server.js. */
  server: string
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false)
}

async function versionOf(dir: string): Promise<string> {
  try {
    const parsed: unknown = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'))
    const version = (parsed as { version?: unknown }).version
    return typeof version === 'string' ? version : 'unknown'
  } catch {
    return 'unknown'
  }
}

/** Every installed wiki-plugin-* with a server part, sorted by name. `nodeModules` limits the scan (tests). */
export async function findLegacyPackages(nodeModules?: string[]): Promise<LegacyPackage[]> {
  const found = new Map<string, LegacyPackage>()
  for (const folder of nodeModules ?? nodeModulesFolders()) {
    const entries = (await readdir(folder).catch(() => [] as string[])).filter((e) => e.startsWith(PREFIX)).sort()
    for (const packageName of entries) {
      const name = packageName.slice(PREFIX.length)
      if (!NAME.test(name) || found.has(name)) continue
      const dir = join(folder, packageName)
      const server = join(dir, 'server', 'server.js')
      if (!(await isFile(server))) continue
      found.set(name, { name, packageName, version: await versionOf(dir), dir, packageDir: folder, server })
    }
  }
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name))
}
