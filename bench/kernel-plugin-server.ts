// wikifarm in farm mode with the bench-echo plugin as its only plugin. Prints its port.
import { fileURLToPath } from 'node:url'
import { createKernel } from '../core/kernel.js'
import { DEFAULTS } from '../core/farm-config.js'
import { RATE_LIMITS_OFF } from '../core/http/rate-limits.js'

const kernel = await createKernel(
  {
    ...DEFAULTS,
    ...RATE_LIMITS_OFF,
    data: process.env.BENCH_DATA ?? './bench-data',
    farm: true,
    host: '127.0.0.1',
    port: 0,
    cookieSecret: 'bench-secret-'.repeat(4),
    cookieSecretIsRandom: false,
    logLevel: 'silent',
  },
  { logger: false, builtinPluginsDir: fileURLToPath(new URL('./plugins/', import.meta.url)) },
)
const address = await kernel.listen()
process.stdout.write(`${new URL(address).port}\n`)
process.on('SIGTERM', () => { void kernel.close().then(() => process.exit(0)) })
