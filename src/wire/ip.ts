// IP addresses as carpd keeps them: strings in the form the kernel prints them (`ip`
// output, socket peers), so a VIP read from the config file and the same address
// listed by `ip -j addr` compare equal. IPv4 as a dotted quad; IPv6 in RFC 5952's
// canonical text (lower case, no leading zeros, the longest run of two or more zero
// groups as "::", the first of equal runs), which is what inet_ntop(3) writes (but
// for IPv4-mapped addresses, which inet_ntop writes with a dotted tail).

/** IPv6 addresses are the ones with a colon; carpd validates every address it keeps. */
export function isIpv6(address: string): boolean {
  return address.includes(':')
}

/** Dotted quad to an unsigned 32-bit number; the caller passes validated addresses. */
export function ipv4ToUint32(address: string): number {
  return address.split('.').reduce((acc, part) => acc * 256 + Number(part), 0)
}

/** Dotted quad, each part 0..255 without leading zeros (which some tools read as octal). */
export function parseIpv4(text: string): string | null {
  const parts = text.split('.')
  if (parts.length !== 4) return null
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return null
  }
  return text
}

/**
 * The eight 16-bit groups of an IPv6 address in any RFC 4291 text form (one "::", a
 * dotted-quad tail), or null. A zone ("%eth0") is not an address: null.
 */
export function ipv6Groups(text: string): number[] | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || text.length > 45) return null
  const halves = text.split('::')
  if (halves.length > 2) return null
  // A dotted quad may only end the whole address.
  const parse = (part: string, last: boolean): number[] | null => {
    if (part === '') return []
    const groups: number[] = []
    const items = part.split(':')
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!
      if (last && i === items.length - 1 && item.includes('.')) {
        const v4 = parseIpv4(item)
        if (v4 === null) return null
        const n = ipv4ToUint32(v4)
        groups.push(n >>> 16, n & 0xffff)
      } else if (/^[0-9a-fA-F]{1,4}$/.test(item)) {
        groups.push(parseInt(item, 16))
      } else {
        return null
      }
    }
    return groups
  }
  const head = parse(halves[0]!, halves.length === 1)
  const tail = halves.length === 2 ? parse(halves[1]!, true) : []
  if (head === null || tail === null) return null
  if (halves.length === 1) return head.length === 8 ? head : null
  const zeros = 8 - head.length - tail.length
  if (zeros < 1) return null
  return [...head, ...new Array<number>(zeros).fill(0), ...tail]
}

/** RFC 5952 text of eight groups (no dotted-quad tail: carpd keeps no mapped addresses). */
export function ipv6Text(groups: readonly number[]): string {
  let best = -1
  let bestLen = 1 // a single zero group is never shortened
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) [best, bestLen] = [i, j - i]
    i = j
  }
  const hex = (gs: readonly number[]) => gs.map((g) => g.toString(16)).join(':')
  if (best < 0) return hex(groups)
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`
}

/** Any IPv6 text form to the canonical one, or null. */
export function parseIpv6(text: string): string | null {
  const groups = ipv6Groups(text)
  return groups === null ? null : ipv6Text(groups)
}

/** The 16 bytes of a validated IPv6 address. */
export function ipv6Bytes(address: string): Buffer {
  const out = Buffer.alloc(16)
  ;(ipv6Groups(address) ?? []).forEach((g, i) => out.writeUInt16BE(g, i * 2))
  return out
}

/** Is `address` inside address/prefix? Both of one family; an address of the other family is not. */
export function inSubnet(net: { address: string; prefix: number }, address: string): boolean {
  if (isIpv6(net.address) !== isIpv6(address)) return false
  if (!isIpv6(address)) {
    const shift = 32 - net.prefix
    if (shift >= 32) return true
    return ipv4ToUint32(net.address) >>> shift === ipv4ToUint32(address) >>> shift
  }
  const a = ipv6Bytes(net.address)
  const b = ipv6Bytes(address)
  const whole = Math.floor(net.prefix / 8)
  if (!a.subarray(0, whole).equals(b.subarray(0, whole))) return false
  const bits = net.prefix % 8
  if (bits === 0) return true
  const mask = (0xff << (8 - bits)) & 0xff
  return (a[whole]! & mask) === (b[whole]! & mask)
}

/**
 * fe80::/10: link-local, where IPv6 adverts to ff02::12 come from. Of a validated
 * address: its first group is fe80..febf, always written with four digits (no
 * allocation: state sync asks this of every IPv6 flow change).
 */
export function isIpv6LinkLocal(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address)
}
