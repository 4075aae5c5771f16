#!/usr/bin/env node
// The build's second step: tsc compiles the TypeScript into dist/, and this copies the files
// beside it that the code reads at run time (default pages, browser scripts, a plugin's
// client folder and factory.json, test fixtures' data), so dist/ runs without the sources.
// Usage: node bin/copy-assets.js core plugins schemas [test bench]
import { cpSync, existsSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..')
for (const folder of process.argv.slice(2)) {
  const from = join(root, folder)
  if (!existsSync(from)) continue
  cpSync(from, join(root, 'dist', folder), {
    recursive: true,
    // TypeScript is tsc's; node_modules of a fixture package are installed, not built.
    filter: (path) => !path.endsWith('.ts') && !path.endsWith('.sh') && !path.includes('/node_modules'),
  })
}
