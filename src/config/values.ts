// Parsers for each ValueType of the schema: text from the file → typed value plus
// its normalised text (what `carpd check` prints). Parsers never throw.
import { IFNAME_MAX, IPV4_PREFIX_MAX, IPV6_PREFIX_MAX, MS_PER_S, PORT_MAX, PORT_MIN } from './constants.js'
import { ipv6Groups, ipv6Text, isIpv6, parseIpv4 } from '../wire/ip.js'
import { formatMs, type KeyRow } from './schema.js'
import type { Cidr, Endpoint } from './types.js'

export type Value = string | number | boolean | Cidr | Endpoint | string[] | Cidr[] | Endpoint[] | null

export type Parsed =
  | { ok: true; value: Value; text: string }
  | { ok: false; code: 'badValue' | 'outOfRange'; why: string }

type Parser = (text: string, row: KeyRow) => Parsed

const ok = (value: Value, text: string): Parsed => ({ ok: true, value, text })
const bad = (why: string): Parsed => ({ ok: false, code: 'badValue', why })
const outOfRange = (why = 'out of range'): Parsed => ({ ok: false, code: 'outOfRange', why })

export function parseValue(row: KeyRow, text: string): Parsed {
  // An empty value is allowed exactly where the default is empty: it means "unset".
  if (text === '') return row.default === '' ? ok(emptyValue(row), '') : bad('empty value')
  return PARSERS[row.type](text, row)
}

/** The typed value of an unset optional key ('' default). */
export function emptyValue(row: KeyRow): Value {
  switch (row.type) {
    case 'endpoint':
      return null
    case 'endpointList':
    case 'ipv4List':
    case 'cidrList':
      return []
    default:
      return ''
  }
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/
const INT_RE = /^[+-]?\d+$/
// Digits with an optional fraction; fractions are what makes 1.5s possible.
const DECIMAL_RE = /^(\d+)(?:\.(\d+))?$/

// A Map, not an object: `constructor` or `__proto__` must not read as a value.
const BOOL_WORDS: ReadonlyMap<string, boolean> = new Map([
  ['yes', true], ['true', true], ['on', true], ['1', true],
  ['no', false], ['false', false], ['off', false], ['0', false],
])

const PARSERS: Readonly<Record<KeyRow['type'], Parser>> = {
  string: (text) => ok(text, text),
  name: (text) => (NAME_RE.test(text) ? ok(text, text) : bad('not a valid name')),
  ifname: (text) => {
    if (!NAME_RE.test(text)) return bad('not a valid interface name')
    return text.length <= IFNAME_MAX ? ok(text, text) : bad(`longer than ${IFNAME_MAX} characters (the kernel's limit)`)
  },
  int: (text, row) => parseInt(text, row.min ?? 0, row.max ?? Number.MAX_SAFE_INTEGER),
  port: (text) => parseInt(text, PORT_MIN, PORT_MAX),
  seconds: parseSeconds,
  bool: parseBool,
  enum: (text, row) => ((row.values ?? []).includes(text) ? ok(text, text) : bad('not one of the allowed words')),
  duration: parseDuration,
  percent: parsePercent,
  ipv4: (text) => {
    const address = parseIpv4(text)
    return address === null ? bad('not an IPv4 address') : ok(address, address)
  },
  ipv4List: (text) => parseList(text, (item) => {
    const address = parseIpv4(item)
    return address === null ? bad(`"${item}" is not an IPv4 address`) : ok(address, address)
  }),
  cidrList: (text) => parseList(text, parseCidr),
  endpoint: parseEndpoint,
  endpointList: (text) => parseList(text, parsePeer),
  // Control characters in a path are always a typo or a paste accident.
  path: (text) => (text.startsWith('/') && !/[\x00-\x1f]/.test(text) ? ok(text, text) : bad('not an absolute path')),
}

function parseInt(text: string, min: number, max: number): Parsed {
  if (!INT_RE.test(text)) return bad('not a whole number')
  const n = Number(text)
  return n < min || n > max ? outOfRange() : ok(n, String(n))
}

/** advbase: whole seconds, written bare (SPEC: `advbase = 1`) or with an s suffix. */
function parseSeconds(text: string, row: KeyRow): Parsed {
  const match = /^(\d+)s?$/.exec(text)
  if (match === null) return bad('not a whole number of seconds')
  return parseInt(match[1], row.min ?? 0, row.max ?? Number.MAX_SAFE_INTEGER)
}

function parseBool(text: string): Parsed {
  const value = BOOL_WORDS.get(text.toLowerCase())
  return value === undefined ? bad('not yes or no') : ok(value, value ? 'yes' : 'no')
}

/**
 * 250ms, 1.5s, or a bare number in the row's unit. Worked out on the digits rather
 * than with floating point, so that 1.1s is exactly 1100 ms.
 */
function parseDuration(text: string, row: KeyRow): Parsed {
  const match = /^([\d.]+)(ms|s)?$/.exec(text)
  const digits = match === null ? null : DECIMAL_RE.exec(match[1])
  if (match === null || digits === null) return bad('not a duration')
  const unit = match[2] ?? row.unit ?? 's'
  const whole = Number(digits[1])
  const fraction = digits[2] ?? ''

  let ms: number
  if (unit === 's') {
    // Only three decimals of a second are whole milliseconds.
    if (/[1-9]/.test(fraction.slice(3))) return bad('finer than a millisecond')
    ms = whole * MS_PER_S + Number(fraction.slice(0, 3).padEnd(3, '0'))
  } else {
    if (/[1-9]/.test(fraction)) return bad('finer than a millisecond')
    ms = whole
  }
  if (ms < (row.min ?? 0) || ms > (row.max ?? Number.MAX_SAFE_INTEGER)) return outOfRange()
  return ok(ms, formatMs(ms))
}

/** `5%` or the same ratio as a fraction, `0.05`; stored as the fraction. */
function parsePercent(text: string): Parsed {
  const match = /^([\d.]+)(%?)$/.exec(text)
  if (match === null || DECIMAL_RE.exec(match[1]) === null) return bad('not a percentage')
  const number = Number(match[1])
  const isPercent = match[2] === '%'
  const fraction = isPercent ? number / 100 : number
  if (fraction > 1) return outOfRange()
  // toPrecision drops the binary noise of 0.07 * 100 = 7.000000000000001.
  const percent = isPercent ? number : Number((number * 100).toPrecision(12))
  return ok(fraction, `${percent}%`)
}

export { parseIpv4 }

/** address/prefix as carpd writes it (fence lines), or null. */
export function cidrFromText(text: string): Cidr | null {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(text)
  if (match === null) return null
  const v6 = isIpv6(match[1]!)
  const address = v6 ? vipIpv6(match[1]!) : parseIpv4(match[1]!)
  if (address === null || typeof address !== 'string' || Number(match[2]) > (v6 ? IPV6_PREFIX_MAX : IPV4_PREFIX_MAX)) return null
  return { address, prefix: Number(match[2]) }
}

/**
 * An IPv6 address a VIP may be, canonical (wire/ip.ts); or why not. Not the
 * unspecified or loopback address, not multicast, not an IPv4-mapped one.
 */
function vipIpv6(text: string): string | { why: string } | null {
  const groups = ipv6Groups(text)
  if (groups === null) return null
  const address = ipv6Text(groups)
  if (address === '::' || address === '::1') return { why: `${address} cannot be a VIP` }
  if (groups[0]! >= 0xff00) return { why: `${address} is a multicast address` }
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return { why: `${address} is an IPv4-mapped address: write the IPv4 address` }
  // ::/96, IPv4-compatible (deprecated): ip prints them as ::a.b.c.d, which would never match.
  if (groups.slice(0, 6).every((g) => g === 0)) return { why: `${address} is an IPv4-compatible address (::/96)` }
  return address
}

function parseCidr(text: string): Parsed {
  if (!text.includes('/')) return bad(`"${text}" has no /prefix`)
  const match = /^([^/]+)\/(\d+)$/.exec(text)
  if (match === null) return bad(`"${text}" is not address/prefix`)
  const v6 = isIpv6(match[1])
  const address = v6 ? vipIpv6(match[1]) : parseIpv4(match[1])
  if (address === null) return bad(`"${match[1]}" is not an ${v6 ? 'IPv6' : 'IPv4'} address`)
  if (typeof address !== 'string') return bad(address.why)
  const prefix = Number(match[2])
  if (prefix > (v6 ? IPV6_PREFIX_MAX : IPV4_PREFIX_MAX)) return outOfRange(`prefix /${match[2]} is out of range`)
  const cidr: Cidr = { address, prefix }
  return ok(cidr, `${address}/${prefix}`)
}

/** A unicast CARP peer: IPv4[:port], an IPv6 address alone, or [IPv6]:port. */
function parsePeer(text: string): Parsed {
  if (!text.startsWith('[') && (text.match(/:/g) ?? []).length < 2) return parseEndpoint(text)
  const match = /^\[([^\]]+)\](?::(.*))?$/.exec(text) ?? /^([^[\]]+)$/.exec(text)
  const groups = match === null ? null : ipv6Groups(match[1]!)
  if (match === null || groups === null) return bad(`"${text}" is not an IPv6 address, alone or as [address]:port`)
  const address = ipv6Text(groups)
  if (groups[0]! >= 0xff00 || address === '::') return bad(`${address} cannot be a unicast peer`)
  if (match[2] === undefined) return ok({ address, port: 0 }, address)
  const port = parseInt(match[2], PORT_MIN, PORT_MAX)
  if (!port.ok) return port.code === 'outOfRange' ? outOfRange(`port ${match[2]} is out of range`) : bad(`port "${match[2]}" is not a number`)
  return ok({ address, port: port.value as number }, `[${address}]:${port.text}`)
}

function parseEndpoint(text: string): Parsed {
  const match = /^([^:]+)(?::(.*))?$/.exec(text)
  const address = match === null ? null : parseIpv4(match[1])
  if (match === null || address === null) return bad(`"${text}" is not an IPv4 address with an optional :port`)
  if (match[2] === undefined) return ok({ address, port: 0 }, address)

  const port = parseInt(match[2], PORT_MIN, PORT_MAX)
  if (!port.ok) return port.code === 'outOfRange' ? outOfRange(`port ${match[2]} is out of range`) : bad(`port "${match[2]}" is not a number`)
  return ok({ address, port: port.value as number }, `${address}:${port.text}`)
}

/** Comma separated items, each parsed alone; the first bad item is the error. */
function parseList(text: string, parseItem: (item: string) => Parsed): Parsed {
  const values: Value[] = []
  const texts: string[] = []
  for (const item of text.split(',').map((s) => s.trim())) {
    if (item === '') return bad('empty item in the list')
    const parsed = parseItem(item)
    if (!parsed.ok) return parsed
    values.push(parsed.value)
    texts.push(parsed.text)
  }
  // Every item came from the same item parser, so they share one type.
  return ok(values as string[] | Cidr[] | Endpoint[], texts.join(', '))
}

/** An endpoint as the file writes it: address:port, or the address alone when the port is the default (0). */
export function endpointText(ep: Endpoint): string {
  if (!ep.port) return ep.address
  return isIpv6(ep.address) ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`
}
