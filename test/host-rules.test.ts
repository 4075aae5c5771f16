// Host → site: normalisation, farm and single-site mode, --allowed, '*', wikiDomains,
// promiscuous farms, www. stripping; unknown and malformed hosts create nothing on disk.
import t from 'tap'
import { mkdir, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { normalizeHost, stripWww } from '../core/http/site-router.js'
import { matchDomain } from '../core/pages/sites.js'
import { isWikifarmError } from '../core/errors.js'
import {
  claim, http, listDir, listenLocal, putAction, rawHttp, snapshot, startFarm, testData, type TestFarm,
} from './fixtures/test-farm.js'

function badHost(raw: string | undefined): string {
  try {
    return `accepted as ${normalizeHost(raw)}`
  } catch (err) {
    if (isWikifarmError(err)) return `${err.statusCode} ${err.code}`
    throw err
  }
}

t.test('normalizeHost: what is accepted, and what it becomes', async (t) => {
  const cases: Array<[string, string]> = [
    ['a.example', 'a.example'],
    ['A.Example.COM', 'a.example.com'],
    ['a.example.', 'a.example'],
    ['a.example:3000', 'a.example'],
    ['A.EXAMPLE.:8080', 'a.example'],
    ['localhost:3000', 'localhost'],
    ['127.0.0.1:3000', '127.0.0.1'],
    ['[::1]', '[::1]'],
    ['[::1]:3000', '[::1]'],
    ['[2001:DB8::1]:80', '[2001:db8::1]'],
    ['[2001:db8:0:0:0:0:0:1]', '[2001:db8::1]'], // one address, one site: the canonical form
    ['[::FFFF:127.0.0.1]', '[::ffff:7f00:1]'],
    ['a_b.example', 'a_b.example'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['BÜCHER.example', 'xn--bcher-kva.example'],
    ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['www.a.example', 'www.a.example'], // www. is the farm's rule, not normalisation
    [`${'a'.repeat(63)}.example`, `${'a'.repeat(63)}.example`],
  ]
  for (const [raw, expected] of cases) t.equal(normalizeHost(raw), expected, JSON.stringify(raw))
})

t.test('normalizeHost: everything else is 400 WIKIFARM_ERR_BAD_HOST', async (t) => {
  const bad: Array<string | undefined> = [
    undefined, '', '.', '..', '...', ':3000', '.:3000', '..:80', 'a..example', '.a.example', 'a.example..',
    '../etc', 'a/b', 'a\\b', '/', 'a b', 'a\tb', 'a\nb', 'a\rb', 'a\u0000b', 'a\u007fb', 'a%2fb', 'a@b.example',
    'user:pw@a.example', 'a.example:', 'a.example:abc', 'a.example:99999', 'a.example:3000:4000',
    '-a.example', 'a-.example', 'a.-b.example', `${'a'.repeat(64)}.example`, `${'a.'.repeat(130)}example`,
    'a'.repeat(300), '[::1', '[::1]x', '[::1]:', '[zz::1]', '[]', '[a.example]', 'a.example]',
    // IPv6 zone ids name the sender's network card, never a host (RFC 6874 spells % as %25).
    '[fe80::1%25eth0]', '[fe80::1%eth0]', '[fe80::1%eth0]:3000', '[FE80::1%25ETH0]', '[fe80::1%]', '[fe80::1%25]',
    'fe80::1%eth0', '[::1%lo]',
    // What a browser would have turned into another address or refused: not IP literals.
    '1.2.3.999', '256.1.1.1', '0x7f.1', '0x7f000001', '2130706433', '127.1', '01.2.3.4', '999', 'a.999', 'a.0x1',
    // Punycode that decodes to nothing valid.
    'xn--zz.example', 'xn--a.example',
  ]
  for (const raw of bad) t.equal(badHost(raw), '400 WIKIFARM_ERR_BAD_HOST', JSON.stringify(raw))
})

t.test('stripWww and matchDomain', async (t) => {
  t.equal(stripWww('www.a.example'), 'a.example')
  t.equal(stripWww('www.www.a.example'), 'www.a.example', 'strips one www. only')
  t.equal(stripWww('www'), 'www')
  t.equal(stripWww('wwwa.example'), 'wwwa.example')
  const domains = ['example.com', 'sub.example.com', 'localhost']
  t.equal(matchDomain('example.com', domains), 'example.com')
  t.equal(matchDomain('a.example.com', domains), 'example.com')
  t.equal(matchDomain('x.sub.example.com', domains), 'sub.example.com', 'longest suffix wins')
  t.equal(
    matchDomain('sub.example.com', ['sub.example.com', 'example.com']),
    'sub.example.com',
    'order does not matter',
  )
  t.equal(matchDomain('notexample.com', domains), null, 'a suffix must start at a label')
  t.equal(matchDomain('example.com.evil', domains), null)
  t.equal(matchDomain('other.org', domains), null)
})

/** The site name a request is served as, read from the session route. */
async function siteOf(farm: TestFarm, host: string): Promise<{ status: number; site?: string; code?: string }> {
  const response = await farm.app.inject({ url: '/system/session.json', headers: { host } })
  const body = response.json() as { site?: string; code?: string }
  return { status: response.statusCode, site: body.site, code: body.code }
}

t.test('single-site mode: every host serves the one site, in the data folder itself', async (t) => {
  const farm = await startFarm(t, { farm: false })
  t.same(await siteOf(farm, 'a.example'), { status: 200, site: 'default', code: undefined })
  t.same(await siteOf(farm, 'B.other.ORG:8080'), { status: 200, site: 'default', code: undefined })
  const owner = await claim(t, farm.app, 'a.example')
  const create = await putAction(farm.app, 'b.example', owner.cookie, 'shared', {
    type: 'create',
    item: { title: 'Shared' },
    date: 1,
  })
  t.equal(create.statusCode, 200, 'the owner cookie works whatever the host')
  t.same(await listDir(farm.data), ['pages', 'status'], 'no per-host folders')
  t.same(await listDir(join(farm.data, 'pages')), ['shared'])
  const read = await farm.app.inject({ url: '/shared.json', headers: { host: 'c.example' } })
  t.equal(read.statusCode, 200)
  t.equal(read.json().title, 'Shared')
  // Malformed hosts are refused even here.
  const bad = await farm.app.inject({ url: '/shared.json', headers: { host: '..' } })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().code, 'WIKIFARM_ERR_BAD_HOST')
})

t.test('promiscuous farm: each normalised host is its own site; www., case, port and trailing dot fold', async (t) => {
  const farm = await startFarm(t, { farm: true })
  for (const host of ['a.example', 'A.EXAMPLE', 'a.example:3000', 'a.example.', 'www.a.example', 'WWW.A.Example.:80']) {
    t.same(await siteOf(farm, host), { status: 200, site: 'a.example', code: undefined }, host)
  }
  t.same(await siteOf(farm, 'bücher.example'), { status: 200, site: 'xn--bcher-kva.example', code: undefined })
  t.same(await siteOf(farm, '[::1]:3000'), { status: 200, site: '[::1]', code: undefined })
  t.same(await listDir(farm.data), [], 'reading creates no folder')

  const a = await claim(t, farm.app, 'A.Example:3000')
  t.equal(
    (
      await putAction(farm.app, 'www.a.example', a.cookie, 'only-a', {
        type: 'create',
        item: { title: 'Only A' },
        date: 1,
      })
    ).statusCode,
    200,
  )
  t.same(await listDir(farm.data), ['a.example'], 'one lowercase folder, no port, no www.')
  t.same(await listDir(join(farm.data, 'a.example', 'pages')), ['only-a'])
  const onB = await farm.app.inject({ url: '/only-a.json', headers: { host: 'b.example' } })
  t.equal(onB.statusCode, 404, 'sites do not share pages')
  t.equal(onB.json().code, 'WIKIFARM_ERR_PAGE_NOT_FOUND')

  await claim(t, farm.app, 'bücher.example')
  t.same(await listDir(farm.data), ['a.example', 'xn--bcher-kva.example'], 'IDN hosts live under their punycode name')
})

t.test('--allowed list: listed hosts only; others 404 and create nothing', async (t) => {
  const farm = await startFarm(t, { farm: true, allowed: ['a.example', 'b.example'] })
  t.same(await siteOf(farm, 'a.example'), { status: 200, site: 'a.example', code: undefined })
  t.same(await siteOf(farm, 'www.a.example'), { status: 200, site: 'a.example', code: undefined })
  t.same(await siteOf(farm, 'B.EXAMPLE:80'), { status: 200, site: 'b.example', code: undefined })
  for (const host of ['c.example', 'x.a.example', 'example', 'a.example.evil']) {
    t.same(await siteOf(farm, host), { status: 404, site: undefined, code: 'WIKIFARM_ERR_UNKNOWN_SITE' }, host)
    const login = await farm.app.inject({ method: 'POST', url: '/login', headers: { host } })
    t.equal(login.statusCode, 404, `no claim on ${host}`)
    const put = await putAction(farm.app, host, null, 'x', { type: 'create', item: { title: 'X' } })
    t.equal(put.statusCode, 404, `no write on ${host}`)
    t.equal(put.json().code, 'WIKIFARM_ERR_UNKNOWN_SITE')
  }
  t.same(await snapshot(farm.data), {}, 'nothing on disk')
  t.equal(farm.kernel.sites.openCount, 2, 'unknown hosts open no site')
})

t.test("--allowed '*': only site folders that already exist", async (t) => {
  const farm = await startFarm(t, { farm: true, allowed: ['*'] })
  await mkdir(join(farm.data, 'old.example'))
  await writeFile(join(farm.data, 'not-a-folder.example'), 'a file, not a site')
  t.same(await siteOf(farm, 'old.example'), { status: 200, site: 'old.example', code: undefined })
  t.same(await siteOf(farm, 'www.old.example'), { status: 200, site: 'old.example', code: undefined })
  t.equal((await siteOf(farm, 'not-a-folder.example')).status, 404, 'a file is not a site')
  const before = await snapshot(farm.data)
  t.equal((await siteOf(farm, 'new.example')).status, 404)
  t.equal((await farm.app.inject({ method: 'POST', url: '/login', headers: { host: 'new.example' } })).statusCode, 404)
  t.same(await snapshot(farm.data), before, 'refusing new.example created nothing')
  await mkdir(join(farm.data, 'new.example'))
  t.same(
    await siteOf(farm, 'new.example'),
    { status: 200, site: 'new.example', code: undefined },
    'served once its folder exists',
  )
})

t.test('wikiDomains: a domain and its subdomains; unknown domains 404', async (t) => {
  const farm = await startFarm(t, {
    farm: true,
    wikiDomains: { 'Example.com': {}, 'sub.example.com': {}, localhost: {} },
  })
  for (const host of ['example.com', 'a.example.com', 'x.sub.example.com', 'WWW.B.EXAMPLE.COM', 'a.localhost:3000']) {
    t.equal((await siteOf(farm, host)).status, 200, host)
  }
  for (const host of ['other.org', 'notexample.com', 'example.com.evil', 'ub.example.org']) {
    t.same(await siteOf(farm, host), { status: 404, site: undefined, code: 'WIKIFARM_ERR_UNKNOWN_SITE' }, host)
  }
  t.same(await snapshot(farm.data), {})
})

t.test('--allowed and wikiDomains together: a host must pass both, as in the reference farm', async (t) => {
  const farm = await startFarm(t, {
    farm: true,
    allowed: ['a.example.com', 'b.other.org'],
    wikiDomains: { 'example.com': {} },
  })
  t.equal((await siteOf(farm, 'a.example.com')).status, 200, 'listed and in the domain')
  t.equal((await siteOf(farm, 'c.example.com')).status, 404, 'in the domain but not listed')
  t.equal((await siteOf(farm, 'b.other.org')).status, 404, 'listed but outside every domain')
})

t.test('Host: .. and friends never reach the file system', async (t) => {
  const root = testData(t, { data: {} })
  const data = join(root, 'data')
  const farm = await startFarm(t, { farm: true }, data)
  const before = await snapshot(root)
  for (const host of ['..', '.', '../x', 'a/../..', '..:3000', '%2e%2e', ':3000']) {
    for (const request of [
      { method: 'GET' as const, url: '/welcome-visitors.json' },
      { method: 'POST' as const, url: '/login' },
      {
        method: 'PUT' as const,
        url: '/page/x/action',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'action={}',
      },
    ]) {
      const response = await farm.app.inject({ ...request, headers: { ...request.headers, host } })
      t.equal(response.statusCode, 400, `${request.method} with Host ${JSON.stringify(host)}`)
      t.equal(response.json().code, 'WIKIFARM_ERR_BAD_HOST')
    }
  }
  t.same(await snapshot(root), before, 'nothing created in the data folder or beside it')
  t.equal(farm.kernel.sites.openCount, 0)
})

t.test('Hosts that are not a hostname or an IP literal: 400, no site opened, no folder', async (t) => {
  const root = testData(t, { data: {} })
  const data = join(root, 'data')
  const farm = await startFarm(t, { farm: true }, data)
  const port = await listenLocal(farm)
  const before = await snapshot(root)
  const hosts = ['[fe80::1%25eth0]', '[fe80::1%eth0]', '[fe80::1%25eth0]:3000', '[::1%25lo]',
    '0x7f.1', '2130706433', '1.2.3.999', 'xn--zz.example']
  for (const host of hosts) {
    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    for (const request of [
      { method: 'POST' as const, url: '/login' },
      { method: 'GET' as const, url: '/welcome-visitors.html' },
      { method: 'PUT' as const, url: '/page/x/action', headers: form, payload: 'action={}' },
    ]) {
      const response = await farm.app.inject({ ...request, headers: { ...request.headers, host } })
      t.equal(response.statusCode, 400, `${request.method} ${request.url} with Host ${host}`)
      t.equal(response.json().code, 'WIKIFARM_ERR_BAD_HOST')
      t.equal(response.headers['set-cookie'], undefined, 'no session for it')
    }
    // The same bytes over a real socket, as a client on the link sends them.
    const head = `POST /login HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`
    const wire = await rawHttp(port, head)
    t.equal(wire.status, 400, `POST /login over the wire with Host ${host}`)
  }
  t.same(await snapshot(root), before, 'nothing created in the data folder or beside it')
  t.equal(farm.kernel.sites.openCount, 0, 'no site opened')
  // The canonical spellings of the same addresses are served, under one folder each.
  const login = (host: string) => farm.app.inject({ method: 'POST', url: '/login', headers: { host } })
  t.equal((await login('[fe80::1]')).statusCode, 200)
  t.equal((await login('[FE80:0::1]:3000')).statusCode, 501, 'the same site, already claimed')
  t.same(await listDir(data), ['[fe80::1]'])
})

t.test('over HTTP: absent, empty, doubled and raw UTF-8 Host headers', async (t) => {
  const farm = await startFarm(t, { farm: true })
  farm.app.get('/test/site-name', async (request) => request.site.name)
  const port = await listenLocal(farm)

  const http10 = await rawHttp(port, 'GET /welcome-visitors.json HTTP/1.0\r\n\r\n')
  t.equal(http10.status, 400, 'HTTP/1.0 without Host')
  t.equal(JSON.parse(http10.body).code, 'WIKIFARM_ERR_BAD_HOST')
  const http11 = await rawHttp(port, 'GET /welcome-visitors.json HTTP/1.1\r\nConnection: close\r\n\r\n')
  t.equal(http11.status, 400, 'HTTP/1.1 without Host (Node refuses it before the kernel)')
  const empty = await rawHttp(port, 'GET /welcome-visitors.json HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n')
  t.equal(empty.status, 400, 'empty Host')
  t.equal(JSON.parse(empty.body).code, 'WIKIFARM_ERR_BAD_HOST')
  const doubled = await rawHttp(
    port,
    'GET /welcome-visitors.json HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n',
  )
  t.equal(doubled.status, 400, 'two Host headers are ambiguous')
  t.equal(JSON.parse(doubled.body).code, 'WIKIFARM_ERR_BAD_HOST')
  const control = await rawHttp(
    port,
    'GET /welcome-visitors.json HTTP/1.1\r\nHost: a\tb.example\r\nConnection: close\r\n\r\n',
  )
  t.equal(control.status, 400, 'a tab inside Host')
  const dotdot = await rawHttp(
    port,
    'POST /login HTTP/1.1\r\nHost: ..\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
  )
  t.equal(dotdot.status, 400, 'Host: .. over the wire')

  // A browser sends punycode; a client that sends the UTF-8 bytes must reach the same site.
  const utf8 = await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    socket.on('data', (chunk: Buffer) => { text += chunk.toString('utf8') })
    socket.on('error', reject)
    socket.on('close', () => resolve(text))
    socket.write(
      Buffer.concat([
        Buffer.from('GET /test/site-name HTTP/1.1\r\nHost: '),
        Buffer.from('bücher.example', 'utf8'),
        Buffer.from('\r\nConnection: close\r\n\r\n'),
      ]),
    )
  })
  t.match(utf8, /^HTTP\/1\.1 200/)
  t.ok(utf8.endsWith('\r\n\r\nxn--bcher-kva.example'), 'UTF-8 Host bytes map to the punycode site')
  const puny = await http(port, 'GET', '/test/site-name', 'xn--bcher-kva.example')
  t.equal(puny.body, 'xn--bcher-kva.example')

  t.same(await listDir(farm.data), [], 'none of this created a folder')
})

t.test('over HTTP: an unknown host in an --allowed farm gets 404 JSON and leaves no trace', async (t) => {
  const farm = await startFarm(t, { farm: true, allowed: ['a.example'] })
  const port = await listenLocal(farm)
  const ok = await http(port, 'GET', '/welcome-visitors.json', 'a.example')
  t.equal(ok.status, 200)
  t.same(await listDir(farm.data), [], 'reading a default page creates nothing')
  const unknown = await http(port, 'GET', '/welcome-visitors.json', 'evil.example:3000')
  t.equal(unknown.status, 404)
  t.match(unknown.headers['content-type'], /^application\/json/)
  t.same(JSON.parse(unknown.body), {
    error: 'No wiki is served for host evil.example',
    code: 'WIKIFARM_ERR_UNKNOWN_SITE',
  })
  t.equal(unknown.headers['set-cookie'], undefined, 'no session for a host that is not served')
  const login = await http(port, 'POST', '/login', 'evil.example')
  t.equal(login.status, 404)
  const put = await http(port, 'PUT', '/page/x/action', 'evil.example', {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `action=${encodeURIComponent(JSON.stringify({ type: 'create', item: { title: 'X' } }))}`,
  })
  t.equal(put.status, 404)
  t.same(await snapshot(farm.data), {})
})

t.test('X-Forwarded-Host is used only behind a trusted proxy, and then for everything', async (t) => {
  const plain = await startFarm(t, { farm: true, allowed: ['a.example', 'b.example'] })
  t.equal(
    (
      await plain.app.inject({
        url: '/system/session.json',
        headers: { host: 'a.example', 'x-forwarded-host': 'b.example' },
      })
    ).json().site,
    'a.example',
    'ignored without trustProxy',
  )

  const proxied = await startFarm(t, { farm: true, allowed: ['a.example', 'b.example'], trustProxy: true })
  const behind = (
    headers: Record<string, string>,
    request: { method?: 'GET' | 'POST' | 'PUT'; url: string } = { url: '/system/session.json' },
  ) =>
    proxied.app.inject({
      method: request.method ?? 'GET',
      url: request.url,
      headers: { host: 'localhost:3000', ...headers },
    })
  t.equal((await behind({ 'x-forwarded-host': 'B.example:443' })).json().site, 'b.example')
  t.equal((await behind({ 'x-forwarded-host': 'evil.example, b.example' })).json().site, 'b.example',
    'the entry the nearest proxy added, not one the client sent')
  t.equal((await behind({ 'x-forwarded-host': '..' })).statusCode, 400)
  t.equal((await behind({ 'x-forwarded-host': 'c.example' })).statusCode, 404)

  // The browser's Origin is the public host, which is the one the site was resolved from.
  const foreign = await behind(
    { 'x-forwarded-host': 'a.example', origin: 'https://evil.example' },
    { method: 'POST', url: '/login' },
  )
  t.equal(foreign.statusCode, 403)
  const internal = await behind(
    { 'x-forwarded-host': 'a.example', origin: 'http://localhost:3000' },
    { method: 'POST', url: '/login' },
  )
  t.equal(internal.statusCode, 403, 'the address behind the proxy is not the site\'s origin')
  const login = await behind(
    { 'x-forwarded-host': 'a.example', 'x-forwarded-proto': 'https', origin: 'https://a.example' },
    { method: 'POST', url: '/login' },
  )
  t.equal(login.statusCode, 200, 'a browser on the public site may claim it')
  const cookie = String(login.headers['set-cookie']).split(';')[0] ?? ''
  const put = await proxied.app.inject({
    method: 'PUT',
    url: '/page/x/action',
    headers: {
      host: 'localhost:3000',
      'x-forwarded-host': 'a.example',
      'x-forwarded-proto': 'https',
      origin: 'https://a.example',
      cookie,
      'content-type': 'application/x-www-form-urlencoded',
    },
    payload: `action=${encodeURIComponent(JSON.stringify({ type: 'create', item: { title: 'X' }, date: 1 }))}`,
  })
  t.equal(put.statusCode, 200)
  const xml = await behind({ 'x-forwarded-host': 'a.example', 'x-forwarded-proto': 'https' }, { url: '/sitemap.xml' })
  t.match(xml.body, '<loc>https://a.example/x.html</loc>', 'sitemap.xml names the public URL')
  t.same(await listDir(proxied.data), ['a.example'])
})
