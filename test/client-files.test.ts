// The browser's files and entry points without a browser: the client plugin scan (broken
// packages reported, built-ins replacing packages), client files served only from inside
// their folders whatever the encoding, the HTML shell and its security globals, lineups,
// the theme, the sitemap's Last-Modified and the search index.
import t from 'tap'
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import MiniSearch from 'minisearch'
import { findClientPlugins, parseFactory } from '../core/client/plugins.js'
import { insideFolder } from '../core/client/files.js'
import { parseLineup } from '../core/client/lineup.js'
import { pageText } from '../core/pages/site-index.js'
import { claim, itemId, listenLocal, putAction, rawHttp, startFarm, testData } from './fixtures/test-farm.js'

const PLUGINS = fileURLToPath(new URL('../plugins/', import.meta.url))
const HOST = 'a.example'

t.test('the client plugin scan: names, factories, broken packages reported, built-ins win', async (t) => {
  const dir = testData(t, {
    node_modules: {
      'wiki-plugin-paragraph': {
        'factory.json': JSON.stringify({ name: 'Paragraph', title: 'Text paragraph', category: 'format' }),
        pages: { 'about-paragraph-plugin': '{}' },
      },
      'wiki-plugin-code': { client: { 'code.js': '' }, 'package.json': '{}' },
      'wiki-plugin-broken': { client: { 'broken.js': '' }, 'factory.json': 'not json' },
      'wiki-plugin-nameless': { client: { 'nameless.js': '' }, 'factory.json': '{"title": "no name"}' },
      'wiki-plugin-empty': { 'package.json': '{}' },
      'wiki-plugin-linkmap': { client: { 'linkmap.js': 'old' } },
      'wiki-plugin-Bad_Name': { client: {} },
      'wiki-security-friends': { 'factory.json': '{}' },
      'not-a-plugin': {},
    },
    builtin: {
      linkmap: { client: { 'linkmap.js': 'new' }, 'factory.json': '{"name": "Linkmap"}' },
      'server-only': { 'index.ts': '' },
    },
  })
  const { plugins, problems } = await findClientPlugins({
    nodeModules: join(dir, 'node_modules'),
    builtinDir: join(dir, 'builtin'),
  })
  t.same(plugins.map((p) => p.name), ['broken', 'code', 'empty', 'linkmap', 'nameless', 'paragraph'])
  t.same(plugins.map((p) => p.factory?.name ?? null), [null, null, null, 'Linkmap', null, 'Paragraph'])
  t.equal(
    plugins.find((p) => p.name === 'linkmap')?.source,
    'wikifarm:linkmap',
    "wikifarm's own linkmap client replaces the package's",
  )
  t.equal(plugins.find((p) => p.name === 'paragraph')?.clientDir, null, 'built into wiki-client: no folder to serve')
  t.ok(plugins.find((p) => p.name === 'paragraph')?.pagesDir)
  t.match(problems.join('\n'), /wiki-plugin-broken: factory.json is not JSON/)
  t.match(problems.join('\n'), /wiki-plugin-nameless: factory.json has no "name" string/)
  t.match(problems.join('\n'), /wiki-plugin-empty: no client\/ folder, pages\/ or factory.json/)
  t.match(problems.join('\n'), /wiki-plugin-linkmap: replaced by wikifarm's built-in linkmap client/)
  t.same(
    await findClientPlugins({ nodeModules: join(dir, 'missing'), builtinDir: join(dir, 'missing') }),
    { plugins: [], problems: [] },
    'no folders: no plugins',
  )

  t.same(parseFactory('{"name":"X","title":"T"}'), { name: 'X', title: 'T' })
  for (const bad of [
    '[]',
    'null',
    '"x"',
    '{"name": 3}',
    '{"name": " "}',
    '{"name": "X", "title": 4}',
    '{"__proto__": {"name": "x"}}',
  ]) {
    t.type(parseFactory(bad), 'string', `refused: ${bad}`)
  }
})

t.test('insideFolder: only plain relative paths inside the folder', async (t) => {
  const root = '/srv/client'
  t.equal(insideFolder(root, 'client.js'), '/srv/client/client.js')
  t.equal(insideFolder(root, 'js/jquery-ui/x.css'), '/srv/client/js/jquery-ui/x.css')
  for (const bad of [
    '',
    '..',
    '../x',
    'a/../../x',
    'a/./b',
    './a',
    '.env',
    'a/.git/config',
    'a//b',
    '/etc/passwd',
    'a\\..\\b',
    'a\0b',
    '%2e%2e/x',
    'x'.repeat(301),
  ]) {
    t.equal(insideFolder(root, bad), null, `refused: ${JSON.stringify(bad.slice(0, 40))}`)
  }
})

t.test('client files: served from their folders, 404 for everything outside, however encoded', async (t) => {
  const farm = await startFarm(t, { farm: true }, undefined, { builtinPluginsDir: PLUGINS })
  const get = (url: string) => farm.app.inject({ url, headers: { host: HOST } })
  const client = await get('/client.js')
  t.equal(client.statusCode, 200)
  t.match(client.headers['content-type'], /javascript/)
  t.match(client.headers['cache-control'], /max-age=3600/)
  t.equal((await get('/style/style.css')).statusCode, 200)
  t.equal((await get('/plugins/txtzyme/txtzyme.js')).statusCode, 200, 'a wiki-plugin-* package client file')
  const linkmap = await get('/plugins/linkmap/linkmap.js')
  t.equal(linkmap.statusCode, 200, "wikifarm's own linkmap client item")
  t.match(linkmap.body, 'window.plugins.linkmap')
  t.equal((await get('/security/security.js')).statusCode, 200, 'the friends security client')
  t.match(
    (await get('/system/claim-secret.js')).body,
    'wikifarm-secret',
    "wikifarm's own script that shows a new owner the secret",
  )
  const list = (await get('/system/plugins.json')).json() as string[]
  for (const name of [
    'paragraph',
    'markdown',
    'html',
    'image',
    'reference',
    'factory',
    'future',
    'pagefold',
    'txtzyme',
    'linkmap',
  ]) {
    t.ok(list.includes(name), `plugins.json lists ${name}`)
  }
  const factories = (await get('/system/factories.json')).json() as Array<{ name: string }>
  t.ok(factories.some((f) => f.name === 'Linkmap'), 'the Linkmap factory is offered')

  for (const url of [
    '/plugins/txtzyme/%2e%2e/%2e%2e/package.json',
    '/plugins/txtzyme/..%2f..%2fpackage.json',
    '/plugins/txtzyme/%2e%2e%2fpackage.json',
    '/plugins/txtzyme/..%5c..%5cpackage.json',
    '/plugins/txtzyme/%252e%252e/package.json',
    '/plugins/txtzyme/.npmignore',
    '/plugins/txtzyme/nope.js',
    '/plugins/txtzyme/',
    '/plugins/nope/nope.js',
    '/plugins/txtzyme.js',
    '/plugins/..%2f..%2fpackage.json/x',
    '/security/..%2fpackage.json',
    '/security/%2e%2e/index.js',
    '/js/%2e%2e/%2e%2e/package.json',
    '/style/..%2f..%2fpackage.json',
    '/plugins/txtzyme/%00.js',
    '/plugins/paragraph/paragraph.js',
  ]) {
    const response = await get(url)
    t.equal(response.statusCode, 404, `404: ${url}`)
    // light-my-request resolves %2e%2e segments itself, so some of these arrive as other paths.
    t.match(response.json().code, /^WIKIFARM_ERR_(CLIENT_FILE|PAGE|ROUTE)_NOT_FOUND$/, `coded: ${url}`)
  }
  // A raw request keeps its dots (an HTTP client would have normalised them away).
  const port = await listenLocal(farm)
  for (const path of [
    '/plugins/txtzyme/../../../package.json',
    '/plugins/txtzyme/./../txtzyme.js',
    '/js/../../package.json',
    '/plugins/txtzyme/%2e%2e/%2e%2e/package.json',
    '/security/%2e%2e/index.js',
    '/js/%2E%2E/%2e%2e/package.json',
  ]) {
    const raw = await rawHttp(port, `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`)
    t.equal(raw.status, 404, `raw ${path}`)
    t.match(raw.body, 'WIKIFARM_ERR_CLIENT_FILE_NOT_FOUND', `raw ${path}: refused as a client file`)
    t.notMatch(raw.body, '"name": "wiki', 'no package.json leaked')
  }
  t.equal((await get('/runtests.html')).statusCode, 404, "wiki-client's own test page is not served")

  // Plugin documentation pages are found like default pages, and are not in the sitemap.
  const about = await get('/about-txtzyme-plugin.json')
  t.equal(about.statusCode, 200, 'a plugin page')
  t.match(about.json().title, /Txtzyme/i)
  t.notOk(
    ((await get('/system/sitemap.json')).json() as Array<{ slug: string }>).some(
      (e) => e.slug === 'about-txtzyme-plugin',
    ),
    'not listed',
  )
})

t.test('a symlink inside a plugin folder cannot lead outside it', async (t) => {
  const dir = testData(t, {
    node_modules: { 'wiki-plugin-sly': { client: { 'sly.js': 'ok' } } },
    secret: { 'owner.json': 'secret' },
  })
  symlinkSync(join(dir, 'secret'), join(dir, 'node_modules', 'wiki-plugin-sly', 'client', 'escape'))
  const { plugins } = await findClientPlugins({ nodeModules: join(dir, 'node_modules'), builtinDir: join(dir, 'none') })
  const { default: Fastify } = await import('fastify')
  const { clientFileRoutes } = await import('../core/client/files.js')
  const app = Fastify()
  t.teardown(() => app.close())
  app.setErrorHandler((error: { statusCode?: number; code?: string }, _request, reply) =>
    reply.code(error.statusCode ?? 500).send({ code: error.code }),
  )
  await app.register(clientFileRoutes, { clientPlugins: plugins, clientDir: null, securityDir: null })
  t.equal((await app.inject('/plugins/sly/sly.js')).body, 'ok')
  const leaked = await app.inject('/plugins/sly/escape/owner.json')
  t.equal(leaked.statusCode, 404, 'the symlinked file is not served')
  t.equal((await app.inject('/security/security.js')).statusCode, 404, 'no security client installed: 404')
})

t.test('the HTML shell: client scripts, server-rendered story, the visitor standing', async (t) => {
  const farm = await startFarm(t, { farm: true, neighbors: 'fed.wiki.org' }, undefined, { builtinPluginsDir: PLUGINS })
  const get = (url: string, cookie?: string) =>
    farm.app.inject({ url, headers: { host: HOST, ...(cookie ? { cookie } : {}) } })
  const anonymous = await get('/welcome-visitors.html')
  t.equal(anonymous.statusCode, 200)
  t.match(anonymous.body, '<script src="/client.js"></script>')
  t.match(anonymous.body, /<script src="\/js\/jquery-[0-9.]+\.js"><\/script>/, "the installed client's own jQuery")
  t.match(anonymous.body, '<link href="/theme/style.css"')
  t.match(anonymous.body, '<div class="page" id="welcome-visitors" tabindex="-1" data-server-generated="true">')
  t.match(anonymous.body, '<a class="internal" href="/about-this-wiki.html">About This Wiki</a>')
  t.match(
    anonymous.body,
    'var isAuthenticated = false;\nvar isClaimed = false;\nvar isOwner = false;\nvar ownerName = "";\nvar ' +
      'seedNeighbors = "fed.wiki.org";\nvar user = "";\nwiki.security(user);',
  )
  t.match(anonymous.headers['set-cookie'], /wikifarm_session=/, 'a page a person opens gets the session cookie')

  const owner = await claim(t, farm.app, HOST)
  const mine = await get('/welcome-visitors.html', owner.cookie)
  t.match(
    mine.body,
    `var isAuthenticated = true;\nvar isClaimed = true;\nvar isOwner = true;\nvar ownerName = "${owner.ownerName}";`,
  )
  t.match(mine.body, `Wiki by: <span id="site-owner">${owner.ownerName}</span>`)
  t.match(mine.body, 'var user = "true";')
  const visitor = await get('/welcome-visitors.html')
  t.match(
    visitor.body,
    `var isAuthenticated = false;\nvar isClaimed = true;\nvar isOwner = false;\nvar ownerName = "${owner.ownerName}";`,
  )

  // Nothing a page says can end the inline script or inject markup.
  await putAction(farm.app, HOST, owner.cookie, 'evil', {
    type: 'create',
    item: {
      title: '</script><script>alert(1)</script>',
      story: [{ type: 'paragraph', id: itemId(1), text: '<img src=x onerror=alert(1)>' }],
    },
  })
  const evil = await get('/evil.html')
  t.notMatch(evil.body, '<script>alert(1)')
  t.notMatch(evil.body, '<img src=x')
  t.equal((await get('/missing-page.html')).statusCode, 404)
  t.equal((await get('/Bad_Slug.html')).statusCode, 400)
})

t.test('lineups: /view/<slug>/… and remote-first lineups; anything else is not one', async (t) => {
  t.same(parseLineup('/view/welcome-visitors'), [{ site: null, id: 'welcome-visitors' }])
  t.same(parseLineup('/view/a/fed.wiki.org/b_rev3/'), [{ site: null, id: 'a' }, { site: 'fed.wiki.org', id: 'b_rev3' }])
  t.same(parseLineup('/Fed.Wiki.Org:8080/b'), [{ site: 'fed.wiki.org:8080', id: 'b' }])
  for (const bad of [
    '/',
    '/view',
    '/view/',
    '/view/a/view',
    '/view/A',
    '/view/a_b',
    '/plugin/x',
    '/auth/x',
    '/system/x',
    '/../a',
    '/a..b/c',
    '/view/a/' + 'view/a/'.repeat(20),
    '/si te/a',
  ]) {
    t.equal(parseLineup(bad), null, `not a lineup: ${bad.slice(0, 40)}`)
  }
  const farm = await startFarm(t, { farm: true })
  const get = (url: string) => farm.app.inject({ url, headers: { host: HOST } })
  const lineup = await get('/view/welcome-visitors/fed.wiki.org/recent-changes')
  t.equal(lineup.statusCode, 200)
  t.match(lineup.body, '<title>recent changes</title>')
  t.match(lineup.body, '<div class="page" id="welcome-visitors" tabindex="-1"></div>')
  t.match(lineup.body, '<div class="page" id="recent-changes" tabindex="-1" data-site="fed.wiki.org"></div>')
  const remoteFirst = await get('/fed.wiki.org/recent-changes/view/welcome-visitors')
  t.equal(remoteFirst.statusCode, 200, 'a lineup that starts on another site')
  const notLineup = await get('/view/Welcome')
  t.equal(notLineup.statusCode, 404)
  t.equal(notLineup.json().code, 'WIKIFARM_ERR_ROUTE_NOT_FOUND')
  t.equal(
    (await get('/plugin/nothing')).json().code,
    'WIKIFARM_ERR_PLUGIN_NOT_ENABLED',
    'plugin paths are never lineups',
  )
  t.equal((await farm.app.inject({ method: 'POST', url: '/view/a', headers: { host: HOST } })).statusCode, 404)
})

t.test('theme, sitemap Last-Modified, and the search index', async (t) => {
  const farm = await startFarm(t, { farm: true })
  const get = (url: string) => farm.app.inject({ url, headers: { host: HOST } })
  const theme = await get('/theme/style.css')
  t.equal(theme.statusCode, 200)
  t.equal(theme.body, '', 'no theme: an empty stylesheet')
  t.match(theme.headers['content-type'], /^text\/css/)
  t.equal((await get('/theme/other.css')).statusCode, 404)

  // A site's assets folder, read-only, nothing outside it.
  t.equal((await get('/assets/logo.txt')).statusCode, 404, 'no assets folder: 404, and nothing is created')
  t.notOk(existsSync(join(farm.data, HOST)), 'reading assets made no site folder')
  mkdirSync(join(farm.data, HOST, 'assets', 'pics'), { recursive: true })
  writeFileSync(join(farm.data, HOST, 'assets', 'pics', 'logo.txt'), 'the logo')
  writeFileSync(join(farm.data, HOST, 'secret.txt'), 'not an asset')
  const asset = await get('/assets/pics/logo.txt')
  t.equal(asset.statusCode, 200)
  t.equal(asset.body, 'the logo')
  for (const bad of [
    '/assets/../secret.txt',
    '/assets/%2e%2e/secret.txt',
    '/assets/pics/..%2f..%2fsecret.txt',
    '/assets/.hidden',
    '/assets/pics',
  ]) {
    t.equal((await get(bad)).statusCode, 404, `404: ${bad}`)
  }
  t.equal(
    (await farm.app.inject({ url: '/assets/pics/logo.txt', headers: { host: 'b.example' } })).statusCode,
    404,
    "another site's assets are its own",
  )

  const first = await get('/system/sitemap.json')
  const firstModified = Date.parse(String(first.headers['last-modified']))
  t.ok(firstModified > 0, 'the sitemap has a Last-Modified (the client reloads neighbours by it)')
  const owner = await claim(t, farm.app, HOST)
  await new Promise((resolve) => setTimeout(resolve, 1100))
  await putAction(farm.app, HOST, owner.cookie, 'zebra', {
    type: 'create',
    item: {
      title: 'Zebra',
      story: [
        { type: 'paragraph', id: itemId(1), text: 'Black and [[White]] stripes, see [http://example.com the zoo].' },
      ],
    },
  })
  t.ok(
    Date.parse(String((await get('/system/sitemap.json')).headers['last-modified'])) > firstModified,
    'a change moves it on',
  )

  const index = MiniSearch.loadJSON((await get('/system/site-index.json')).body, { fields: ['title', 'content'] })
  t.same(index.search('stripes').map((r) => r.id), ['zebra'], 'full text is searchable')
  t.same(index.search('zoo').map((r) => r.id), ['zebra'], 'link labels count')
  t.same(index.search('example').map((r) => r.id), [], 'URLs do not')
  await putAction(farm.app, HOST, owner.cookie, 'zebra', {
    type: 'add',
    id: itemId(2),
    item: { type: 'paragraph', id: itemId(2), text: 'Quagga cousins.' },
  })
  const again = MiniSearch.loadJSON((await get('/system/site-index.json')).body, { fields: ['title', 'content'] })
  t.same(again.search('quagga').map((r) => r.id), ['zebra'], 'the index follows edits')
  t.equal(
    (await farm.app.inject({ method: 'DELETE', url: '/zebra.json', headers: { host: HOST, cookie: owner.cookie } }))
      .statusCode,
    200,
  )
  const gone = MiniSearch.loadJSON((await get('/system/site-index.json')).body, { fields: ['title', 'content'] })
  t.same(gone.search('quagga').map((r) => r.id), [], 'and deletions')
  t.equal(
    pageText({
      title: 't',
      story: [
        { type: 'html', id: itemId(3), text: '<b>bold</b> words' },
        { type: 'data', id: itemId(4), text: 'hidden' },
      ],
    }),
    'bold words',
  )
  const empty = await farm.app.inject({ url: '/system/site-index.json', headers: { host: 'b.example' } })
  t.equal(empty.statusCode, 200, 'a new site has an (empty) index too')
  t.same(MiniSearch.loadJSON(empty.body, { fields: ['title', 'content'] }).documentCount, 0)
})
