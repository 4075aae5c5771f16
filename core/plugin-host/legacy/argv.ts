// The `argv` a legacy plugin reads: the reference's keys and folder layout (wiki's cli.js and
// wiki-server's defaultargs.js, cloned per site by farm.js), computed for the site of the
// request being served, and farm-level values outside a request. Secrets are not in it: the
// cookie secret is left out and `admin` (the administrator's friend secret in the reference)
// only says whether one is configured.
import { join } from 'node:path'
import type { FarmConfig } from '../../farm-config.js'
import { PACKAGE_ROOT } from '../../package-info.js'

export interface LegacyArgv {
  [key: string]: unknown
  data: string
  db: string
  status: string
  assets: string
  recycler: string
  commons: string
  url: string
  id: string
  admin: string | undefined
  farm: boolean
  f: boolean
  packageDir: string
  root: string
  client: string
  home: string
  port: number
  host: string
  security_type: string
  security_legacy: boolean
  uploadLimit: number
  session_duration: number
  secure_cookie: boolean
  neighbors: string
  wiki_domain?: string
  debug: boolean
  test: boolean
}

/** What of the farm's configuration the legacy adapter reads: no secret (admin only as null or not). */
export type LegacyConfig = Pick<FarmConfig, 'data' | 'host' | 'port' | 'admin' | 'farm' | 'home' | 'security_legacy'
  | 'uploadLimit' | 'session_duration' | 'secure_cookie' | 'neighbors'>

/** The legacy settings of a farm's configuration, the administrator's secret replaced by a marker. */
export function legacyConfig(config: LegacyConfig): LegacyConfig {
  return {
    data: config.data, host: config.host, port: config.port, admin: config.admin === null ? null : 'configured',
    farm: config.farm, home: config.home, security_legacy: config.security_legacy, uploadLimit: config.uploadLimit,
    session_duration: config.session_duration, secure_cookie: config.secure_cookie, neighbors: config.neighbors,
  }
}

/** Where a site's folders are for a legacy plugin: the reference's layout under `root`. */
export function siteArgv(base: LegacyArgv, root: string, host: string, wikiDomain: string | null): LegacyArgv {
  const argv: LegacyArgv = {
    ...base,
    data: root,
    db: join(root, 'pages'),
    status: join(root, 'status'),
    assets: join(root, 'assets'),
    recycler: join(root, 'recycle'),
    id: join(root, 'status', 'owner.json'),
    url: `http://${host}`,
  }
  if (wikiDomain !== null) argv.wiki_domain = wikiDomain
  return argv
}

/**
 * The farm-level values. The per-site folders point into `<data>/.legacy-farm/`, a name no
 * Host can have: a plugin that creates its folders at start (the image plugin does) makes them
 * there, never in a site.
 */
export function farmArgv(config: LegacyConfig, packageDir: string): LegacyArgv {
  const data = config.data
  const base = join(data, '.legacy-farm')
  return {
    data,
    db: join(base, 'pages'),
    status: join(base, 'status'),
    assets: join(base, 'assets'),
    recycler: join(base, 'recycle'),
    id: join(base, 'status', 'owner.json'),
    commons: join(data, 'commons'),
    url: `http://${config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host}:${config.port}`,
    admin: config.admin === null ? undefined : 'configured',
    farm: config.farm,
    f: config.farm,
    packageDir,
    root: PACKAGE_ROOT,
    client: join(packageDir, 'wiki-client', 'client'),
    home: config.home,
    port: config.port,
    host: config.host,
    security_type: 'wiki-security-friends',
    security_legacy: config.security_legacy,
    uploadLimit: config.uploadLimit,
    session_duration: config.session_duration,
    secure_cookie: config.secure_cookie,
    neighbors: config.neighbors,
    debug: false,
    test: false,
    // minimist's aliases and the page store setting, as the reference's argv has them.
    _: [],
    p: config.port,
    d: data,
    database: { type: './page.js' },
  }
}
