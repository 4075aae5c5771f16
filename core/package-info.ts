// Where wikifarm is installed and which version it is. The same code runs from core/ (type
// checks, editors) and from dist/core/ (the build), at different depths below the package
// root, so the root is found by walking up to wikifarm's own package.json rather than by a
// fixed '../..'.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

function findRoot(start: string): { root: string; version: string; dependencies: string[] } {
  for (let dir = start; ; dir = dirname(dir)) {
    try {
      type Manifest = { name?: unknown; version?: unknown; dependencies?: unknown }
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest
      if (pkg.name === 'wikifarm' && typeof pkg.version === 'string') {
        const listed = pkg.dependencies
        const dependencies = listed !== null && typeof listed === 'object' ? Object.keys(listed) : []
        return { root: dir, version: pkg.version, dependencies }
      }
    } catch {
      // no package.json here, or not readable: keep walking up
    }
    if (dirname(dir) === dir) throw new Error(`wikifarm's package.json not found above ${start}`)
  }
}

const found = findRoot(dirname(fileURLToPath(import.meta.url)))

/** The folder holding wikifarm's package.json. */
export const PACKAGE_ROOT = found.root
export const VERSION = found.version
/** The packages wikifarm itself depends on: what it bundles, as opposed to what an operator added. */
export const DEPENDENCIES: ReadonlySet<string> = new Set(found.dependencies)

/**
 * The node_modules folders a package installed beside wikifarm may be in, nearest first:
 * wikifarm's own, then each one above it (npm hoists dependencies into the farm's folder).
 */
export function nodeModulesFolders(): string[] {
  const folders: string[] = []
  for (let dir = PACKAGE_ROOT; ; dir = dirname(dir)) {
    if (!dir.endsWith('/node_modules')) folders.push(join(dir, 'node_modules'))
    if (dirname(dir) === dir) return folders
  }
}
