// The federated-wiki client plugins installed beside wikifarm (npm packages wiki-plugin-*):
// their names for /system/plugins.json and their factory.json for /system/factories.json.
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url))
const PREFIX = 'wiki-plugin-'

export interface ClientPlugin {
  name: string
  folder: string
  factory: Record<string, unknown> | null
}

export async function findClientPlugins(nodeModules = join(PACKAGE_ROOT, 'node_modules')): Promise<ClientPlugin[]> {
  const names = (await readdir(nodeModules).catch(() => [] as string[]))
    .filter((name) => name.startsWith(PREFIX) && /^[a-z0-9-]+$/.test(name)).sort()
  return Promise.all(names.map(async (pkg) => {
    const folder = join(nodeModules, pkg)
    let factory: Record<string, unknown> | null = null
    try {
      const value: unknown = JSON.parse(await readFile(join(folder, 'factory.json'), 'utf8'))
      if (value && typeof value === 'object' && !Array.isArray(value)) factory = value as Record<string, unknown>
    } catch {
      // Plugins without a factory.json are not offered in the factory menu.
    }
    return { name: pkg.slice(PREFIX.length), folder, factory }
  }))
}
