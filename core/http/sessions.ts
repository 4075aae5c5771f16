// Sessions and ownership, friends-style: a signed, HttpOnly, SameSite=Lax cookie for every
// visitor; a site is claimed by its first visitor, who gets a secret; logging in proves the
// secret. The cookie keeps a keyed digest of the secret, never the secret itself, so a
// changed owner.json revokes old logins and a leaked cookie does not leak the secret.
//
// The server, not the browser, ends sessions: the cookie carries the time it was issued and
// is refused `session_duration` later (a copy replayed after Max-Age is as dead as the
// browser's), and a login carries its site's session epoch, which a logout moves on, so
// every copy of every login to that site ends with it.
import { createHmac, randomFillSync, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'

export const SESSION_COOKIE = 'wikifarm_session'
const ID = /^[A-Za-z0-9_-]{16,64}$/
const DIGEST = /^[A-Za-z0-9_-]{43}$/
/** How far ahead of our clock an issue time may be (the clock stepped back): beyond, refused. */
const CLOCK_SKEW_MS = 60_000

export interface Session {
  /** Opaque, random, stable for the life of the cookie: the visitor's identity. */
  readonly id: string
  /** Digest of the friend secret this visitor proved, bound to the site it was proved on. */
  readonly friend: string | null
  readonly site: string | null
  /** The site's session epoch the login was made in; a logout moves the epoch on. */
  readonly epoch: number
  /** When the cookie was issued, in ms since 1970: the server refuses it `session_duration` later. */
  readonly issued: number
  /** True when no valid cookie came with the request: the reply will set one. */
  readonly fresh: boolean
  /**
   * The id without using it: a fresh session draws it but still sends no cookie unless `id`
   * is read. For a plugin across an isolation boundary, which gets the id ahead of its read.
   */
  peekId?(): string
}

interface CookieBody {
  i: string
  t: number
  f?: string
  s?: string
  e?: number
}

// Ids are cut from a pool of random bytes refilled 256 ids at a time (as the uuid package does):
// one call into the CSPRNG instead of one per id, which showed in profiles of visitors' first
// requests. The bytes are as random, and each is used once.
const ID_BYTES = 16
const idPool = Buffer.alloc(ID_BYTES * 256)
let idAt = idPool.length

function newId(): string {
  if (idAt === idPool.length) {
    randomFillSync(idPool)
    idAt = 0
  }
  idAt += ID_BYTES
  return idPool.toString('base64url', idAt - ID_BYTES, idAt)
}

/**
 * A session that came without a (valid, unexpired) cookie. Its id is drawn only when
 * something asks for it, and the cookie is only sent when the id was used or the reply is a
 * page a person opens: a federated read from another site's client costs no randomness, no
 * signature, no cookie.
 */
export class FreshSession implements Session {
  readonly friend = null
  readonly site = null
  readonly epoch = 0
  readonly fresh = true
  readonly issued = Date.now()
  #id: string | null = null
  #used = false

  get id(): string {
    this.#used = true
    return this.peekId()
  }

  peekId(): string {
    this.#id ??= newId()
    return this.#id
  }

  get used(): boolean {
    return this.#used
  }
}

export class SessionKeeper {
  readonly #key: Buffer
  /** How long a cookie is honoured after it was issued, in ms (fractional days allowed). */
  readonly durationMs: number
  /** The cookie's Max-Age: whole seconds (rounded), as the Set-Cookie syntax requires, at least one. */
  readonly maxAgeSeconds: number
  readonly secure: boolean

  constructor(secret: string, durationMs: number, secure = false) {
    if (!Number.isFinite(durationMs) || durationMs <= 0) {
      throw new RangeError(`session duration ${durationMs} ms is not above 0`)
    }
    this.#key = createHmac('sha256', 'wikifarm session digest').update(secret).digest()
    this.durationMs = durationMs
    this.maxAgeSeconds = Math.max(1, Math.round(durationMs / 1000))
    this.secure = secure
  }

  digest(secret: string): string {
    return createHmac('sha256', this.#key).update(secret).digest('base64url')
  }

  /** Constant-time: does `session` hold a digest of `secret` proved on `site`? */
  proves(session: Session, site: string, secret: string | undefined): boolean {
    if (!secret || !session.friend || session.site !== site) return false
    const a = Buffer.from(session.friend)
    const b = Buffer.from(this.digest(secret))
    return a.length === b.length && timingSafeEqual(a, b)
  }

  /** Constant-time comparison of two secrets of any length. */
  static sameSecret(given: string, expected: string): boolean {
    const a = createHmac('sha256', 'compare').update(given).digest()
    const b = createHmac('sha256', 'compare').update(expected).digest()
    return timingSafeEqual(a, b)
  }

  /**
   * Reads the (already signature-checked) cookie value. A cookie that cannot be read, that
   * carries no issue time, or that is older than the session duration starts a fresh session.
   */
  read(value: string | null, now = Date.now()): Session {
    if (value) {
      try {
        const body = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as Partial<CookieBody>
        const issued = body.t
        if (typeof body.i === 'string' && ID.test(body.i) && typeof issued === 'number' && Number.isFinite(issued) &&
          now - issued < this.durationMs && issued - now <= CLOCK_SKEW_MS) {
          const proved = typeof body.f === 'string' && DIGEST.test(body.f) && typeof body.s === 'string' &&
            Number.isSafeInteger(body.e)
          return {
            id: body.i,
            friend: proved ? body.f as string : null,
            site: proved ? body.s as string : null,
            epoch: proved ? body.e as number : 0,
            issued,
            fresh: false,
          }
        }
      } catch {
        // A cookie we signed but cannot read is treated like no cookie.
      }
    }
    return new FreshSession()
  }

  encode(session: Session): string {
    const body: CookieBody = { i: session.id, t: session.issued }
    if (session.friend && session.site) {
      body.f = session.friend
      body.s = session.site
      body.e = session.epoch
    }
    return Buffer.from(JSON.stringify(body)).toString('base64url')
  }

  /**
   * A login is a new session: a new visitor id (an id planted in the browser before the login
   * never labels the owner), issued now, in the site's current session epoch.
   */
  loggedIn(site: string, secret: string, epoch: number, now = Date.now()): Session {
    return { id: newId(), friend: this.digest(secret), site, epoch, issued: now, fresh: false }
  }

  loggedOut(session: Session, now = Date.now()): Session {
    return { id: session.id, friend: null, site: null, epoch: 0, issued: now, fresh: false }
  }

  /** The same visitor, no longer logged in (the login expired with its epoch); the cookie is unchanged. */
  withoutLogin(session: Session): Session {
    return { id: session.id, friend: null, site: null, epoch: 0, issued: session.issued, fresh: session.fresh }
  }

  /**
   * The Set-Cookie value for `session`, signed and serialised now, so that a reply that
   * cannot carry it fails before anything it stands for is stored.
   */
  cookie(reply: FastifyReply, session: Session): string {
    return reply.server.serializeCookie(SESSION_COOKIE, reply.signCookie(this.encode(session)), {
      path: '/', httpOnly: true, sameSite: 'lax', secure: this.secure, maxAge: this.maxAgeSeconds,
    })
  }

  /** Puts a cookie made by `cookie()` on the reply, in place of any session cookie already there. */
  send(reply: FastifyReply, cookie: string): void {
    const current = reply.getHeader('set-cookie')
    const others = (current === undefined ? [] : Array.isArray(current) ? current : [String(current)])
      .filter((c) => !c.startsWith(`${SESSION_COOKIE}=`))
    // Fastify appends Set-Cookie values: the old list goes first, so ours is replaced, not doubled.
    reply.removeHeader('set-cookie')
    reply.header('set-cookie', others.length === 0 ? cookie : [...others, cookie])
  }

  write(reply: FastifyReply, session: Session): void {
    this.send(reply, this.cookie(reply, session))
  }

  fromRequest(request: FastifyRequest, now = Date.now()): Session {
    const raw = request.cookies[SESSION_COOKIE]
    if (!raw) return this.read(null)
    const unsigned = request.unsignCookie(raw)
    return this.read(unsigned.valid ? unsigned.value : null, now)
  }
}
