// The federated-wiki client plugins the farm offers browsers: npm packages wiki-plugin-*
// installed beside wikifarm, and wikifarm's own plugins that ship a client item
// (plugins/<name>/client). Each gives a name for /system/plugins.json, a client/ folder served
// at /plugins/<name>/, an optional factory.json for /system/factories.json and optional
// about pages. Packages that are broken are reported, not fatal: the farm still boots.
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nodeModulesFolders } from '../package-info.js'

/** wikifarm's own plugins (plugins/ beside core/, in the source tree and in dist/ alike). */
const BUILTIN_DIR = fileURLToPath(new URL('../../plugins/', import.meta.url))
const PREFIX = 'wiki-plugin-'
const NAME = /^[a-z0-9][a-z0-9-]{0,59}$/

export interface ClientPlugin {
  name: string
  /** Where it came from: `wiki-plugin-<name>` or `wikifarm:<name>` for a built-in. */
  source: string
  /** The folder served at /plugins/<name>/, or null when the package has none. */
  clientDir: string | null
  factory: Record<string, unknown> | null
  /** The plugin's documentation pages (pages/<slug>), or null. */
  pagesDir: string | null
}

export interface ClientPluginScan {
  plugins: ClientPlugin[]
  /** One line per package that is missing files or has a malformed factory.json. */
  problems: string[]
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false)
}

/** A factory.json is an object naming the item type it makes; anything else is refused. */
export function parseFactory(text: string): Record<string, unknown> | string {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    return `factory.json is not JSON (${(err as Error).message})`
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'factory.json is not an object'
  const factory = value as Record<string, unknown>
  if (typeof factory.name !== 'string' || factory.name.trim() === '') return 'factory.json has no "name" string'
  for (const key of ['title', 'category']) {
    if (factory[key] !== undefined && typeof factory[key] !== 'string') return `factory.json "${key}" is not a string`
  }
  return factory
}

async function describe(name: string, source: string, root: string, problems: string[]): Promise<ClientPlugin> {
  const clientDir = await isDir(join(root, 'client')) ? join(root, 'client') : null
  const pagesDir = await isDir(join(root, 'pages')) ? join(root, 'pages') : null
  let factory: Record<string, unknown> | null = null
  const text = await readFile(join(root, 'factory.json'), 'utf8').catch(() => null)
  if (text !== null) {
    const parsed = parseFactory(text)
    if (typeof parsed === 'string') problems.push(`${source}: ${parsed}; it is left out of the factory menu`)
    else factory = parsed
  }
  // Items of a plugin without client code can still render if wiki-client has it built in
  // (paragraph, reference, factory, future): only a plugin with nothing at all is odd.
  if (!clientDir && !pagesDir && text === null) problems.push(`${source}: no client/ folder, pages/ or factory.json`)
  return { name, source, clientDir, factory, pagesDir }
}

/**
 * The client plugins installed beside wikifarm. `nodeModules` names one folder to scan (tests);
 * by default every node_modules folder from wikifarm's own upward, the nearest copy of a
 * package winning, since npm hoists wikifarm's dependencies into the farm's folder.
 */
export async function findClientPlugins(
  options: { nodeModules?: string; builtinDir?: string } = {},
): Promise<ClientPluginScan> {
  const folders = options.nodeModules ? [options.nodeModules] : nodeModulesFolders()
  const builtinDir = options.builtinDir ?? BUILTIN_DIR
  const problems: string[] = []
  const byName = new Map<string, ClientPlugin>()

  for (const nodeModules of folders) {
    const packages = (await readdir(nodeModules).catch(() => [] as string[]))
      .filter((entry) => entry.startsWith(PREFIX) && NAME.test(entry.slice(PREFIX.length)))
      .sort()
    for (const pkg of packages) {
      const root = join(nodeModules, pkg)
      if (byName.has(pkg.slice(PREFIX.length)) || !(await isDir(root))) continue
      byName.set(pkg.slice(PREFIX.length), await describe(pkg.slice(PREFIX.length), pkg, root, problems))
    }
  }
  // wikifarm's own client items replace a package of the same name: its client speaks to the
  // server side that runs here.
  for (const name of (await readdir(builtinDir).catch(() => [] as string[])).filter((n) => NAME.test(n)).sort()) {
    const root = join(builtinDir, name)
    if (!(await isDir(join(root, 'client')))) continue
    if (byName.has(name)) problems.push(`wiki-plugin-${name}: replaced by wikifarm's built-in ${name} client`)
    byName.set(name, await describe(name, `wikifarm:${name}`, root, problems))
  }
  const plugins = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name))
  return { plugins, problems }
}
