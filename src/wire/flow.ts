// One connection-tracking entry as carpd syncs it: both tuples (so a NAT mapping
// travels with its connection), the TCP state, the remaining timeout, the mark and
// the zone. The backends turn their table's text into Flows (sync/conntrack-text.ts
// for Linux); wire/sync.ts turns Flows into fixed-size records.

/** Address family, as the sync records carry it. */
export const FAMILY_IPV4 = 4
export const FAMILY_IPV6 = 6

export const PROTO_ICMP = 1
export const PROTO_TCP = 6
export const PROTO_UDP = 17

/**
 * TCP states in the Linux kernel's order (enum tcp_conntrack,
 * include/uapi/linux/netfilter/nf_conntrack_tcp.h), which is also conntrack(8)'s
 * spelling. The index is what the wire carries.
 */
export const TCP_STATES = [
  'NONE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'CLOSE_WAIT',
  'LAST_ACK',
  'TIME_WAIT',
  'CLOSE',
  'SYN_SENT2',
] as const
export type TcpState = (typeof TCP_STATES)[number]

/**
 * One direction of a connection. For ICMP, `sport` is the echo id and `dport` is
 * `type << 8 | code`, as conntrack keys ICMP flows by type, code and id.
 */
export interface Tuple {
  src: string // dotted IPv4, or IPv6 in RFC 5952 text
  dst: string
  sport: number // 0..65535
  dport: number
}

export interface Flow {
  family: typeof FAMILY_IPV4 | typeof FAMILY_IPV6
  proto: number // IP protocol number, 0..255
  orig: Tuple // as the first packet saw it
  reply: Tuple // as the answer travels; differs from orig swapped when NAT applies
  tcpState: number // index into TCP_STATES; 0 (NONE) for other protocols
  timeoutS: number // seconds left when the change was read
  mark: number // ct mark, u32
  zone: number // ct zone, u16
  seenReply: boolean // the kernel's SEEN_REPLY status (conntrack prints [UNREPLIED] when false)
  assured: boolean // the kernel's ASSURED status
}

const hasPorts = (flow: Flow): boolean => flow.proto === PROTO_TCP || flow.proto === PROTO_UDP

/**
 * The address the kernel source-NATs to, when the reply is not simply the original
 * swapped (a port-only change, as MASQUERADE makes on a clash, counts too).
 */
export function srcNatAddress(flow: Flow): string | null {
  const portChanged = hasPorts(flow) && flow.reply.dport !== flow.orig.sport
  return flow.reply.dst !== flow.orig.src || portChanged ? flow.reply.dst : null
}

/** The address the kernel destination-NATs to, likewise. */
export function dstNatAddress(flow: Flow): string | null {
  const portChanged = hasPorts(flow) && flow.reply.sport !== flow.orig.dport
  return flow.reply.src !== flow.orig.dst || portChanged ? flow.reply.src : null
}
