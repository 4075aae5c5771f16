// wikifarm as an operator runs it (farm mode, file store), quiet, on 127.0.0.1. Prints its port.
import { createKernel } from '../core/kernel.js'
import { DEFAULTS } from '../core/farm-config.js'

const kernel = await createKernel({
  ...DEFAULTS, data: process.env.BENCH_DATA ?? './bench-data', farm: true, host: '127.0.0.1', port: 0,
  cookieSecret: 'bench-secret-'.repeat(4), cookieSecretIsRandom: false, logLevel: 'silent',
}, { logger: false })
const address = await kernel.listen()
process.stdout.write(`${new URL(address).port}\n`)
process.on('SIGTERM', () => { void kernel.close().then(() => process.exit(0)) })
