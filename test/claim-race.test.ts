// Two claims of one site at the same moment, from two nodes of a farm (or two processes on one
// data folder): exactly one claimant is told a secret, and that secret is the one stored. The
// owner record is created, never replaced (SiteStore.createStatus), on both stores.
import t from 'tap'
import { readFileSync, readdirSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { startPostgres } from './fixtures/postgres.js'
import { startFarm } from './fixtures/test-farm.js'
import { FilePageStore } from '../core/pages/page-store.js'
import { PostgresPageStore } from '../core/pages/postgres-store.js'

const HOST = 'race.example'
const TRIES = 20
const record = (i: number) => JSON.stringify({ name: `claimant ${i}`, friend: { secret: `s${i}` } })

t.test('file store: of many creators on two store instances, one creates owner.json', async (t) => {
  const root = join(t.testdir(), HOST)
  mkdirSync(root, { recursive: true })
  const stores = [new FilePageStore().site({ name: HOST, root }), new FilePageStore().site({ name: HOST, root })]
  const results = await Promise.all(
    Array.from({ length: TRIES }, (_, i) => stores[i % 2]!.createStatus('owner.json', record(i))))
  const winners = results.flatMap((created, i) => created ? [i] : [])
  t.equal(winners.length, 1, 'exactly one creation succeeded')
  t.equal(readFileSync(join(root, 'status', 'owner.json'), 'utf8'), record(winners[0]!), 'the winner is what is stored')
  t.equal(await stores[0]!.createStatus('owner.json', record(99)), false, 'an existing record is never replaced')
  t.same(readdirSync(join(root, 'status')), ['owner.json'], 'no temp file is left behind')
})

const server = await startPostgres(t)

if (server) {
  t.test('PostgreSQL: of many creators on two nodes, one creates owner.json', async (t) => {
    const url = await server.createDatabase('claim_race_store')
    const nodes = [await PostgresPageStore.open(url), await PostgresPageStore.open(url)]
    t.teardown(() => Promise.all(nodes.map((n) => n.close())))
    const sites = nodes.map((n) => n.site({ name: HOST, root: '' }))
    const results = await Promise.all(
      Array.from({ length: TRIES }, (_, i) => sites[i % 2]!.createStatus('owner.json', record(i))))
    const winners = results.flatMap((created, i) => created ? [i] : [])
    t.equal(winners.length, 1, 'exactly one creation succeeded')
    t.equal((await sites[1]!.readStatus('owner.json'))?.toString(), record(winners[0]!), 'the winner is what is stored')
  })

  t.test('PostgreSQL: two nodes claiming one site at once tell one claimant a secret', async (t) => {
    const url = await server.createDatabase('claim_race_farm')
    const ROUNDS = 5
    const hosts = Array.from({ length: ROUNDS }, (_, round) => `r${round}.${HOST}`)
    const config = { farm: true, allowed: hosts, store: url }
    const a = await startFarm(t, config)
    const b = await startFarm(t, config)
    const farms = [a, b]
    for (const [round, host] of hosts.entries()) {
      const replies = await Promise.all(Array.from({ length: 6 }, (_, i) =>
        farms[i % 2]!.app.inject({ method: 'POST', url: '/login', headers: { host } })))
      const won = replies.filter((r) => r.statusCode === 200)
      t.equal(won.length, 1, `round ${round}: one claim succeeded`)
      for (const lost of replies.filter((r) => r.statusCode !== 200)) {
        t.equal(lost.statusCode, 501, `round ${round}: the others are refused as for any claimed site`)
        t.match(lost.json() as object, { code: 'WIKIFARM_ERR_ALREADY_CLAIMED' })
        t.notOk('secret' in (lost.json() as object), 'and told no secret')
      }
      const secret = (won[0]!.json() as { secret: string }).secret
      for (const farm of farms) {
        const reclaim = await farm.app.inject({
          method: 'POST', url: '/auth/reclaim/', headers: { host, 'content-type': 'text/plain' }, payload: secret,
        })
        t.equal(reclaim.statusCode, 200, `round ${round}: the told secret opens the site on each node`)
      }
    }
  })
}
