// The state machine of one virtual host id (carp(4), RFC 5798 §6.4), pure: it takes
// an event and the current time and returns the new state plus the actions the
// agent must carry out (send an advert, arm a timer, add the VIPs, ...). It never
// touches a socket, a timer or the OS itself.
//
//          start/linkUp                masterDown timer, bow-out,
//   INIT ───────────────▶ BACKUP ───── preempt, demoted master ─────▶ MASTER
//    ▲  ◀───────────────   ▲  ◀────────── better advert ──────────────   │
//    │   linkDown/shutdown │                                             │
//    └─────────────────────┴──────────── linkDown / shutdown ────────────┘
//
// A board always comes up BACKUP and waits a full master-down interval before it
// claims (SPEC), so a reboot never makes two masters by accident.

import {
  BOW_OUT_ADVBASE,
  BOW_OUT_ADVSKEW,
  GARP_REPEAT_INTERVALS,
  MASTER_DOWN_INTERVALS,
  GARP_AFTER_RELEASE_MS,
  SKEW_UNIT_MS,
  VIP_RELEASE_GRACE_MS,
} from './constants.js'

export type CarpState = 'INIT' | 'BACKUP' | 'MASTER'
export type TimerName = 'masterDown' | 'advertise' | 'garp' | 'release'

/** What one vhid needs from the configuration; `rank` breaks ties (see betterThan). */
export interface VhidParams {
  vhid: number
  advbaseS: number // 0..255; 0 = sub-second mode
  advskew: number // 0..254 (1/256 s)
  preempt: boolean
  preemptHolddownMs: number
  rank: number // this board's boot epoch (carried in every advert): higher wins ties
  /**
   * Split-brain protection (quorum/arbiter.ts): 'none' enters MASTER as CARP says;
   * 'paths' and 'witness' only claim it and wait for a `votes` event (two-node mode:
   * the peer's word on the other paths; witness mode: 2 of 3 votes). A 'witness'
   * MASTER never steps down to an advert: another board cannot hold the votes while
   * it does, so such an advert comes from a stale master, which yields on its own.
   */
  quorum: 'none' | 'paths' | 'witness'
  /**
   * Its VIPs are on a virtual MAC (platform/vmac.ts): stepping down releases them at
   * once, since neighbours need no ARP to find the new master, and the old master's
   * macvlan answering meanwhile would pull the virtual MAC back to its switch port.
   */
  vmac?: boolean
}

/** The priority an advert announces, and who announced it. */
export interface Priority {
  demote: number
  advbase: number
  advskew: number
  rank: number
}

export type VhidEvent =
  | { type: 'start' }
  /**
   * bootRace: split-brain protection says the sender took this vhid at its start
   * without hearing us, and we started within BOOT_RACE_MS too: a backup that ranks
   * higher replaces it once whatever the preempt setting (quorum/README.md "Power-on").
   */
  | { type: 'advert'; from: string; prio: Priority; bootRace?: boolean }
  | { type: 'timer'; timer: TimerName }
  | { type: 'demote'; demote: number; reason: string }
  | { type: 'linkDown'; reason: string }
  | { type: 'linkUp' }
  | { type: 'shutdown' }
  | { type: 'configure'; params: VhidParams }
  | { type: 'votes'; held: boolean; reason: string }

export type VhidAction =
  | { type: 'send'; advbase: number; advskew: number; demote: number }
  | { type: 'arm'; timer: TimerName; atMs: number }
  | { type: 'cancel'; timer: TimerName }
  | { type: 'addVips' }
  | { type: 'removeVips' }
  | { type: 'garp' }
  | { type: 'hook'; state: CarpState }
  | { type: 'log'; message: string }

/** A BACKUP that wants to become MASTER and waits for its votes. */
export interface Claim {
  reason: string
  hearsMaster: boolean // it hears the master it wants to replace (preempt, demoted master)
}

/** The master this backup currently defers to. */
export interface SeenMaster {
  from: string
  prio: Priority
  atMs: number
}

export interface VhidState {
  params: VhidParams
  state: CarpState
  sinceMs: number // time of the last state change (or start)
  demote: number // this board's demotion counter, as last told
  master: SeenMaster | null // only in BACKUP
  reason: string // why the last transition happened
  transitions: number
  vipsHeld: boolean // the VIPs are (or may still be) on the interface
  lastHealMs: number // when we last answered another master's advert (rate limit)
  claim: Claim | null // only in BACKUP, only with quorum
}

export interface StepResult {
  state: VhidState
  actions: VhidAction[]
}

/** Advertisement interval: advbase + advskew/256 s (carp(4)). */
export function advertIntervalMs(advbase: number, advskew: number): number {
  return advbase * 1000 + advskew * SKEW_UNIT_MS
}

/**
 * Master-down interval: 3 × advbase + advskew/256 s; in sub-second mode (advbase 0)
 * 3 × advskew/256 s, as OpenBSD does (SPEC "CARP behaviour").
 */
export function masterDownMs(advbase: number, advskew: number): number {
  return advbase === 0
    ? MASTER_DOWN_INTERVALS * advskew * SKEW_UNIT_MS
    : MASTER_DOWN_INTERVALS * advbase * 1000 + advskew * SKEW_UNIT_MS
}

/**
 * Does `a` have the better priority? Lower demotion first (OpenBSD compares it before
 * timing), then the more frequent advertiser. Preemption uses this alone: as in RFC
 * 5798 §6.4.2, a backup does not preempt a master of equal priority.
 */
export function preferredOver(a: Priority, b: Priority): boolean {
  if (a.demote !== b.demote) return a.demote < b.demote
  return a.advbase * 256 + a.advskew < b.advbase * 256 + b.advskew
}

/**
 * Between two masters: the better priority, and on a full tie the higher rank (RFC
 * 5798 §6.4.3 uses the address; carpd uses the boot epoch that both boards see in the
 * adverts, so routes and secondary addresses cannot make them disagree). Without
 * the tie-break two equal masters would both step down and race again.
 */
export function betterThan(a: Priority, b: Priority): boolean {
  if (preferredOver(a, b) || preferredOver(b, a)) return preferredOver(a, b)
  return a.rank > b.rank
}

export function initialState(params: VhidParams, nowMs: number): VhidState {
  return { params, state: 'INIT', sinceMs: nowMs, demote: 0, master: null, reason: 'not started', transitions: 0, vipsHeld: false, lastHealMs: -Infinity, claim: null }
}

export function selfPriority(s: VhidState): Priority {
  return { demote: s.demote, advbase: s.params.advbaseS, advskew: s.params.advskew, rank: s.params.rank }
}

/** The one door: every event goes through here. */
export function step(s: VhidState, ev: VhidEvent, nowMs: number): StepResult {
  switch (ev.type) {
    case 'start':
    case 'linkUp':
      if (s.state !== 'INIT') return { state: s, actions: [] }
      return enter(s, 'BACKUP', nowMs, ev.type === 'start' ? 'started' : 'interface up')
    case 'advert':
      return onAdvert(s, ev.from, ev.prio, nowMs, ev.bootRace === true)
    case 'timer':
      return onTimer(s, ev.timer, nowMs)
    case 'demote':
      return onDemote(s, ev.demote, ev.reason)
    case 'linkDown':
      if (s.state === 'INIT') return { state: s, actions: [] }
      return enter(s, 'INIT', nowMs, ev.reason)
    case 'shutdown':
      return onShutdown(s, nowMs)
    case 'configure':
      return onConfigure(s, ev.params, nowMs)
    case 'votes':
      return onVotes(s, ev.held, ev.reason, nowMs)
    default:
      return unreachable(ev)
  }
}

function onAdvert(s: VhidState, from: string, prio: Priority, nowMs: number, bootRace: boolean): StepResult {
  const self = selfPriority(s)
  switch (s.state) {
    case 'INIT':
      // The interface is down or we have not started: adverts mean nothing yet.
      return { state: s, actions: [] }
    case 'MASTER':
      if (betterThan(prio, self) && s.params.quorum !== 'witness') {
        const why = `better master ${from} (${describe(prio)} vs ours ${describe(self)})`
        return enter(s, 'BACKUP', nowMs, why, { from, prio, atMs: nowMs })
      }
      return onWorseMaster(s, nowMs)
    case 'BACKUP':
      return onAdvertInBackup(s, from, prio, self, nowMs, bootRace)
    default:
      return unreachable(s.state)
  }
}

/**
 * Another board also thinks it is master: a split has healed (or both claimed at
 * once). It steps down when it hears us; advertise now so that happens at once, and
 * send the gratuitous ARP again, since neighbours may have followed the other board
 * (SPEC: "again whenever a split-brain heals"). At most once per interval.
 */
function onWorseMaster(s: VhidState, nowMs: number): StepResult {
  if (nowMs - s.lastHealMs < intervalMs(s)) return { state: s, actions: [] }
  const state: VhidState = { ...s, lastHealMs: nowMs }
  return {
    state,
    actions: [
      { type: 'log', message: `vhid=${s.params.vhid} another master heard: advertising and announcing the VIPs again` },
      sendAdvert(state),
      { type: 'garp' },
    ],
  }
}

function onAdvertInBackup(s: VhidState, from: string, prio: Priority, self: Priority, nowMs: number, bootRace: boolean): StepResult {
  if (prio.advbase === BOW_OUT_ADVBASE && prio.advskew === BOW_OUT_ADVSKEW) {
    // The master is shutting down and says so: take over now instead of waiting
    // for the master-down timer (OpenBSD's carp_ifdetach bow-out).
    return claimMaster(s, nowMs, `master ${from} bowed out`, true)
  }
  const holdLeftMs = s.sinceMs + s.params.preemptHolddownMs - nowMs
  if (holdLeftMs <= 0) {
    // A demoted master asks to be replaced, whatever the preempt setting
    // (OpenBSD takes over "masters advertising with a higher demote count").
    if (prio.demote > self.demote) {
      return stillHearing(claimMaster(s, nowMs, `master ${from} is demoted (demote ${prio.demote} > ours ${self.demote})`, true), from, prio, nowMs)
    }
    // A power-on race is won as a preempt is, preempt or not (src/quorum/README.md).
    if ((s.params.preempt || bootRace) && preferredOver(self, prio)) {
      const beats = `ours ${describe(self)} beats ${from} ${describe(prio)}`
      const why = s.params.preempt ? `preempt: ${beats}` : `power-on: ${beats}, which took the vhid at its start before this board was up`
      return stillHearing(claimMaster(s, nowMs, why, true), from, prio, nowMs)
    }
  }
  // A master advertising so slowly that it is sure to time out is down already
  // (ip_carp.c: "he's guaranteed to time out"). Not in sub-second mode, as OpenBSD.
  if (s.params.advbaseS > 0 && advertIntervalMs(prio.advbase, prio.advskew) > MASTER_DOWN_INTERVALS * s.params.advbaseS * 1000) {
    return stillHearing(claimMaster(s, nowMs, `master ${from} advertises too slowly (${describe(prio)})`, true), from, prio, nowMs)
  }
  const state: VhidState = { ...s, master: { from, prio, atMs: nowMs }, claim: null }
  const actions: VhidAction[] = [{ type: 'arm', timer: 'masterDown', atMs: nowMs + downMs(state) }]
  if (s.claim) actions.unshift({ type: 'log', message: `vhid=${s.params.vhid} master ${from} heard again: claim withdrawn` })
  return { state, actions }
}

function onTimer(s: VhidState, timer: TimerName, nowMs: number): StepResult {
  if (s.state === 'BACKUP' && timer === 'masterDown') {
    const heard = s.master ? `no advert from ${s.master.from} for` : 'no master heard in'
    return claimMaster(s, nowMs, `${heard} ${fmtSeconds(downMs(s))}`, false)
  }
  if (s.state === 'MASTER' && timer === 'advertise') {
    return {
      state: s,
      actions: [sendAdvert(s), { type: 'arm', timer: 'advertise', atMs: nowMs + intervalMs(s) }],
    }
  }
  if (s.state === 'MASTER' && timer === 'garp') {
    // The second gratuitous ARP catches neighbours that missed the first one.
    return { state: s, actions: [{ type: 'garp' }] }
  }
  if (s.state === 'BACKUP' && timer === 'release' && s.vipsHeld) {
    return { state: { ...s, vipsHeld: false }, actions: [{ type: 'removeVips' }] }
  }
  // enter() cancels the timers of the state it leaves, so this is an agent bug.
  throw new Error(`carp vhid=${s.params.vhid}: impossible event timer ${timer} in state ${s.state}`)
}

/**
 * CARP says this backup should be MASTER. Without quorum it is; with quorum it claims
 * and waits for the agent's `votes` event (the arbiter asks the peer and the witness).
 */
function claimMaster(s: VhidState, nowMs: number, reason: string, hearsMaster: boolean): StepResult {
  if (s.params.quorum === 'none') return enter(s, 'MASTER', nowMs, reason)
  if (s.claim) return { state: { ...s, claim: { reason, hearsMaster } }, actions: [] }
  return {
    state: { ...s, claim: { reason, hearsMaster } },
    actions: [{ type: 'log', message: `vhid=${s.params.vhid} BACKUP wants MASTER: ${reason}; asking for votes` }],
  }
}

/**
 * A claim made while the master is still heard keeps that master on record and its
 * master-down timer running: if the votes never come, the claim stands on what CARP
 * sees, and a master that then goes silent is still noticed.
 */
function stillHearing(r: StepResult, from: string, prio: Priority, nowMs: number): StepResult {
  if (r.state.state !== 'BACKUP') return r
  const state: VhidState = { ...r.state, master: { from, prio, atMs: nowMs } }
  return { state, actions: [...r.actions, { type: 'arm', timer: 'masterDown', atMs: nowMs + downMs(state) }] }
}

function onVotes(s: VhidState, held: boolean, reason: string, nowMs: number): StepResult {
  if (held && s.state === 'BACKUP' && s.claim) return enter(s, 'MASTER', nowMs, `${s.claim.reason}; ${reason}`)
  if (!held && s.state === 'MASTER') {
    // Without the votes the VIPs go at once: the voter that promised us may promise
    // the other board as soon as our lease ends, so no release grace here.
    return enter(s, 'BACKUP', nowMs, `lost quorum: ${reason}`, null, true)
  }
  return { state: s, actions: [] }
}

function onDemote(s: VhidState, demote: number, reason: string): StepResult {
  if (demote === s.demote) return { state: s, actions: [] }
  const state: VhidState = { ...s, demote }
  const actions: VhidAction[] = [
    { type: 'log', message: `vhid=${s.params.vhid} demote ${s.demote}->${demote} reason="${reason}"` },
  ]
  // A master tells the backup at once, so a planned switchover (maint on) does not
  // wait for the next regular advert.
  if (s.state === 'MASTER') actions.push(sendAdvert(state))
  return { state, actions }
}

function onShutdown(s: VhidState, nowMs: number): StepResult {
  if (s.state !== 'MASTER') {
    return s.state === 'INIT' ? { state: s, actions: [] } : enter(s, 'INIT', nowMs, 'shutting down')
  }
  // Bow out: advertise advbase 255 / advskew 255 so the backup takes over at once.
  const bow: VhidAction = { type: 'send', advbase: BOW_OUT_ADVBASE, advskew: BOW_OUT_ADVSKEW, demote: s.demote }
  const left = enter(s, 'INIT', nowMs, 'shutting down (bow-out sent)')
  return { state: left.state, actions: [bow, ...left.actions] }
}

function onConfigure(s: VhidState, params: VhidParams, nowMs: number): StepResult {
  const state: VhidState = { ...s, params }
  const timingChanged = params.advbaseS !== s.params.advbaseS || params.advskew !== s.params.advskew
  if (s.state === 'MASTER' && timingChanged) {
    // Advertise the new timing now; backups re-arm their timers from it.
    return { state, actions: [sendAdvert(state), { type: 'arm', timer: 'advertise', atMs: nowMs + intervalMs(state) }] }
  }
  return { state, actions: [] }
}

/**
 * Changes state and arms/cancels that state's timers together, and logs why.
 * `master` is the master a board steps down to, when it heard one.
 */
function enter(s: VhidState, next: CarpState, nowMs: number, reason: string, master: SeenMaster | null = null, releaseNow = false): StepResult {
  const prev = s.state
  const state: VhidState = {
    ...s,
    state: next,
    sinceMs: nowMs,
    master,
    reason,
    transitions: s.transitions + 1,
    claim: null,
  }
  const actions: VhidAction[] = [
    { type: 'log', message: `vhid=${s.params.vhid} ${prev}->${next} reason="${reason}"` },
  ]
  if (prev === 'MASTER') actions.push({ type: 'cancel', timer: 'advertise' }, { type: 'cancel', timer: 'garp' })
  if (prev === 'BACKUP') actions.push({ type: 'cancel', timer: 'masterDown' })
  switch (next) {
    case 'INIT':
      // Link down or shutting down: nothing of ours may stay on the interface.
      if (s.vipsHeld) {
        actions.push({ type: 'cancel', timer: 'release' }, { type: 'removeVips' })
        state.vipsHeld = false
      }
      break
    case 'BACKUP':
      actions.push({ type: 'arm', timer: 'masterDown', atMs: nowMs + downMs(state) })
      // Stepping down to a better master: keep the VIPs until its ARP has spread.
      if (prev === 'MASTER' && (releaseNow || s.params.vmac === true)) {
        actions.push({ type: 'removeVips' })
        state.vipsHeld = false
      } else if (prev === 'MASTER') {
        actions.push({ type: 'arm', timer: 'release', atMs: nowMs + VIP_RELEASE_GRACE_MS })
      }
      break
    case 'MASTER':
      // Advertise first, so the old master and the other backups hear us as early
      // as possible, then take the addresses and announce them (the agent sends
      // the ARP without waiting for the addresses where the platform allows).
      actions.push(
        { type: 'cancel', timer: 'release' },
        sendAdvert(state),
        { type: 'arm', timer: 'advertise', atMs: nowMs + intervalMs(state) },
        { type: 'addVips' },
        { type: 'garp' },
        { type: 'arm', timer: 'garp', atMs: nowMs + repeatGarpMs(state) },
      )
      state.vipsHeld = true
      break
    default:
      return unreachable(next)
  }
  if (prev === 'MASTER' || next === 'MASTER') actions.push({ type: 'hook', state: next })
  return { state, actions }
}

/**
 * The second gratuitous ARP: two intervals after taking over (SPEC), but never
 * before the old master has released the VIPs, or a neighbour that asked in between
 * could keep the old master's answer.
 */
function repeatGarpMs(s: VhidState): number {
  return Math.max(GARP_REPEAT_INTERVALS * intervalMs(s), VIP_RELEASE_GRACE_MS + GARP_AFTER_RELEASE_MS)
}

function sendAdvert(s: VhidState): VhidAction {
  return { type: 'send', advbase: s.params.advbaseS, advskew: s.params.advskew, demote: s.demote }
}

function intervalMs(s: VhidState): number {
  return advertIntervalMs(s.params.advbaseS, s.params.advskew)
}

/**
 * carp(4) computes the master-down interval from the backup's own settings. When the
 * master advertises more slowly than that allows (a backup with a smaller advskew
 * that is demoted or has preempt off, most of all in sub-second mode: 3 × 10/256 s
 * against a master sending every 40/256 s), the backup would time out between two
 * adverts and flap. So, as RFC 5798's Master_Down_Interval does, never wait less
 * than three of the known master's own intervals.
 */
function downMs(s: VhidState): number {
  const own = masterDownMs(s.params.advbaseS, s.params.advskew)
  if (!s.master) return own
  return Math.max(own, MASTER_DOWN_INTERVALS * advertIntervalMs(s.master.prio.advbase, s.master.prio.advskew))
}

function describe(p: Priority): string {
  return `demote=${p.demote} advbase=${p.advbase} advskew=${p.advskew}`
}

function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 1000 ? 3 : 1)}s`
}

function unreachable(x: never): never {
  throw new Error(`unreachable: ${JSON.stringify(x)}`)
}

/** What split-brain protection (quorum/) needs to know of a vhid after each of its events. */
export interface VhidView {
  state: CarpState
  claiming: boolean // BACKUP that wants to become MASTER
  hearsMaster: boolean // BACKUP that hears a master's adverts on the LAN now
  /**
   * Not MASTER, but its VIPs may still be on the interface: their removal is queued,
   * slow (`ip addr del` waiting on a busy kernel) or failed and being tried again.
   */
  releasing: boolean
  demote: number
  advbase: number
  advskew: number
}
