// The headline ratios as an SVG bar chart, drawn here (no chart library). Each bar starts at
// 1 (parity with the baseline) on a logarithmic axis, so 0.5× and 2× are bars of equal length
// in opposite directions; right of 1 means wikifarm does better.
import type { Headline } from './report.js'

function escapeXml(s: string): string {
  return s.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string,
  )
}

export function ratioChart(headlines: readonly Headline[], title: string): string {
  const labelWidth = 430
  const plotWidth = 420
  const rowHeight = 26
  const top = 46
  const width = labelWidth + plotWidth + 70
  const height = top + headlines.length * rowHeight + 40
  const values = headlines.map((h) => h.value).filter((v): v is number => v !== null && v > 0)
  // The axis spans whole decades around every value, at least 0.1× to 10×.
  const lo = Math.min(-1, Math.floor(Math.log10(Math.min(...values, 1))))
  const hi = Math.max(1, Math.ceil(Math.log10(Math.max(...values, 1))))
  const x = (v: number) => labelWidth + ((Math.log10(v) - lo) / (hi - lo)) * plotWidth
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="13">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
  ]
  for (let d = lo; d <= hi; d++) {
    const gx = x(10 ** d)
    parts.push(
      `<line x1="${gx}" y1="${top - 8}" x2="${gx}" y2="${height - 30}" stroke="${d === 0 ? '#333' : '#ddd'}" ` +
        `stroke-width="${d === 0 ? 1.5 : 1}"/>`,
    )
    parts.push(
      `<text x="${gx}" y="${height - 14}" text-anchor="middle" ` +
        `fill="#555">${10 ** d >= 1 ? 10 ** d : (10 ** d).toFixed(-d)}×</text>`,
    )
  }
  headlines.forEach((h, i) => {
    const y = top + i * rowHeight
    parts.push(`<text x="${labelWidth - 8}" y="${y + 16}" text-anchor="end">${escapeXml(h.label)}</text>`)
    if (h.value === null || !(h.value > 0)) {
      parts.push(`<text x="${x(1) + 6}" y="${y + 16}" fill="#999">not measured</text>`)
      return
    }
    const x0 = Math.min(x(1), x(h.value))
    const w = Math.max(1, Math.abs(x(h.value) - x(1)))
    const good = h.value >= 1
    parts.push(
      `<rect x="${x0.toFixed(1)}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowHeight - 8}" ` +
        `fill="${good ? '#3a7d44' : '#d1813b'}"/>`,
    )
    const label = h.value >= 10 ? h.value.toFixed(0) : h.value.toFixed(2)
    parts.push(good
      ? `<text x="${(x0 + w + 5).toFixed(1)}" y="${y + 16}">${label}×</text>`
      : `<text x="${(x0 - 5).toFixed(1)}" y="${y + 16}" text-anchor="end">${label}×</text>`)
  })
  parts.push('</svg>')
  return parts.join('\n') + '\n'
}
