// What a bench part hands back: its section of docs/benchmarks.md and the headline ratios
// that go on the chart, plus the small formatting rules every part shares.

/**
 * One bar on the chart. `value` is always wikifarm's advantage over the baseline, oriented so
 * that above 1 means wikifarm does better (throughput: wikifarm ÷ baseline; memory, latency,
 * launches: baseline ÷ wikifarm). null when the baseline could not be measured.
 */
export interface Headline {
  label: string
  value: number | null
}

export interface PartResult {
  markdown: string
  headlines: Headline[]
}

export function ratio(a: number, b: number): number | null {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : null
}

export function fmtRatio(r: number | null): string {
  if (r === null) return '—'
  return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)
}

export function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2)
}

export function fmtBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '—'
  const abs = Math.abs(bytes)
  if (abs >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`
  if (abs >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`
  if (abs >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`
  return `${Math.round(bytes)} B`
}

export function table(header: string[], rows: (string | number)[][]): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n')
}
