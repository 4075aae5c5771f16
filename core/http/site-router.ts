// Host header ─▶ site name. Runs before any route, for HTTP and websocket upgrades alike,
// so nothing downstream ever sees an unnormalised or unvetted host.
import { domainToASCII } from 'node:url'
import { isIPv6 } from 'node:net'
import { ERR_BAD_HOST } from '../errors.js'

const MAX_HOST = 253
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/
const PORT = /^\d{1,5}$/
/** Dot-separated letters, digits and hyphens whose last label holds a letter and is not hex (0x…). */
const PLAIN = /^(?:[a-z0-9-]+\.)*(?!0x)(?=[a-z0-9-]*[a-z-])[a-z0-9-]+$/
// Printable ASCII or any non-ASCII letter (IDN); controls and whitespace are never valid.
const RAW_ALLOWED = /^[\x21-\x7e\u00a0-\uffff]+$/

function describe(raw: string): string {
  return JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}…` : raw)
}

const UTF8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Node reads header bytes as latin1, so a Host sent as UTF-8 (an IDN not yet in punycode)
 * arrives as mojibake and would name another site. Reads such bytes as UTF-8 when they are.
 */
function headerText(raw: string): string {
  // eslint-disable-next-line no-control-regex -- the test is for bytes outside latin1, \x00 included
  if (!/[\x80-\xff]/.test(raw) || /[^\x00-\xff]/.test(raw)) return raw
  try {
    return UTF8.decode(Buffer.from(raw, 'latin1'))
  } catch {
    return raw
  }
}

/**
 * Normalises a Host header: lowercase, port and trailing dot stripped, IDN to punycode,
 * then checked label by label. Throws WIKIFARM_ERR_BAD_HOST (400) for anything that is not
 * a hostname or an IP literal as a browser sends it. Bracketed IPv6 literals are kept in
 * brackets, in their canonical form.
 */
export function normalizeHost(raw: string | undefined): string {
  if (raw === undefined || raw === '') throw new ERR_BAD_HOST('missing')
  if (raw.length > MAX_HOST + 7 || !RAW_ALLOWED.test(raw)) throw new ERR_BAD_HOST(describe(raw))
  let host = headerText(raw)
  if (host.startsWith('[')) {
    const close = host.indexOf(']')
    const rest = close < 0 ? '' : host.slice(close + 1)
    if (close < 0 || (rest !== '' && !(rest.startsWith(':') && PORT.test(rest.slice(1))))) {
      throw new ERR_BAD_HOST(describe(raw))
    }
    const address = host.slice(1, close).toLowerCase()
    // A zone id (fe80::1%eth0, or %25eth0 as RFC 6874 writes it in a URL) names an interface
    // of the sender's machine, not a host: browsers never send one, and as a site name it
    // would be a folder named after someone else's network card.
    if (address.includes('%') || !isIPv6(address)) throw new ERR_BAD_HOST(describe(raw))
    // One address, one site: [2001:DB8:0::1] and [2001:db8::1] are the same host.
    return new URL(`http://[${address}]/`).hostname
  }
  const colon = host.lastIndexOf(':')
  if (colon >= 0) {
    if (!PORT.test(host.slice(colon + 1)) || Number(host.slice(colon + 1)) > 65535) {
      throw new ERR_BAD_HOST(describe(raw))
    }
    host = host.slice(0, colon)
  }
  if (host.endsWith('.')) host = host.slice(0, -1)
  if (host === '' || host.includes('..') || host.startsWith('.')) throw new ERR_BAD_HOST(describe(raw))
  // The WHATWG host parser, as browsers run it: lowercases, maps IDN to punycode, checks
  // punycode labels, and reads a name ending in a number as IPv4 ('' when that fails). A
  // plain name (letters, digits, hyphens; no punycode; not ending in a number) is its own
  // result, so the common Host skips the parser: it runs on every request.
  const lower = host.toLowerCase()
  const ascii = PLAIN.test(lower) && !lower.includes('xn--') ? lower : domainToASCII(host)
  if (ascii === '' || ascii.length > MAX_HOST) throw new ERR_BAD_HOST(describe(raw))
  // An ASCII host must already be in that form: '0x7f.1' or '2130706433' is 127.0.0.1 to a
  // browser, which would have sent '127.0.0.1'; such spellings are refused, not folded.
  if (/^[\x21-\x7e]+$/.test(host) && ascii !== lower) throw new ERR_BAD_HOST(describe(raw))
  if (!ascii.split('.').every((label) => LABEL.test(label))) throw new ERR_BAD_HOST(describe(raw))
  return ascii
}

/** Drops a leading `www.`, as the reference farm serves www.example.com from example.com. */
export function stripWww(host: string): string {
  return host.startsWith('www.') && host.length > 4 ? host.slice(4) : host
}
