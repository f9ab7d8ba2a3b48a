// Replay protection for counters made of a random boot epoch (high 32 bits) and a
// sequence number (low 32 bits), as SPEC "CARP behaviour" asks: per sender, a
// counter that never goes backwards, checked with a sliding window (the scheme of
// RFC 6479 and wireguard-go's replay/).
//
// Epochs are random, so they have no order: a new epoch may be the sender restarting
// or someone replaying a recording from an earlier boot. Two rules tell them apart:
// - a sender switches epochs only after its current epoch has gone quiet (a restarted
//   carpd is silent while it starts and then listens a full master-down interval as
//   BACKUP), so a recording cannot displace a sender that is talking;
// - every epoch keeps its own window, so going back to an epoch seen before cannot
//   replay its packets either.
// A recording of an unknown epoch can still be played while the real sender is
// silent, each packet once: that is the limit of unordered epochs, noted in README.
//
// Pure: the caller passes the time; memory is bounded by the MAX_ constants.

export const REPLAY_WINDOW = 64 // sequences tracked below the highest one seen
/**
 * A different epoch is accepted once the current one was silent this many of its
 * longest recent gaps (so a quick extra advert, such as a demotion, does not shorten
 * it), but never less than the floor: sub-second senders advertise every 4 ms at most.
 */
export const EPOCH_QUIET_GAPS = 1.5
export const EPOCH_QUIET_MIN_MS = 20
const RECENT_GAPS = 4
const MAX_EPOCHS_PER_SENDER = 8
const MAX_SENDERS = 64

export type ReplayVerdict = 'ok' | 'replay' | 'epochSwitch'

interface EpochWindow {
  highest: number // highest sequence accepted in this epoch
  seen: bigint // bit i set: sequence (highest - i) was accepted
}

interface Sender {
  active: number // the epoch currently in use
  epochs: Map<number, EpochWindow> // insertion order = age
  lastHeardMs: number
  gapsMs: number[] // times between the last few accepted packets, newest last
}

export class ReplayWindow {
  private readonly senders = new Map<string, Sender>()

  /**
   * `maxQuietMs` caps the quiet a new epoch waits for. Senders that talk in bursts
   * (vote requests: only while a board claims or holds a vhid) have long gaps, and
   * a board that restarted after one must not wait 1.5 of a gap of hours to be heard.
   */
  constructor(private readonly maxQuietMs = Infinity) {}

  /**
   * Checks `counter` from `sender` and records it when accepted. Call only after the
   * packet's authentication passed, so forged packets cannot move the window.
   * `maxQuietMs` caps the quiet for this packet (the sender's own timing, say).
   */
  check(sender: string, counter: bigint, nowMs: number, maxQuietMs = this.maxQuietMs): ReplayVerdict {
    const epoch = Number(BigInt.asUintN(64, counter) >> 32n)
    const seq = Number(BigInt.asUintN(32, counter))
    let s = this.senders.get(sender)
    if (!s) {
      s = { active: epoch, epochs: new Map(), lastHeardMs: nowMs, gapsMs: [] }
      this.remember(sender, s)
    }
    if (epoch !== s.active) {
      const cap = Math.min(this.maxQuietMs, maxQuietMs)
      const quietMs = Math.min(cap, Math.max(EPOCH_QUIET_MIN_MS, EPOCH_QUIET_GAPS * Math.max(0, ...s.gapsMs)))
      if (nowMs - s.lastHeardMs < quietMs) return 'epochSwitch'
    }
    let win = s.epochs.get(epoch)
    if (!win) {
      win = { highest: seq, seen: 0n }
      s.epochs.set(epoch, win)
      if (s.epochs.size > MAX_EPOCHS_PER_SENDER) s.epochs.delete(s.epochs.keys().next().value!)
    }
    if (!accept(win, seq)) return 'replay'
    s.active = epoch
    s.gapsMs.push(nowMs - s.lastHeardMs)
    if (s.gapsMs.length > RECENT_GAPS) s.gapsMs.shift()
    s.lastHeardMs = nowMs
    return 'ok'
  }

  /** Senders currently tracked (for status). */
  get size(): number {
    return this.senders.size
  }

  private remember(sender: string, s: Sender): void {
    if (this.senders.size >= MAX_SENDERS) {
      // Forget the sender heard from least recently; only authenticated senders get
      // here, so this bounds memory without letting strangers evict real peers.
      let oldest: string | undefined
      let oldestMs = Infinity
      for (const [key, other] of this.senders) {
        if (other.lastHeardMs < oldestMs) {
          oldest = key
          oldestMs = other.lastHeardMs
        }
      }
      this.senders.delete(oldest!)
    }
    this.senders.set(sender, s)
  }
}

/** The sliding-window test of one sequence number; records it when new. */
function accept(win: EpochWindow, seq: number): boolean {
  if (win.seen === 0n || seq > win.highest) {
    const shift = win.seen === 0n ? 0 : seq - win.highest
    win.seen = shift >= REPLAY_WINDOW ? 1n : BigInt.asUintN(REPLAY_WINDOW, (win.seen << BigInt(shift)) | 1n)
    win.highest = seq
    return true
  }
  const age = win.highest - seq
  if (age >= REPLAY_WINDOW) return false
  const bit = 1n << BigInt(age)
  if (win.seen & bit) return false
  win.seen |= bit
  return true
}
