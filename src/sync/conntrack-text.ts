// conntrack(8)'s text, both ways: the lines of `conntrack -L -o extended` and
// `conntrack -E -o extended` read into Flows, and Flows written as the argument lines
// `conntrack -R -` reads. Pure: no I/O. platform/conntrack.ts runs the commands.
//
// A line as conntrack-tools 1.4.7 prints it (`-E` adds the event in front, and for
// changes made through ctnetlink `[USERSPACE] portid=N progname=P` at the end):
//
//   [NEW] ipv4 2 tcp 6 300 ESTABLISHED src=A dst=B sport=P dport=Q [UNREPLIED] src=.. dst=.. sport=.. dport=.. [ASSURED] mark=5 zone=3 use=1
//   ^event ^l3 ^n ^l4 ^n ^timeout ^state ^---- original tuple ----^ ^flag       ^------------ reply tuple -------^ ^flag   ^the rest
//
// - ICMP tuples are `type=T code=C id=I` in place of the ports.
// - The timeout is missing on DESTROY events of expired flows; the state is missing
//   for every protocol but TCP (and SCTP/DCCP, which carpd does not sync).
// - Accounting adds `packets= bytes=` after each tuple, timestamps `delta-time=` and
//   `[start=Sun Nov 22 08:03:30 2026]` (a bracket with spaces), directional zones
//   `zone-orig=`/`zone-reply=`; `-o id` adds a second `id=` after `use=`. Unknown
//   fields are skipped, so a tuple ends at the first token that is not one of its own.
// - Kernel events leave `mark=` out when it is 0; a missing mark or zone is 0.
//
// Whatever goes into a -R line comes from a Flow's typed fields, checked here again
// (dotted quads, integer ranges), so nothing a peer sends can become an option.

import { FAMILY_IPV4, FAMILY_IPV6, type Flow, PROTO_ICMP, PROTO_TCP, PROTO_UDP, TCP_STATES, type Tuple, dstNatAddress, srcNatAddress } from '../wire/flow.js'
import { parseIpv6 } from '../wire/ip.js'

export type ConntrackEvent = 'NEW' | 'UPDATE' | 'DESTROY'

/**
 * Why a line gave no flow: `otherFamily` (not IPv4 or IPv6), `unsupported` (a flow
 * carpd cannot carry: a protocol other than TCP, UDP and ICMP (TCP and UDP for IPv6),
 * or zones that differ per direction), `bad` (unreadable or out of range), `blank`.
 */
export type ParseFailure = 'otherFamily' | 'unsupported' | 'bad' | 'blank'

export type ParsedLine = { ok: true; event: ConntrackEvent | null; flow: Flow } | { ok: false; reason: ParseFailure }

const U16_MAX = 0xffff
const U32_MAX = 0xffff_ffff
/** conntrack -I refuses nothing shorter, and a 0 s flow expires before it is used. */
const INSERT_TIMEOUT_MIN_S = 1

const PROTO_NAMES: ReadonlyMap<string, number> = new Map([['tcp', PROTO_TCP], ['udp', PROTO_UDP], ['icmp', PROTO_ICMP]])
const TCP_STATE_INDEX: ReadonlyMap<string, number> = new Map([
  ...TCP_STATES.map((name, index) => [name, index] as const),
  // Older libnetfilter_conntrack prints state 9 as LISTEN (conntrack(8) still names it so).
  ['LISTEN', 9],
])
const EVENTS: ReadonlyMap<string, ConntrackEvent> = new Map([['[NEW]', 'NEW'], ['[UPDATE]', 'UPDATE'], ['[DESTROY]', 'DESTROY']])

const BAD: ParsedLine = { ok: false, reason: 'bad' }
const BLANK: ParsedLine = { ok: false, reason: 'blank' }
const OTHER_FAMILY: ParsedLine = { ok: false, reason: 'otherFamily' }
const UNSUPPORTED: ParsedLine = { ok: false, reason: 'unsupported' }

/** A decimal integer in 0..max, digits only (no sign, no hex, no exponent), else -1. */
export function parseUint(text: string, max: number): number {
  if (text.length === 0 || text.length > 10) return -1
  let value = 0
  for (let i = 0; i < text.length; i++) {
    const digit = text.charCodeAt(i) - 48
    if (digit < 0 || digit > 9) return -1
    value = value * 10 + digit
  }
  // "007" is not how conntrack prints a number; refusing it keeps one spelling per value.
  if (text.length > 1 && text.charCodeAt(0) === 48) return -1
  return value <= max ? value : -1
}

/** A dotted-quad IPv4 address as conntrack prints it: four 0..255 parts, no leading zeros. */
export function isIpv4(text: string): boolean {
  // By hand, not split() or a regular expression: a snapshot checks 400,000 of these.
  if (text.length < 7 || text.length > 15) return false
  let parts = 0
  let digits = 0
  let value = 0
  let leadingZero = false
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46
    if (c === 46 /* . */) {
      if (digits === 0 || value > 255 || (leadingZero && digits > 1)) return false
      parts++
      digits = 0
      value = 0
      continue
    }
    if (c < 48 || c > 57 || ++digits > 3) return false
    if (digits === 1) leadingZero = c === 48
    value = value * 10 + (c - 48)
  }
  return parts === 4
}

/** One tuple's fields as read; -1 for a number not seen. */
interface TupleText {
  src: string
  dst: string
  sport: number
  dport: number
  type: number
  code: number
  id: number
}
const emptyTuple = (): TupleText => ({ src: '', dst: '', sport: -1, dport: -1, type: -1, code: -1, id: -1 })

/**
 * Reads one line of `conntrack -L -o extended` (event null) or `conntrack -E -o
 * extended`. Never throws.
 */
export function parseConntrackLine(line: string): ParsedLine {
  // Tokens by hand (indexOf, not split): conntrack pads with runs of spaces.
  let end = line.length
  if (end > 0 && line.charCodeAt(end - 1) === 13 /* \r */) end--
  let at = 0
  const next = (): string | undefined => {
    while (at < end && line.charCodeAt(at) === 32) at++
    if (at >= end) return undefined
    let stop = line.indexOf(' ', at)
    if (stop < 0 || stop > end) stop = end
    const token = line.slice(at, stop)
    at = stop
    return token
  }

  let token = next()
  if (token === undefined) return BLANK
  // `-o timestamp` puts `[1700000000.123456]` in front of the event.
  if (/^\[\d+\.\d+\]$/.test(token)) token = next()
  let event: ConntrackEvent | null = null
  if (token !== undefined && token.charCodeAt(0) === 91 /* [ */) {
    event = EVENTS.get(token) ?? null
    if (event === null) return BAD
    token = next()
  }

  // Layer 3: `ipv4 2` or `ipv6 10`.
  let family: Flow['family']
  const l3Number = next()
  if (token === 'ipv4' && l3Number === '2') family = FAMILY_IPV4
  else if (token === 'ipv6' && l3Number === '10') family = FAMILY_IPV6
  // libnetfilter_conntrack names every other family "unknown".
  else return token === 'unknown' && parseUint(l3Number ?? '', 255) >= 0 ? OTHER_FAMILY : BAD
  // IPv6 in RFC 5952 text, the form the sync records decode to.
  const address = family === FAMILY_IPV4 ? (text: string) => (isIpv4(text) ? text : null) : parseIpv6

  // Layer 4: name and number, which must agree.
  const protoName = next()
  const protoNumber = parseUint(next() ?? '', 255)
  if (protoName === undefined || protoNumber < 0) return BAD
  const proto = PROTO_NAMES.get(protoName)
  // Others (gre, sctp, dccp, udplite, icmpv6, "unknown" ...) are real flows carpd does not carry.
  if (proto === undefined || (proto === PROTO_ICMP && family === FAMILY_IPV6)) return /^[a-z][a-z0-9]*$/.test(protoName) ? UNSUPPORTED : BAD
  if (proto !== protoNumber) return BAD

  // Then the timeout (absent on some DESTROY events) and the TCP state.
  token = next()
  let timeoutS = 0
  const timeout = token === undefined ? -1 : parseUint(token, U32_MAX)
  if (timeout >= 0) {
    timeoutS = timeout
    token = next()
  } else if (event !== 'DESTROY') {
    // Only the kernel's DESTROY of an expired flow comes without a timeout.
    return BAD
  }
  let tcpState = 0
  if (proto === PROTO_TCP) {
    const state = token === undefined ? undefined : TCP_STATE_INDEX.get(token)
    if (state === undefined) return BAD
    tcpState = state
    token = next()
  }

  // The tuples and the rest.
  const orig = emptyTuple()
  const reply = emptyTuple()
  let tuples = 0 // tuples begun: 1 = original, 2 = reply
  let inTuple = false
  let unreplied = false
  let assured = false
  let mark = 0
  let zone = 0
  for (; token !== undefined; token = next()) {
    const eq = token.indexOf('=')
    if (eq < 0) {
      if (token === '[UNREPLIED]') unreplied = true
      else if (token === '[ASSURED]') assured = true
      else if (token === '[USERSPACE]') break // portid= and progname= (which may hold spaces) follow
      else if (token.charCodeAt(0) === 91 && !token.endsWith(']')) {
        // A bracket with spaces inside, as `[start=Sun Nov 22 08:03:30 2026]`: skip it whole.
        while (token !== undefined && !token.endsWith(']')) token = next()
        if (token === undefined) break
      }
      inTuple = false
      continue
    }
    const key = token.slice(0, eq)
    const value = token.slice(eq + 1)
    if (key === 'src') {
      const src = address(value)
      if (++tuples > 2 || src === null) return BAD
      ;(tuples === 1 ? orig : reply).src = src
      inTuple = true
      continue
    }
    if (inTuple) {
      const tuple = tuples === 1 ? orig : reply
      switch (key) {
        case 'dst': {
          const dst = address(value)
          if (dst === null) return BAD
          tuple.dst = dst
          continue
        }
        case 'sport':
        case 'dport':
        case 'id':
          if ((tuple[key] = parseUint(value, U16_MAX)) < 0) return BAD
          continue
        case 'type':
        case 'code':
          if ((tuple[key] = parseUint(value, 255)) < 0) return BAD
          continue
      }
      inTuple = false
    }
    if (key === 'mark') {
      if ((mark = parseUint(value, U32_MAX)) < 0) return BAD
    } else if (key === 'zone') {
      if ((zone = parseUint(value, U16_MAX)) < 0) return BAD
    } else if (key === 'zone-orig' || key === 'zone-reply') {
      // A zone per direction: a Flow has one zone, and guessing would load it wrong.
      return UNSUPPORTED
    }
  }

  const origTuple = toTuple(proto, orig)
  const replyTuple = toTuple(proto, reply)
  if (origTuple === null || replyTuple === null) return BAD
  return {
    ok: true,
    event,
    flow: {
      family,
      proto,
      orig: origTuple,
      reply: replyTuple,
      tcpState,
      timeoutS,
      mark,
      zone,
      seenReply: !unreplied,
      assured,
    },
  }
}

function toTuple(proto: number, t: TupleText): Tuple | null {
  if (t.src === '' || t.dst === '') return null
  if (proto === PROTO_ICMP) {
    if (t.type < 0 || t.code < 0 || t.id < 0) return null
    return { src: t.src, dst: t.dst, sport: t.id, dport: (t.type << 8) | t.code }
  }
  if (t.sport < 0 || t.dport < 0) return null
  return { src: t.src, dst: t.dst, sport: t.sport, dport: t.dport }
}

/** A Flow carpd cannot write as conntrack arguments: a bug upstream, or a hostile peer. */
export class FlowTextError extends Error {
  readonly code = 'badFlow'
  override readonly name = 'FlowTextError'
}

function checkedUint(value: number, max: number, what: string): string {
  if (!Number.isInteger(value) || value < 0 || value > max) throw new FlowTextError(`${what} ${String(value)} is not an integer in 0..${max}`)
  return String(value)
}

/** An address of the flow's family, as conntrack reads it (never an option). */
function checkedAddress(flow: Flow, value: string, what: string): string {
  if (flow.family === FAMILY_IPV6) {
    const text = typeof value === 'string' ? parseIpv6(value) : null
    if (text === null) throw new FlowTextError(`${what} ${JSON.stringify(value)} is not an IPv6 address`)
    return text
  }
  if (typeof value !== 'string' || !isIpv4(value)) throw new FlowTextError(`${what} ${JSON.stringify(value)} is not a dotted-quad IPv4 address`)
  return value
}

function protoName(flow: Flow): 'tcp' | 'udp' | 'icmp' {
  if (flow.family !== FAMILY_IPV4 && flow.family !== FAMILY_IPV6) throw new FlowTextError(`family ${String(flow.family)} is not IPv4 or IPv6`)
  if (flow.family === FAMILY_IPV6 && flow.proto !== PROTO_TCP && flow.proto !== PROTO_UDP) throw new FlowTextError(`protocol ${String(flow.proto)} of an IPv6 flow is not tcp or udp`)
  switch (flow.proto) {
    case PROTO_TCP:
      return 'tcp'
    case PROTO_UDP:
      return 'udp'
    case PROTO_ICMP:
      return 'icmp'
    default:
      throw new FlowTextError(`protocol ${String(flow.proto)} is not tcp, udp or icmp`)
  }
}

/** The original tuple as conntrack options: what identifies a flow, with its zone. */
function origArgs(flow: Flow, name: 'tcp' | 'udp' | 'icmp'): string[] {
  const { orig } = flow
  // No -f: conntrack 1.4.7 refuses it with -I (exit 2) and takes the family from -s.
  const args = ['-p', name, '-s', checkedAddress(flow, orig.src, 'original source'), '-d', checkedAddress(flow, orig.dst, 'original destination')]
  if (name === 'icmp') {
    checkedUint(orig.dport, U16_MAX, 'ICMP type and code')
    args.push('--icmp-type', String(orig.dport >> 8), '--icmp-code', String(orig.dport & 0xff), '--icmp-id', checkedUint(orig.sport, U16_MAX, 'ICMP id'))
  } else {
    args.push('--sport', checkedUint(orig.sport, U16_MAX, 'source port'), '--dport', checkedUint(orig.dport, U16_MAX, 'destination port'))
  }
  return args
}

/**
 * One `conntrack -R` line that inserts the flow: its original tuple and, for NAT,
 * `--src-nat`/`--dst-nat` with the address and port the reply tuple shows. The
 * reply tuple itself is never given: the kernel derives it, and only a reply it
 * derives through NAT gets the entry's NAT status. With the NATed reply tuple given
 * explicitly, the kernel sees nothing left to translate, leaves the status unset
 * and delivers the replies to the router itself, which resets the connection
 * (found by the state-sync lab: every stream reset after a failover). ICMP NAT
 * keeps the address only (an id that NAT changed is not restored).
 */
export function insertLine(flow: Flow): string {
  const name = protoName(flow)
  const args = ['-I', ...origArgs(flow, name)]
  const { reply } = flow
  // An IPv6 address with a port goes in brackets (`[2001:db8::9]:2000`): without
  // them conntrack reads the port as the address's last group.
  const natTarget = (address: string, port: number, what: string): string => {
    const text = checkedAddress(flow, address, what)
    if (name === 'icmp') return text
    const portText = checkedUint(port, U16_MAX, `${what} port`)
    return flow.family === FAMILY_IPV6 ? `[${text}]:${portText}` : `${text}:${portText}`
  }
  const snat = srcNatAddress(flow)
  if (snat !== null) args.push('--src-nat', natTarget(snat, reply.dport, 'source NAT address'))
  const dnat = dstNatAddress(flow)
  if (dnat !== null) args.push('--dst-nat', natTarget(dnat, reply.sport, 'destination NAT address'))
  if (name === 'tcp') {
    const state = Number.isInteger(flow.tcpState) ? TCP_STATES[flow.tcpState] : undefined
    if (state === undefined) throw new FlowTextError(`TCP state ${String(flow.tcpState)} is not 0..${TCP_STATES.length - 1}`)
    args.push('--state', state)
  }
  checkedUint(flow.timeoutS, U32_MAX, 'timeout')
  args.push('-t', String(Math.max(INSERT_TIMEOUT_MIN_S, flow.timeoutS)))
  // No -u at all leaves the status empty: conntrack prints such a flow [UNREPLIED].
  const status = [flow.seenReply === true && 'SEEN_REPLY', flow.assured === true && 'ASSURED'].filter(Boolean)
  if (status.length > 0) args.push('-u', status.join(','))
  if (checkedUint(flow.mark, U32_MAX, 'mark') !== '0') args.push('-m', String(flow.mark))
  if (checkedUint(flow.zone, U16_MAX, 'zone') !== '0') args.push('-w', String(flow.zone))
  return args.join(' ')
}

/**
 * Arguments (after `conntrack`) that delete exactly this flow: its original tuple
 * and its zone. Without `-w`, conntrack -D matches the tuple in every zone.
 */
export function deleteArgs(flow: Flow): string[] {
  return ['-D', ...origArgs(flow, protoName(flow)), '-w', checkedUint(flow.zone, U16_MAX, 'zone')]
}

/**
 * What the kernel tells flows apart by (the original tuple and the zone), as a
 * string: two flows with the same key cannot both be in the table.
 */
export function flowKey(flow: Flow): string {
  const { orig } = flow
  return `${flow.proto} ${flow.zone} ${orig.src} ${orig.dst} ${orig.sport} ${orig.dport}`
}
