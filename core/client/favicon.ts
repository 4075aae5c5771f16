// Site flags: the owner's favicon.png from status/, else a flag drawn from the site name, so
// every site of a farm is told apart at a glance (the reference draws one in the browser).
import { createHash } from 'node:crypto'
import { crc32, deflateSync } from 'node:zlib'

const SIZE = 32
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8)
  head.writeUInt32BE(data.length, 0)
  head.write(type, 4, 'ascii')
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0)
  return Buffer.concat([head, data, crc])
}

/** A 32×32 PNG: a diagonal blend between two colours derived from the site name. */
export function drawFlag(site: string): Buffer {
  const h = createHash('sha256').update(site).digest()
  const a = [h[0] ?? 0, h[1] ?? 0, h[2] ?? 0]
  const b = [h[3] ?? 0, h[4] ?? 0, h[5] ?? 0]
  const rows: Buffer[] = []
  for (let y = 0; y < SIZE; y++) {
    const row = Buffer.alloc(1 + SIZE * 3)
    for (let x = 0; x < SIZE; x++) {
      const t = (x + y) / (2 * SIZE - 2)
      for (let c = 0; c < 3; c++) row[1 + x * 3 + c] = Math.round((a[c] ?? 0) * (1 - t) + (b[c] ?? 0) * t)
    }
    rows.push(row)
  }
  const header = Buffer.alloc(13)
  header.writeUInt32BE(SIZE, 0)
  header.writeUInt32BE(SIZE, 4)
  header[8] = 8 // bit depth
  header[9] = 2 // truecolour
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

/** Decodes the `image` field the client posts (a data URL or bare base64); null if not a PNG. */
export function decodeFlag(image: unknown): Buffer | null {
  if (typeof image !== 'string') return null
  const base64 = image.replace(/^data:image\/png;base64,/, '')
  if (!/^[A-Za-z0-9+/=\s]+$/.test(base64)) return null
  const png = Buffer.from(base64, 'base64')
  return png.subarray(0, 8).equals(PNG_SIGNATURE) ? png : null
}
