// Health probes of one WAN (SPEC "Multi-WAN"): every round asks each of the WAN's
// probe targets one DNS question; the round is good when at least `need` of them
// answer within the timeout (k of n, so one resolver down for maintenance does not
// take a whole uplink with it).
//
// Pure: the caller sends the bytes startRound returns from a socket bound to the
// WAN's address, hands every datagram that comes back to reply(), calls tick() at
// nextWakeMs(), and gives the finished rounds to WanHealth. Time is monotonic ms.
//
// Each round keeps its own deadline, so rounds overlap when the interval is shorter
// than the timeout (the defaults, 250 ms and 1 s): a probe really has `timeoutMs` to
// come back, and a latency above the interval can still be measured.
//
// A reply counts only if its id, its question and its source address all match one
// probe: an id alone is 16 bits, and a source check alone is what a spoofer can fake
// most easily; together they keep a stray or forged datagram from reviving a dead
// link.

import { decodeResponse, DNS_TYPE_NS, encodeQuery, type DnsDecodeError } from '../wire/dns.js'

/** The question every probe asks: the root's NS records, which any resolver has cached. */
export const PROBE_QNAME = '.'
export const PROBE_QTYPE = DNS_TYPE_NS
/**
 * Rounds open at once. Rounds overlap when the probe interval is shorter than the
 * timeout (the defaults: 250 ms and 1 s); the schema allows at most 10 s / 100 ms =
 * 100. Past this, the oldest round is closed as far as it got, so a caller that
 * starts rounds too fast cannot grow memory without bound.
 */
export const PROBE_OPEN_ROUNDS_MAX = 128
/**
 * Closed rounds whose probes are remembered, so a reply that comes after its round
 * closed is counted 'late' (a slow path) rather than 'unknownId' (a stranger).
 */
export const PROBE_LATE_MEMORY_ROUNDS = 4
/** Draws of a fresh id before accepting one already in flight to the same target. */
const ID_DRAWS_MAX = 4
const ID_BYTES = 2

/** One finished round, for WanHealth. */
export interface RoundResult {
  startedMs: number // monotonic ms when the round's queries were made
  answered: number // targets that answered within the timeout
  of: number // targets asked
  good: boolean // answered >= need
  latencyMs: number | null // mean of the answers' round trips; null when none answered
}

/** A query to send: `bytes` as one UDP datagram to `target` port 53 through the WAN. */
export interface ProbeQuery {
  target: string
  id: number
  bytes: Buffer
}

export type ReplyOutcome = 'ok' | 'unknownId' | 'wrongTarget' | 'late' | 'duplicate' | DnsDecodeError

/**
 * What the prober was built with. `targets` are IPv4 addresses as dgram reports a
 * sender (rinfo.address); `random(n)` returns n random bytes (crypto.randomBytes).
 */
export interface WanProberOptions {
  wan: number
  targets: string[]
  need: number // 1..targets.length
  timeoutMs: number // a probe not answered within this is lost
  random(bytes: number): Buffer
}

export interface WanProberStatus {
  wan: number
  targets: string[]
  need: number
  openRounds: number
  rounds: number // rounds finished
  goodRounds: number
  failedRounds: number
  sent: number // queries made
  replies: Record<ReplyOutcome, number> // every datagram handed to reply(), by outcome
}

interface Probe {
  target: string
  id: number
  sentMs: number
  answered: boolean
  rttMs: number
}

interface Round {
  startedMs: number
  deadlineMs: number
  probes: Probe[]
  answered: number
  closed: boolean
}

export class WanProber {
  private readonly wan: number
  private readonly targets: string[]
  private readonly need: number
  private readonly timeoutMs: number
  private readonly random: (bytes: number) => Buffer
  /** Open rounds, oldest first. */
  private open: Round[] = []
  /** Recently closed rounds, oldest first: replies to them are 'late' or 'duplicate'. */
  private closed: Round[] = []
  /** Finished rounds not yet handed out by tick(), with the time they finished. */
  private done: { result: RoundResult; atMs: number }[] = []
  private readonly counters = { rounds: 0, goodRounds: 0, failedRounds: 0, sent: 0 }
  private readonly replies: Record<ReplyOutcome, number> = {
    ok: 0,
    unknownId: 0,
    wrongTarget: 0,
    late: 0,
    duplicate: 0,
    short: 0,
    notResponse: 0,
    badQuestion: 0,
    badName: 0,
  }

  /**
   * Throws RangeError on options config/load.ts never produces (a bug in the caller).
   * A target listed twice is not one of them: it is asked twice per round, with two ids.
   */
  constructor(opts: WanProberOptions) {
    if (opts.targets.length === 0) throw new RangeError(`wan${opts.wan}: no probe targets`)
    if (!Number.isInteger(opts.need) || opts.need < 1 || opts.need > opts.targets.length) {
      throw new RangeError(`wan${opts.wan}: need ${opts.need}: an integer 1..${opts.targets.length}`)
    }
    if (!(opts.timeoutMs > 0)) throw new RangeError(`wan${opts.wan}: timeout ${opts.timeoutMs} ms: above 0`)
    this.wan = opts.wan
    this.targets = [...opts.targets]
    this.need = opts.need
    this.timeoutMs = opts.timeoutMs
    this.random = opts.random
  }

  /** Starts a round: one query per target, in the targets' order. */
  startRound(nowMs: number): ProbeQuery[] {
    this.expire(nowMs)
    if (this.open.length >= PROBE_OPEN_ROUNDS_MAX) this.close(this.open[0]!, nowMs)
    const round: Round = { startedMs: nowMs, deadlineMs: nowMs + this.timeoutMs, probes: [], answered: 0, closed: false }
    // Open before the ids are drawn, so a target listed twice gets two different ones.
    this.open.push(round)
    for (const target of this.targets) {
      const id = this.freshId(target)
      round.probes.push({ target, id, sentMs: nowMs, answered: false, rttMs: 0 })
    }
    this.counters.sent += round.probes.length
    return round.probes.map((p) => ({ target: p.target, id: p.id, bytes: encodeQuery(p.id, PROBE_QNAME, PROBE_QTYPE) }))
  }

  /** A datagram `bytes` from address `from` came back on this WAN's socket. */
  reply(from: string, bytes: Buffer, nowMs: number): ReplyOutcome {
    // Rounds past their deadline close first: an answer after the timeout is late
    // even when no tick() ran in between.
    this.expire(nowMs)
    const outcome = this.match(from, bytes, nowMs)
    this.replies[outcome]++
    return outcome
  }

  /** Rounds that finished (every target answered, or the timeout passed), oldest first. */
  tick(nowMs: number): RoundResult[] {
    this.expire(nowMs)
    const results = this.done.map((d) => d.result)
    this.done = []
    return results
  }

  /**
   * When tick() has something to do: now or earlier when finished rounds are waiting,
   * else the earliest open round's deadline; Infinity when nothing is in flight.
   */
  nextWakeMs(): number {
    let next = Infinity
    for (const d of this.done) next = Math.min(next, d.atMs)
    for (const r of this.open) next = Math.min(next, r.deadlineMs)
    return next
  }

  status(): WanProberStatus {
    return {
      wan: this.wan,
      targets: [...this.targets],
      need: this.need,
      openRounds: this.open.length,
      ...this.counters,
      replies: { ...this.replies },
    }
  }

  private match(from: string, bytes: Buffer, nowMs: number): ReplyOutcome {
    const msg = decodeResponse(bytes)
    if (!msg.ok) return msg.error
    // Newest first: if an id ever repeats for one target, the live probe wins.
    const candidates: { round: Round; probe: Probe }[] = []
    for (const round of [...this.open, ...this.closed].reverse()) {
      for (const probe of round.probes) if (probe.id === msg.id) candidates.push({ round, probe })
    }
    if (candidates.length === 0) return 'unknownId'
    const hit = candidates.find((c) => c.probe.target === from)
    // Our id from another address: a forgery, or a target answering from an address
    // other than the one asked (a multi-homed resolver); neither proves this path.
    if (hit === undefined) return 'wrongTarget'
    // RFC 4343: names compare without regard to ASCII case.
    if (msg.qname.toLowerCase() !== PROBE_QNAME || msg.qtype !== PROBE_QTYPE) return 'badQuestion'
    if (hit.probe.answered) return 'duplicate'
    if (hit.round.closed) return 'late'
    hit.probe.answered = true
    hit.probe.rttMs = nowMs - hit.probe.sentMs
    hit.round.answered++
    if (hit.round.answered === hit.round.probes.length) this.close(hit.round, nowMs)
    return 'ok'
  }

  /** Closes every open round whose deadline has come. */
  private expire(nowMs: number): void {
    for (const round of [...this.open]) if (nowMs >= round.deadlineMs) this.close(round, nowMs)
  }

  /** Closes a round as far as it got and queues its result for tick(). */
  private close(round: Round, nowMs: number): void {
    round.closed = true
    this.open = this.open.filter((r) => r !== round)
    this.closed.push(round)
    if (this.closed.length > PROBE_LATE_MEMORY_ROUNDS) this.closed.shift()
    const answers = round.probes.filter((p) => p.answered)
    const good = round.answered >= this.need
    const latencyMs = answers.length === 0 ? null : answers.reduce((sum, p) => sum + p.rttMs, 0) / answers.length
    this.done.push({ result: { startedMs: round.startedMs, answered: round.answered, of: round.probes.length, good, latencyMs }, atMs: nowMs })
    this.counters.rounds++
    if (good) this.counters.goodRounds++
    else this.counters.failedRounds++
  }

  /**
   * A random 16-bit id not already in flight to `target`, so a reply always names one
   * probe. After a few draws a repeat is accepted: a broken random source must not
   * hang the agent, and match() then prefers the newest probe.
   */
  private freshId(target: string): number {
    let id = 0
    for (let draw = 0; draw < ID_DRAWS_MAX; draw++) {
      id = this.random(ID_BYTES).readUInt16BE(0)
      if (!this.inFlight(target, id)) break
    }
    return id
  }

  private inFlight(target: string, id: number): boolean {
    return [...this.open, ...this.closed].some((r) => r.probes.some((p) => p.target === target && p.id === id))
  }
}
