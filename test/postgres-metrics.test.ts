// Metrics of the PostgreSQL store: its calls are timed and its failures counted under
// store="postgres", with the store's own error codes (core/metrics/store-metrics.ts).
import t from 'tap'
import { startPostgres } from './fixtures/postgres.js'
import { claim, listenLocal, putAction, startFarm } from './fixtures/test-farm.js'
import { httpCall } from './fixtures/http-client.js'
import { scrape, value } from './fixtures/prometheus.js'

const server = await startPostgres(t)
const HOST = 'a.example'
const ITEM = 'a1b2c3d4e5f60718'

if (server) {
  t.test('PostgreSQL store: latency by operation, a refused write counted with its code', async (t) => {
    const url = await server.createDatabase('metrics')
    const farm = await startFarm(t, { farm: true, allowed: [HOST], store: url, metricsPort: 0 })
    const port = await listenLocal(farm)
    const metricsPort = Number(new URL(farm.app.metrics.address() as string).port)
    const { cookie } = await claim(t, farm.app, HOST)
    const create = { type: 'create', item: { title: 'Nul', story: [] }, date: 1 }
    t.equal((await putAction(farm.app, HOST, cookie, 'nul', create)).statusCode, 200)
    t.equal((await httpCall(port, { path: '/nul.json', headers: { host: HOST } })).status, 200)
    const add = { type: 'add', id: ITEM, item: { type: 'paragraph', id: ITEM, text: 'a\u0000b' }, date: 2 }
    const refused = await putAction(farm.app, HOST, cookie, 'nul', add)
    t.equal(refused.statusCode, 422)
    t.equal(refused.json().code, 'WIKIFARM_ERR_UNSTORABLE')
    const { samples } = await scrape({ metricsPort })
    t.ok((value(samples, 'wikifarm_store_operation_duration_seconds_count',
      { store: 'postgres', operation: 'getPage' }) ?? 0) >= 1, 'reads are timed')
    t.ok((value(samples, 'wikifarm_store_operation_duration_seconds_count',
      { store: 'postgres', operation: 'updatePage' }) ?? 0) >= 2, 'writes are timed')
    t.equal(value(samples, 'wikifarm_store_errors_total',
      { store: 'postgres', operation: 'updatePage', code: 'WIKIFARM_ERR_UNSTORABLE' }), 1, 'the refusal is counted')
    t.equal(value(samples, 'wikifarm_store_errors_total', { store: 'file' }), undefined, 'under its own store')
  })
}
