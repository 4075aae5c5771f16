// wiki-plugin-assets 0.7.3 (the real package, unchanged; the reference's 0.7.4 is the same code)
// under the legacy adapter, over real HTTP with several sites: an owner uploads, lists, indexes
// and deletes; a visitor and another site's owner are refused; sites never see each other's
// files; hostile names stay in assets/.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { INSTALLED_LEGACY, claim, http, listDir, listenLocal, snapshot, startFarm } from './fixtures/test-farm.js'
import { multipart } from './fixtures/multipart.js'
import { eventually } from './fixtures/ws-client.js'

const A = 'a.example'
const B = 'b.example'

/** The plugin answers "success" before its rename has landed, as in the reference: wait for the file. */
const landed = (path: string) => eventually(() => existsSync(path), 5000, `${path} to land`)

t.test('assets: upload, list, index and delete by the owner; refusals; no crossing between sites', async (t) => {
  const farm = await startFarm(t, { farm: true }, undefined, { legacyNodeModules: INSTALLED_LEGACY })
  const port = await listenLocal(farm)
  const a = await claim(t, farm.app, A)
  const b = await claim(t, farm.app, B)
  const upload = (host: string, cookie: string | null, filename: string, folder = 'docs') => {
    const { body, headers } = multipart([
      { name: 'assets', value: folder }, { name: 'uploads', value: `contents of ${filename}`, filename },
    ])
    const withCookie = { ...headers, ...(cookie ? { cookie } : {}) }
    return http(port, 'POST', '/plugin/assets/upload', host, { headers: withCookie, body })
  }
  const list = async (host: string, folder = 'docs') =>
    JSON.parse((await http(port, 'GET', `/plugin/assets/list?assets=${folder}`, host)).body) as { files?: string[] }

  t.equal((await upload(A, a.cookie, 'notes.txt')).body, 'success')
  await landed(join(farm.data, A, 'assets', 'docs', 'notes.txt'))
  t.equal(readFileSync(join(farm.data, A, 'assets', 'docs', 'notes.txt'), 'utf8'), 'contents of notes.txt')
  t.same((await list(A)).files, ['notes.txt'])
  const index = JSON.parse((await http(port, 'GET', '/plugin/assets/index', A)).body)
  t.same(index, [{ file: '/docs/notes.txt', size: 21 }], 'the index walks the site\'s assets')
  t.equal((await http(port, 'GET', '/assets/docs/notes.txt', A)).body, 'contents of notes.txt', 'served by the kernel')

  const visitor = await upload(A, null, 'visitor.txt')
  t.equal(visitor.status, 403)
  t.equal(visitor.body, 'must be owner')
  t.equal((await upload(A, b.cookie, 'intruder.txt')).status, 403, "another site's owner is refused")
  const remove = '/plugin/assets/delete?assets=docs&file=notes.txt'
  t.equal((await http(port, 'POST', remove, A)).status, 403, 'a visitor may not delete')
  t.equal((await http(port, 'POST', remove, A, { headers: { cookie: b.cookie } })).status, 403)
  t.same((await list(A)).files, ['notes.txt'], 'still there')

  t.match(await list(B), { error: { code: 'ENOENT' } }, 'b.example has no docs folder: it does not see a.example\'s')
  t.equal((await upload(B, b.cookie, 'notes.txt')).body, 'success')
  await landed(join(farm.data, B, 'assets', 'docs', 'notes.txt'))
  t.equal(readFileSync(join(farm.data, B, 'assets', 'docs', 'notes.txt'), 'utf8'), 'contents of notes.txt')
  t.same(JSON.parse((await http(port, 'GET', '/plugin/assets/index', B)).body), [{ file: '/docs/notes.txt', size: 21 }])

  const deleted = await http(port, 'POST', remove, A, { headers: { cookie: a.cookie } })
  t.equal(deleted.body, 'ok')
  t.same((await list(A)).files, [])
  t.ok(existsSync(join(farm.data, B, 'assets', 'docs', 'notes.txt')), "b.example's file of the same name is untouched")
})

t.test('hostile names: a file ../../pages/x, a folder ../../b.example, land only in the site\'s assets/', async (t) => {
  const farm = await startFarm(t, { farm: true }, undefined, { legacyNodeModules: INSTALLED_LEGACY })
  const port = await listenLocal(farm)
  const a = await claim(t, farm.app, A)
  await claim(t, farm.app, B)
  const before = await snapshot(join(farm.data, B))
  const send = (filename: string, folder: string) => {
    const { body, headers } = multipart([
      { name: 'assets', value: folder }, { name: 'uploads', value: 'hostile', filename },
    ])
    return http(port, 'POST', '/plugin/assets/upload', A, { headers: { ...headers, cookie: a.cookie }, body })
  }
  for (const [filename, folder] of [
    ['../../pages/x', ''], ['../../b.example/pages/welcome-visitors', 'docs'], ['..\\..\\pages\\y', ''],
    ['z', '../../b.example/pages'], ['w', '/../../../etc'],
  ] as const) {
    const response = await send(filename, folder)
    t.equal(response.status, 200, `${filename} in ${JSON.stringify(folder)}: accepted, as the reference does`)
  }
  // Every upload landed (under its base name) before anything is checked for being absent.
  for (const file of ['docs/welcome-visitors', 'w', 'x', 'y', 'z']) await landed(join(farm.data, A, 'assets', file))
  t.notOk(existsSync(join(farm.data, A, 'pages', 'x')), 'not in the site\'s pages')
  t.notOk(existsSync(join(farm.data, 'pages')), 'not in the data folder')
  t.same(await snapshot(join(farm.data, B)), before, 'b.example unchanged')
  const files = (await snapshot(join(farm.data, A, 'assets'))) as Record<string, string>
  t.same(Object.keys(files).filter((f) => !f.endsWith('/')).sort(), ['docs/welcome-visitors', 'w', 'x', 'y', 'z'],
    'every file under a.example/assets/, under its base name')
  t.same(await listDir(farm.data), ['.legacy-farm', A, B, 'commons'].sort(),
    'nothing beside the sites but the farm-level folders')
})
