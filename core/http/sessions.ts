// Sessions and ownership, friends-style: a signed, HttpOnly, SameSite=Lax cookie for every
// visitor; a site is claimed by its first visitor, who gets a secret; logging in proves the
// secret. The cookie keeps a keyed digest of the secret, never the secret itself, so a
// changed owner.json revokes old logins and a leaked cookie does not leak the secret.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'

export const SESSION_COOKIE = 'wikifarm_session'
const ID = /^[A-Za-z0-9_-]{16,64}$/
const DIGEST = /^[A-Za-z0-9_-]{43}$/

export interface Session {
  /** Opaque, random, stable for the life of the cookie: the visitor's identity. */
  readonly id: string
  /** Digest of the friend secret this visitor proved, bound to the site it was proved on. */
  readonly friend: string | null
  readonly site: string | null
  /** True when no valid cookie came with the request: the reply will set one. */
  readonly fresh: boolean
}

interface CookieBody {
  i: string
  f?: string
  s?: string
}

/**
 * A session that came without a cookie. Its id is drawn only when something asks for it, and
 * the cookie is only sent when the id was used or the reply is a page a person opens: a
 * federated read from another site's client costs no randomness, no signature, no cookie.
 */
export class FreshSession implements Session {
  readonly friend = null
  readonly site = null
  readonly fresh = true
  #id: string | null = null

  get id(): string {
    this.#id ??= randomBytes(16).toString('base64url')
    return this.#id
  }

  get used(): boolean {
    return this.#id !== null
  }
}

export class SessionKeeper {
  readonly #key: Buffer
  readonly maxAgeSeconds: number
  readonly secure: boolean

  constructor(secret: string, maxAgeSeconds: number, secure = false) {
    this.#key = createHmac('sha256', 'wikifarm session digest').update(secret).digest()
    this.maxAgeSeconds = maxAgeSeconds
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

  /** Reads the (already signature-checked) cookie value; a bad one starts a fresh session. */
  read(value: string | null): Session {
    if (value) {
      try {
        const body = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as CookieBody
        if (typeof body.i === 'string' && ID.test(body.i)) {
          const proved = typeof body.f === 'string' && DIGEST.test(body.f) && typeof body.s === 'string'
          return {
            id: body.i,
            friend: proved ? (body.f as string) : null,
            site: proved ? (body.s as string) : null,
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
    const body: CookieBody = { i: session.id }
    if (session.friend && session.site) {
      body.f = session.friend
      body.s = session.site
    }
    return Buffer.from(JSON.stringify(body)).toString('base64url')
  }

  loggedIn(session: Session, site: string, secret: string): Session {
    return { id: session.id, friend: this.digest(secret), site, fresh: false }
  }

  loggedOut(session: Session): Session {
    return { id: session.id, friend: null, site: null, fresh: false }
  }

  write(reply: FastifyReply, session: Session): void {
    reply.setCookie(SESSION_COOKIE, this.encode(session), {
      path: '/', httpOnly: true, sameSite: 'lax', signed: true, secure: this.secure, maxAge: this.maxAgeSeconds,
    })
  }

  fromRequest(request: FastifyRequest): Session {
    const raw = request.cookies[SESSION_COOKIE]
    if (!raw) return this.read(null)
    const unsigned = request.unsignCookie(raw)
    return this.read(unsigned.valid ? unsigned.value : null)
  }
}
