// Claim, log in, log out: the server side of wiki-security-friends, routes and bodies as its
// client sends them (POST /login claims, POST /auth/reclaim/ with the secret as plain text).
import type { FastifyInstance } from 'fastify'
import { randomInt } from 'node:crypto'
import type { FarmConfig } from '../farm-config.js'
import { SessionKeeper } from '../http/sessions.js'
import { newSecret } from '../pages/sites.js'
import { replaceSession, type Guards } from '../http/request-context.js'
import { ERR_BAD_SECRET, ERR_NOT_CLAIMED, ERR_VALIDATION, isWikifarmError } from '../errors.js'
import type { Owner } from '../../schemas/owner.js'

const CONSONANTS = 'bcdfghjklmnprstvwy'
const VOWELS = 'aeiou'
const MAX_SECRET = 200

/** A pronounceable six-letter owner name, like the reference's. */
export function nickname(): string {
  let nick = ''
  for (let i = 0; i < 3; i++) nick += `${CONSONANTS[randomInt(CONSONANTS.length)]}${VOWELS[randomInt(VOWELS.length)]}`
  return nick
}

function secretFrom(body: unknown): string {
  let secret: unknown = body
  if (body && typeof body === 'object') {
    const fields = body as { secret?: unknown; reclaimCode?: unknown; reclaim?: unknown }
    secret = fields.secret ?? fields.reclaimCode ?? fields.reclaim
  }
  if (typeof secret !== 'string' || secret.trim() === '' || secret.length > MAX_SECRET) {
    throw new ERR_VALIDATION('the body must be the secret, as text or as {"secret": "..."}')
  }
  return secret.trim()
}

export async function ownerRoutes(
  app: FastifyInstance,
  opts: { config: FarmConfig; sessions: SessionKeeper; guards: Guards },
): Promise<void> {
  const { config, sessions, guards } = opts

  app.post('/login', async (request, reply) => {
    const site = request.site
    // A claimed site: the reference answers 501 and its client then asks for the secret.
    const claimed = (owner: Owner) =>
      reply.code(501).send({
        error: 'This wiki is claimed: log in with its secret at /auth/reclaim/',
        code: 'WIKIFARM_ERR_ALREADY_CLAIMED',
        ownerName: owner.name,
      })
    const owner = await site.owner()
    if (owner) return claimed(owner)
    const name = nickname()
    const secret = newSecret()
    // The reply is made before owner.json is written: a claim whose reply could not be sent
    // would leave the site claimed with a secret nobody was told.
    const session = sessions.loggedIn(site.name, secret, await site.sessionEpoch())
    const cookie = sessions.cookie(reply, session)
    try {
      await site.claim(name, secret)
    } catch (err) {
      // Someone else's claim got there first while this one waited.
      const winner = isWikifarmError(err) && err.code === 'WIKIFARM_ERR_ALREADY_CLAIMED' ? await site.owner() : null
      if (winner) return claimed(winner)
      throw err
    }
    request.session = session
    sessions.send(reply, cookie)
    // The secret is shown this once; the owner keeps it to log in again.
    return { ownerName: name, secret }
  })

  app.post<{ Body: unknown }>('/auth/reclaim/', async (request, reply) => {
    const secret = secretFrom(request.body)
    const owner = await request.site.owner()
    const isOwner = owner !== null && SessionKeeper.sameSecret(secret, owner.friend.secret)
    const isAdmin = config.admin !== null && SessionKeeper.sameSecret(secret, config.admin)
    if (!owner && !isAdmin) throw new ERR_NOT_CLAIMED()
    if (!isOwner && !isAdmin) throw new ERR_BAD_SECRET()
    const session = sessions.loggedIn(request.site.name, secret, await request.site.sessionEpoch())
    replaceSession(request, reply, sessions, session)
    return { ownerName: owner?.name ?? '', owner: isOwner, admin: isAdmin }
  })

  // GET, as the reference client calls it; a state change all the same, so a foreign origin
  // is refused (see request-context.ts). Logging out ends every login to this site, on every
  // browser and every copy of the cookie; a visitor who is not logged in ends only their own.
  app.get('/logout', { config: { changesState: true } }, async (request, reply) => {
    if (await guards.isOwner(request) || guards.isAdmin(request)) await request.site.endSessions()
    replaceSession(request, reply, sessions, sessions.loggedOut(request.session))
    return reply.type('text/plain; charset=utf-8').send('OK')
  })

  app.get('/system/session.json', async (request) => {
    const owner = await request.site.owner()
    return {
      site: request.site.name,
      claimed: owner !== null,
      ownerName: owner?.name ?? null,
      isOwner: await guards.isOwner(request),
      isAdmin: guards.isAdmin(request),
    }
  })
}
