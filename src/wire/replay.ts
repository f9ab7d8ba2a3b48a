// Replay protection for counters made of a random boot epoch (high 32 bits) and a
// sequence number (low 32 bits), as SPEC "CARP behaviour" asks: a counter that never
// goes backwards per sender, checked with a sliding window (the scheme of RFC 6479 and
// wireguard-go's replay/). A new epoch means the sender restarted; epochs that were
// current once are remembered, so a recording from before a restart is refused.
//
// Pure: the caller passes the time; memory is bounded by MAX_SENDERS and MAX_RETIRED.

export const REPLAY_WINDOW = 64 // sequences tracked below the highest one seen
const MAX_RETIRED_EPOCHS = 8
const MAX_SENDERS = 64

export type ReplayVerdict = 'ok' | 'replay' | 'oldEpoch'

interface SenderWindow {
  epoch: number
  highest: number // highest sequence accepted in this epoch
  seen: bigint // bit i set: sequence (highest - i) was accepted
  retired: number[] // epochs this sender used before, newest last
  lastUsedMs: number
}

export class ReplayWindow {
  private readonly senders = new Map<string, SenderWindow>()

  /**
   * Checks `counter` from `sender` and records it when accepted. Call only after the
   * packet's authentication passed, so forged packets cannot move the window.
   */
  check(sender: string, counter: bigint, nowMs: number): ReplayVerdict {
    const epoch = Number(BigInt.asUintN(64, counter) >> 32n)
    const seq = Number(BigInt.asUintN(32, counter))
    const win = this.senders.get(sender)
    if (!win) {
      this.remember(sender, { epoch, highest: seq, seen: 1n, retired: [], lastUsedMs: nowMs })
      return 'ok'
    }
    win.lastUsedMs = nowMs
    if (epoch !== win.epoch) {
      if (win.retired.includes(epoch)) return 'oldEpoch'
      win.retired.push(win.epoch)
      if (win.retired.length > MAX_RETIRED_EPOCHS) win.retired.shift()
      win.epoch = epoch
      win.highest = seq
      win.seen = 1n
      return 'ok'
    }
    if (seq > win.highest) {
      const shift = seq - win.highest
      win.seen = shift >= REPLAY_WINDOW ? 1n : BigInt.asUintN(REPLAY_WINDOW, (win.seen << BigInt(shift)) | 1n)
      win.highest = seq
      return 'ok'
    }
    const age = win.highest - seq
    if (age >= REPLAY_WINDOW) return 'replay'
    const bit = 1n << BigInt(age)
    if (win.seen & bit) return 'replay'
    win.seen |= bit
    return 'ok'
  }

  /** Senders currently tracked (for status). */
  get size(): number {
    return this.senders.size
  }

  private remember(sender: string, win: SenderWindow): void {
    if (this.senders.size >= MAX_SENDERS) {
      // Forget the sender heard from least recently; only authenticated senders get
      // here, so this bounds memory without letting strangers evict real peers.
      let oldest: string | undefined
      let oldestMs = Infinity
      for (const [key, w] of this.senders) {
        if (w.lastUsedMs < oldestMs) {
          oldest = key
          oldestMs = w.lastUsedMs
        }
      }
      if (oldest !== undefined) this.senders.delete(oldest)
    }
    this.senders.set(sender, win)
  }
}
