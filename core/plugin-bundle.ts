// Builds what an isolated plugin runs: one plain-JavaScript ES module holding the plugin, its
// TypeScript imports and the sandbox (core/plugin-sandbox.ts), made with esbuild in the kernel.
// Why not load the TypeScript with tsx on the far side, as the kernel does: on Node 20 tsx
// registers its loader with module.register(), which starts an internal worker thread, and
// its transforms may spawn esbuild; under the permission model (process mode, no
// --allow-worker, no --allow-child-process) both are refused, and tsx's cache would need
// --allow-fs-write. A bundle needs none of that: the child reads one file, its plugin's
// folder (for assets) and node_modules (for native packages left outside the bundle).
import type { Plugin } from 'esbuild'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { extname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

export const PROJECT_ROOT = fileURLToPath(new URL('../', import.meta.url))
/** Under the project's node_modules, so packages left outside the bundle resolve as usual. */
export const BUNDLE_DIR = join(PROJECT_ROOT, 'node_modules', '.cache', 'wikifarm-isolation')
const SANDBOX = fileURLToPath(new URL('./plugin-sandbox.ts', import.meta.url))

/**
 * Packages kept outside the bundle and loaded from node_modules at run time: native addons
 * (a .node binary cannot be inlined) and their loaders, which look for prebuilt binaries on disk.
 */
export const EXTERNAL_PACKAGES = ['serialport', '@serialport/*', 'node-gyp-build']

// import.meta.url inside a bundle would name the bundle; each module keeps its own, so a
// plugin reading a file next to its source finds it in every mode.
const keepModuleUrls: Plugin = {
  name: 'keep-module-urls',
  setup(b) {
    b.onLoad({ filter: /\.(?:[cm]?ts|[cm]?js)$/ }, async (args) => {
      if (args.path.includes(`${'/'}node_modules${'/'}`)) return undefined
      const source = await readFile(args.path, 'utf8')
      if (!source.includes('import.meta')) return undefined
      const url = pathToFileURL(args.path).href
      const contents = source
        .replace(/\bimport\.meta\.url\b/g, JSON.stringify(url))
        .replace(/\bimport\.meta\.dirname\b/g, JSON.stringify(fileURLToPath(new URL('.', url)).replace(/\/$/, '')))
        .replace(/\bimport\.meta\.filename\b/g, JSON.stringify(args.path))
      const ext = extname(args.path).slice(1)
      const loader = ext.endsWith('ts') ? 'ts' : 'js'
      return { contents, loader }
    })
  },
}

let counter = 0

/** The specifier as the in-process loader would resolve it: paths from the cwd, packages as named. */
export function resolvePluginModule(specifier: string): string {
  return isAbsolute(specifier) || specifier.startsWith('.') ? resolve(specifier) : specifier
}

/**
 * Bundles the plugin module (an absolute path or a package name) with the sandbox into a fresh
 * file under BUNDLE_DIR; resolves to its path. The caller removes it once the plugin has loaded.
 */
export async function bundlePlugin(name: string, module: string): Promise<string> {
  // Loaded on first use: a farm with no isolated plugin never pays for the bundler.
  const { build } = await import('esbuild')
  const entry = `import plugin from ${JSON.stringify(module)}\nimport { startSandbox } from ${JSON.stringify(SANDBOX)}\nstartSandbox(plugin)\n`
  const result = await build({
    stdin: { contents: entry, resolveDir: PROJECT_ROOT, sourcefile: `${name}-isolated.ts`, loader: 'ts' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    logLevel: 'silent',
    external: EXTERNAL_PACKAGES,
    plugins: [keepModuleUrls],
    // CommonJS packages inside an ES module bundle still call require() for Node's built-ins.
    banner: { js: "import { createRequire as __wikifarmRequire } from 'node:module'; const require = __wikifarmRequire(import.meta.url);" },
  })
  const output = result.outputFiles[0]
  if (!output) throw new Error('the bundler produced no output')
  await mkdir(BUNDLE_DIR, { recursive: true })
  // Unique per launch: several farms (tests run in parallel) may bundle one plugin at once.
  const file = join(BUNDLE_DIR, `${name}-${process.pid}-${Date.now().toString(36)}-${counter++}.mjs`)
  await writeFile(file, output.contents)
  return file
}

export async function removeBundle(file: string): Promise<void> {
  await rm(file, { force: true })
}
