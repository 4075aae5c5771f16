import type { PartResult } from './report.js'
export async function soak(_seconds: number): Promise<PartResult> {
  throw new Error('not yet')
}
