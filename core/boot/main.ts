// The `wikifarm` command: flags ─▶ FarmConfig ─▶ kernel ─▶ listening, until SIGINT/SIGTERM.
// bin/wikifarm.js registers tsx and calls main(); exit codes: 0 clean, 1 failure, 2 bad usage.
import closeWithGrace from 'close-with-grace'
import type { AddressInfo } from 'node:net'
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify'
import { LogDestination } from './log-destination.js'
import { parseCli, redactedCommandLine, type CliResult } from './cli.js'
import { createKernel, type Kernel } from '../kernel.js'
import type { FarmConfig } from '../farm-config.js'
import { runTransfer } from './transfer-cli.js'
import { redactStoreUrl } from '../pages/store-url.js'
import { describeFault, keepServingOnRejection, pluginSources } from './process-faults.js'

/** How long a graceful close may take before the process exits anyway. */
export const CLOSE_DELAY_MS = 10_000

export interface MainIO {
  argv: string[]
  env: NodeJS.ProcessEnv
  stdout: NodeJS.WriteStream
  stderr: NodeJS.WriteStream
}

function loggerFor(config: FarmConfig, pretty: boolean): FastifyServerOptions['logger'] {
  if (!pretty) return { level: config.logLevel, stream: new LogDestination(1) }
  return {
    level: config.logLevel,
    transport: {
      target: 'pino-pretty',
      options: { translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname', singleLine: true },
    },
  }
}

/** Resolves once every line logged so far is written (at most a second: a stuck pipe ends no close). */
export function flushLog(log: FastifyBaseLogger): Promise<void> {
  const flush = (log as { flush?: (cb: (err?: Error) => void) => void }).flush
  if (typeof flush !== 'function') return Promise.resolve()
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000)
    timer.unref()
    try {
      flush.call(log, () => { clearTimeout(timer); resolve() })
    } catch {
      clearTimeout(timer)
      resolve()
    }
  })
}

/** The URL to print: wildcard addresses become localhost, IPv6 goes in brackets. */
export function displayUrl(kernel: Kernel): string {
  const address = kernel.app.server.address() as AddressInfo | string | null
  if (address === null || typeof address === 'string') return String(address)
  const wildcard = address.address === '0.0.0.0' || address.address === '::'
  const host = wildcard ? 'localhost' : address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `http://${host}:${address.port}`
}

function oneLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split(/\r?\n/, 1)[0] ?? ''
}

/** Runs the farm. Resolves once it listens; sets process.exitCode when it cannot start. */
export async function main(io: MainIO = {
  argv: process.argv.slice(2), env: process.env, stdout: process.stdout, stderr: process.stderr,
}): Promise<Kernel | null> {
  const [command, ...rest] = io.argv
  if (command === 'export' || command === 'import') {
    await runTransfer(command, rest, io)
    return null
  }
  let parsed: CliResult
  try {
    parsed = parseCli(io.argv, io.env)
  } catch (err) {
    io.stderr.write(`wikifarm: ${oneLine(err)}\n`)
    process.exitCode = 2
    return null
  }
  if ('help' in parsed) {
    io.stdout.write(parsed.help)
    return null
  }
  if ('version' in parsed) {
    io.stdout.write(`${parsed.version}\n`)
    return null
  }

  const { config, warnings } = parsed
  // Read once; from now on the farm's command line shows no secret (the warnings say where it goes).
  const title = redactedCommandLine(process.argv)
  if (title !== null) process.title = title
  let kernel: Kernel
  try {
    kernel = await createKernel(config, { logger: loggerFor(config, io.stdout.isTTY === true) })
  } catch (err) {
    io.stderr.write(`wikifarm: cannot start: ${oneLine(err)}\n`)
    // A plugin configuration the kernel refuses is the operator's to fix, like a bad flag.
    process.exitCode = (err as { code?: string }).code === 'WIKIFARM_ERR_PLUGIN_CONFIG' ? 2 : 1
    return null
  }
  const log = kernel.app.log
  for (const warning of warnings) log.warn(warning)
  // Errors nobody caught (a plugin's timer, a promise not awaited): see core/process-faults.ts.
  const sources = () => pluginSources(kernel.plugins.records())
  keepServingOnRejection(log, sources)

  try {
    await kernel.listen()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const reason = code === 'EADDRINUSE' ? `port ${config.port} on ${config.host} is already in use`
      : code === 'EACCES' ? `no permission to listen on port ${config.port}` : oneLine(err)
    log.fatal({ err }, `cannot listen: ${reason}`)
    io.stderr.write(`wikifarm: cannot listen: ${reason}\n`)
    await kernel.close().catch(() => {})
    process.exitCode = 1
    return null
  }

  // Installed once listening: a signal before that just ends a process that holds nothing.
  closeWithGrace({
    delay: CLOSE_DELAY_MS,
    // Rejections are logged and served through (keepServingOnRejection); exceptions close the farm.
    skip: ['unhandledRejection'],
    logger: { error: (message: unknown) => log.error(message) },
    onTimeout: (delay) => log.error(`still closing after ${delay} ms: exiting anyway`),
  }, async ({ signal, err }) => {
    if (err) {
      const { fields, msg } = describeFault('exception', err, sources())
      log.fatal(fields, msg)
    }
    else log.info(`${signal ?? 'exit'}: closing the farm`)
    await kernel.close()
    log.info('farm closed')
    await flushLog(log)
  })

  const where = config.store ? `PostgreSQL ${redactStoreUrl(config.store)}` : config.data
  log.info(`wikifarm serving ${where}${config.farm ? ' as a farm' : ''} on ${displayUrl(kernel)}`)
  const metrics = kernel.app.metrics.address()
  if (metrics !== null) log.info(`Prometheus metrics on ${metrics}/metrics`)
  return kernel
}
