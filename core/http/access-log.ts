// The one access line per request, and request loggers that cost nothing until used. Fastify
// gives every request a pino child logger (bindings serialised, an object made) and most
// requests never log anything but the access line: here the child is made only when a route
// or hook logs through request.log, and the access line is written by the root logger with
// the request id among its fields, which prints the same line a child would.
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

type Bindings = Parameters<FastifyBaseLogger['child']>[0]
type ChildLoggerOptions = NonNullable<Parameters<FastifyBaseLogger['child']>[1]>

const LOGS_REQUESTS = new Set(['info', 'debug', 'trace'])

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

/** request.log: the pino child Fastify would have made, made on first use. */
class RequestLogger implements FastifyBaseLogger {
  readonly #parent: FastifyBaseLogger
  readonly #bindings: Bindings
  #child: FastifyBaseLogger | null = null

  constructor(parent: FastifyBaseLogger, bindings: Bindings) {
    this.#parent = parent
    this.#bindings = bindings
  }

  get #log(): FastifyBaseLogger {
    return this.#child ??= this.#parent.child(this.#bindings)
  }

  get level(): string {
    return (this.#child ?? this.#parent).level
  }

  set level(level: string) {
    this.#log.level = level
  }

  #call(level: Level, args: unknown[]): void {
    // The child's methods take pino's overloads; the arguments are passed through as given.
    ;(this.#log[level] as (...a: unknown[]) => void)(...args)
  }

  // Methods on the prototype, not arrow properties: a request logger is one small object.
  fatal(...args: unknown[]): void { this.#call('fatal', args) }
  error(...args: unknown[]): void { this.#call('error', args) }
  warn(...args: unknown[]): void { this.#call('warn', args) }
  info(...args: unknown[]): void { this.#call('info', args) }
  debug(...args: unknown[]): void { this.#call('debug', args) }
  trace(...args: unknown[]): void { this.#call('trace', args) }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#log.child(bindings, options)
  }
}

/**
 * Fastify's childLoggerFactory: a lazy child, unless the route sets its own level or
 * serializers (then the child is needed to apply them, and is made at once).
 */
export function lazyRequestLogger(
  logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions,
): FastifyBaseLogger {
  if (options.level !== undefined || options.serializers !== undefined) return logger.child(bindings, options)
  return new RequestLogger(logger, bindings)
}

/**
 * One line per request, after the answer, naming the site: written by the root logger with
 * the request id first, so the line reads as it would from the request's child logger.
 * Skipped, fields and all, when the level is above info.
 */
export function registerAccessLog(app: FastifyInstance): void {
  const log = app.log
  const line = (request: FastifyRequest, reply: FastifyReply): void => {
    if (!LOGS_REQUESTS.has(log.level)) return
    log.info({
      reqId: request.id, site: request.site?.name ?? null, method: request.method, url: request.url,
      status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10,
    }, 'request')
  }
  app.addHook('onResponse', (request, reply, done) => {
    line(request, reply)
    done()
  })
}
