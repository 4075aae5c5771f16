// The HTML page that starts the federated-wiki client: one empty or server-rendered
// `.page` per lineup entry, the client's scripts and styles, and the globals its security
// plugin reads (isAuthenticated, isClaimed, isOwner, ownerName). Our own markup; the
// client's asset paths are read from the installed wiki-client at boot so that upgrading
// the package (its jQuery file names carry versions) needs no change here.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { escapeHtml } from './page-html.js'

export interface ClientAssets {
  scripts: string[]
  styles: Array<{ href: string; media: string }>
}

/** wiki-client 0.32's assets: used only when its views/static.html cannot be read. */
const FALLBACK_ASSETS: ClientAssets = {
  scripts: ['/js/jquery-4.0.0.js', '/js/jquery-migrate-4.0.2.js', '/js/jquery-ui/1.14.2/jquery-ui.min.js',
    '/js/jquery.ui.touch-punch.min.js', '/js/underscore-min.js', '/client.js'],
  styles: [{ href: '/style/style.css', media: 'screen' }, { href: '/style/print.css', media: 'print' },
    { href: '/js/jquery-ui/1.14.2/jquery-ui.min.css', media: 'all' }],
}
const LOCAL_PATH = /^\/[A-Za-z0-9._/-]{1,200}$/

/** The script and stylesheet paths the installed client's own template loads. */
export async function readClientAssets(wikiClientDir: string | null): Promise<ClientAssets> {
  if (!wikiClientDir) return FALLBACK_ASSETS
  const template = await readFile(join(wikiClientDir, 'views', 'static.html'), 'utf8').catch(() => null)
  if (template === null) return FALLBACK_ASSETS
  const scripts = [...template.matchAll(/<script\s+src=['"]([^'"]+)['"]/g)].map((m) => m[1] ?? '')
    .filter((src) => LOCAL_PATH.test(src) && !src.includes('..'))
  const styles = [...template.matchAll(/<link\s+([^>]*)>/g)].flatMap((m) => {
    const attrs = m[1] ?? ''
    const href = /href=['"]([^'"]+)['"]/.exec(attrs)?.[1]
    if (
      !href ||
      !/rel=['"]stylesheet['"]/.test(attrs) ||
      !LOCAL_PATH.test(href) ||
      href.includes('..') ||
      href.startsWith('/theme/')
    )
      return []
    return [{ href, media: /media=['"]([a-z]+)['"]/.exec(attrs)?.[1] ?? 'all' }]
  })
  return scripts.includes('/client.js') ? { scripts, styles } : FALLBACK_ASSETS
}

export interface ShellPage {
  /** The page's slug, with `_rev<n>` when a revision is asked for. */
  id: string
  /** The site the page comes from, or null for this site. */
  site: string | null
  /** Title and story HTML rendered by the server (/<slug>.html), or null for an empty page the client fills. */
  rendered: { title: string; storyHtml: string } | null
}

export interface ShellSecurity {
  authenticated: boolean
  claimed: boolean
  isOwner: boolean
  ownerName: string
}

/** A value for an inline script: JSON, with `<` escaped so no string can close the script. */
function scriptValue(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')
}

function pageDiv(page: ShellPage): string {
  const site = page.site ? ` data-site="${escapeHtml(page.site)}"` : ''
  if (!page.rendered) return `<div class="page" id="${escapeHtml(page.id)}" tabindex="-1"${site}></div>`
  return `<div class="page" id="${escapeHtml(page.id)}" tabindex="-1"${site} data-server-generated="true">
<div class="paper">
<div class="twins"><p></p></div>
<div class="header"><h1><a href="/" style="text-decoration: none"><img height="32" src="/favicon.png" alt=""></a>
${escapeHtml(page.rendered.title)}</h1></div>
<div class="story">
${page.rendered.storyHtml}
</div>
</div>
</div>`
}

export function renderClientShell(
  assets: ClientAssets,
  title: string,
  pages: ShellPage[],
  security: ShellSecurity,
  seedNeighbors: string,
): string {
  const styles = assets.styles.map(
    (s) => `<link href="${escapeHtml(s.href)}" rel="stylesheet" type="text/css" media="${escapeHtml(s.media)}">`,
  )
  styles.splice(1, 0, '<link href="/theme/style.css" rel="stylesheet" type="text/css" media="screen">')
  const scripts = assets.scripts.map((src) => `<script src="${escapeHtml(src)}"></script>`)
  // Shows a new owner the secret that friends' client receives on claim but never displays.
  scripts.push('<script src="/system/claim-secret.js"></script>')
  const owner = security.claimed ? `Wiki by: <span id="site-owner">${escapeHtml(security.ownerName)}</span>` : ''
  return `<!DOCTYPE html>
<html class="no-js" lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, height=device-height, initial-scale=1.0, user-scalable=no">
<link id="favicon" href="/favicon.png" rel="icon" type="image/png">
${styles.join('\n')}
${scripts.join('\n')}
</head>
<body>
<section class="main">
${pages.map(pageDiv).join('\n')}
</section>
<footer>
<div id="site-owner" class="footer-item">${owner}</div>
<div id="security" class="footer-item"></div>
<span class="searchbox footer-item">&nbsp;<input class="search" name="search" type="text"
  placeholder="Search">&nbsp;<span class="pages"></span></span>
<span class="neighborhood"></span>
</footer>
<script>
var isAuthenticated = ${scriptValue(security.authenticated)};
var isClaimed = ${scriptValue(security.claimed)};
var isOwner = ${scriptValue(security.isOwner)};
var ownerName = ${scriptValue(security.ownerName)};
var seedNeighbors = ${scriptValue(seedNeighbors)};
var user = ${scriptValue(security.authenticated ? 'true' : '')};
wiki.security(user);
</script>
</body>
</html>
`
}
