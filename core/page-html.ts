// A server-rendered, script-free view of one page (/<slug>.html): readable without the
// client, and what search engines following sitemap.xml see.
import type { Page } from '../schemas/page.js'

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function linkify(escaped: string): string {
  return escaped.replace(/\[\[([^\]\n]{1,300})\]\]/g, (_m, name: string) => {
    const slug = name.replace(/\s/g, '-').replace(/[^A-Za-z0-9-]/g, '').toLowerCase()
    return `<a class="internal" href="/${slug}.html">${name}</a>`
  })
}

export function renderPageHtml(slug: string, page: Page): string {
  const items = page.story.map((item) => {
    const text = typeof item.text === 'string' ? item.text : ''
    return `<div class="item ${escapeHtml(item.type)}" data-id="${escapeHtml(item.id)}"><p>${linkify(escapeHtml(text))}</p></div>`
  })
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(page.title)}</title><link rel="icon" href="/favicon.png"></head>
<body>
<div class="page" id="${escapeHtml(slug)}" data-server-generated="true">
<h1><a href="/"><img height="32" src="/favicon.png" alt=""></a> ${escapeHtml(page.title)}</h1>
<div class="story">
${items.join('\n')}
</div>
</div>
</body>
</html>
`
}
