// Every client plugin the reference (wiki 0.40.2) bundles is installed and served as the
// reference serves it: listed in /system/plugins.json, its client script at
// /plugins/<name>/<name>.js (for those that ship one), its factory in /system/factories.json.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { startFarm } from './fixtures/test-farm.js'
import { packageFolder } from '../core/client/files.js'

const REFERENCE_LIST = join(import.meta.dirname, 'fixtures', 'reference-client-plugins.json')
const reference = JSON.parse(readFileSync(REFERENCE_LIST, 'utf8')) as { plugins: string[] }

t.test('every client plugin the reference bundles is served', async (t) => {
  t.equal(reference.plugins.length, 39, 'wiki 0.40.2 depends on 39 wiki-plugin-* packages')
  const farm = await startFarm(t, { farm: true })
  const get = (url: string) => farm.app.inject({ url, headers: { host: 'a.example' } })
  const listed = (await get('/system/plugins.json')).json() as string[]
  const factoryList = (await get('/system/factories.json')).json() as { name: string }[]
  const factories = factoryList.map((f) => f.name.toLowerCase())
  for (const name of reference.plugins) {
    t.ok(listed.includes(name), `plugins.json lists ${name}`)
    const dir = packageFolder(`wiki-plugin-${name}`)
    t.ok(dir, `wiki-plugin-${name} is installed`)
    let hasClient = true
    let factory: { name?: string } | null
    try {
      readFileSync(join(dir ?? '', 'client', `${name}.js`))
    } catch {
      hasClient = false
    }
    try {
      factory = JSON.parse(readFileSync(join(dir ?? '', 'factory.json'), 'utf8')) as { name?: string }
    } catch {
      factory = null
    }
    if (hasClient) {
      const script = await get(`/plugins/${name}/${name}.js`)
      t.equal(script.statusCode, 200, `/plugins/${name}/${name}.js is served`)
      t.match(script.headers['content-type'], /javascript/)
    }
    if (factory?.name) t.ok(factories.includes(factory.name.toLowerCase()), `factories.json offers ${factory.name}`)
  }
})
