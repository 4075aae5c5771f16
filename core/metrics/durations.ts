// Latency histograms kept as plain counters in typed arrays, written on the hot path without
// allocating, and turned into Prometheus series only when /metrics is scraped. prom-client's
// own Histogram hashes its label values into a new string on every observe(); a request must
// not pay for that (see docs/operators.md#metrics for what each family means).
import type { Metric } from 'prom-client'

/** Upper bounds of the buckets, in seconds: few, so each series stays small. */
export const BOUNDS: readonly number[] = [0.001, 0.005, 0.025, 0.1, 0.5, 2.5]
const LE = [...BOUNDS.map(String), '+Inf']

/** One labelled histogram: counts per bucket (not cumulative; the last is above every bound) and the sum. */
export class Durations {
  readonly labels: Readonly<Record<string, string>>
  readonly #counts = new Float64Array(BOUNDS.length + 1)
  readonly #sum = new Float64Array(1)

  constructor(labels: Record<string, string>) {
    this.labels = Object.freeze({ ...labels })
  }

  observe(seconds: number): void {
    let i = 0
    while (i < BOUNDS.length && seconds > (BOUNDS[i] as number)) i++
    ;(this.#counts[i] as number)++
    ;(this.#sum[0] as number) += seconds
  }

  get count(): number {
    let n = 0
    for (const c of this.#counts) n += c
    return n
  }

  /** The series of this histogram in prom-client's shape: cumulative buckets, sum, count. */
  values(name: string): { metricName: string; labels: Record<string, string>; value: number }[] {
    const out = []
    let cumulative = 0
    for (let i = 0; i < LE.length; i++) {
      cumulative += this.#counts[i] as number
      out.push({ metricName: `${name}_bucket`, labels: { ...this.labels, le: LE[i] as string }, value: cumulative })
    }
    out.push({ metricName: `${name}_sum`, labels: { ...this.labels }, value: this.#sum[0] as number })
    out.push({ metricName: `${name}_count`, labels: { ...this.labels }, value: cumulative })
    return out
  }
}

/**
 * A histogram family a prom-client Registry formats like its own Histogram: the registry needs
 * only name, help, type and get(). `series` is read at each scrape.
 */
export function histogramFamily(name: string, help: string, series: () => Iterable<Durations>): Metric {
  const family = {
    name,
    help,
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    collect: undefined,
    async get() {
      const values = []
      for (const s of series()) values.push(...s.values(name))
      return { name, help, type: 'histogram' as const, aggregator: 'sum' as const, values }
    },
  }
  return family as unknown as Metric
}

/** A counter family made the same way, from counts kept elsewhere. */
export function counterFamily(name: string, help: string,
  values: () => Iterable<{ labels: Record<string, string>; value: number }>): Metric {
  const family = {
    name,
    help,
    type: 'counter' as const,
    aggregator: 'sum' as const,
    collect: undefined,
    async get() {
      return { name, help, type: 'counter' as const, aggregator: 'sum' as const, values: [...values()] }
    },
  }
  return family as unknown as Metric
}
