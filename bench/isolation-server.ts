// The farm bench/isolation.ts loads: one plugin (steady) with the isolation named in argv[2],
// on 127.0.0.1, a fresh data folder, logging off. Prints `PORT <n>` once listening.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createKernel } from '../core/kernel.js'
import { DEFAULTS } from '../core/farm-config.js'
import { RATE_LIMITS_OFF } from '../core/http/rate-limits.js'
import type { IsolationMode } from '../core/plugin-host/isolation/channel.js'

const mode = (process.argv[2] ?? 'none') as IsolationMode
const data = mkdtempSync(join(tmpdir(), 'wikifarm-bench-isolation-'))
const plugins = fileURLToPath(new URL('../test/fixtures/plugins-isolation/', import.meta.url))
const disabled = Object.fromEntries(
  ['bomb', 'hog', 'spinner', 'snoop', 'flaky', 'rogue'].map((name) => [name, { enabled: false }]),
)
const kernel = await createKernel(
  {
    ...DEFAULTS,
    ...RATE_LIMITS_OFF,
    farm: true,
    data,
    cookieSecret: 'b'.repeat(32),
    cookieSecretIsRandom: false,
    logLevel: 'silent',
    plugins: { ...disabled, steady: { isolation: mode } },
  },
  { logger: false, builtinPluginsDir: plugins },
)
await kernel.app.listen({ host: '127.0.0.1', port: 0 })
const address = kernel.app.server.address()
console.log(`PORT ${typeof address === 'object' && address ? address.port : 0}`)
process.on('SIGTERM', () => {
  void kernel.close().finally(() => {
    rmSync(data, { recursive: true, force: true })
    process.exit(0)
  })
})
