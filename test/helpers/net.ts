// An in-memory network: transports registered by address:port, datagrams delivered
// through the fake clock after a latency, multicast to every member but the sender.
import type { Endpoint } from '../../src/config/types.js'
import type { Transport } from '../../src/io/transport.js'
import { CARP_MULTICAST_GROUP, CARP_MULTICAST_GROUP6 } from '../../src/carp/constants.js'
import type { FakeClock } from './clock.js'

type Handler = (payload: Buffer, from: Endpoint) => void

export interface Sent {
  atMs: number
  from: Endpoint
  to: Endpoint
  payload: Buffer
  /** The interface the sender named (multicast from a vhid's macvlan, say). */
  iface?: string
}

export class MemNet {
  private readonly members = new Map<string, { ep: Endpoint; handler: Handler; cut: boolean }>()
  readonly log: Sent[] = []
  /** When set, sends from these endpoints fail (a broken interface). */
  readonly failing = new Set<string>()

  constructor(
    private readonly clock: FakeClock,
    private readonly latencyMs = 1,
  ) {}

  transport(ep: Endpoint): Transport {
    const key = `${ep.address}:${ep.port}`
    this.members.set(key, { ep, handler: () => {}, cut: false })
    return {
      send: (payload, to, iface) => {
        if (this.failing.has(key)) return Promise.reject(new Error('ENETUNREACH'))
        this.deliver(ep, to, Buffer.from(payload), iface)
        return Promise.resolve()
      },
      onPacket: (handler) => {
        this.members.get(key)!.handler = handler
      },
      close: () => {
        this.members.delete(key)
        return Promise.resolve()
      },
    }
  }

  /** Cuts a member off (its cable pulled): it neither sends nor receives. */
  cut(ep: Endpoint, cut = true): void {
    this.members.get(`${ep.address}:${ep.port}`)!.cut = cut
  }

  /** Injects a datagram as if `from` had sent it. */
  inject(from: Endpoint, to: Endpoint, payload: Buffer): void {
    this.deliver(from, to, payload)
  }

  private deliver(from: Endpoint, to: Endpoint, payload: Buffer, iface?: string): void {
    const sender = this.members.get(`${from.address}:${from.port}`)
    if (sender?.cut) return
    this.log.push({ atMs: this.clock.now(), from, to, payload, ...(iface === undefined ? {} : { iface }) })
    const targets =
      to.address === CARP_MULTICAST_GROUP || to.address === CARP_MULTICAST_GROUP6
        ? [...this.members.values()].filter((m) => m.ep.port === to.port && m !== sender)
        : [this.members.get(`${to.address}:${to.port}`)].filter((m) => m !== undefined)
    for (const m of targets) {
      this.clock.at(this.clock.now() + this.latencyMs, () => {
        if (!m.cut && this.members.get(`${m.ep.address}:${m.ep.port}`) === m) m.handler(payload, from)
      })
    }
  }
}
