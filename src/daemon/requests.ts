// The board's side of the control socket: `carpd status` for any local process, and
// the commands that change failover (maint, demote, resync) for whoever answers the
// board's challenge with the key of the configuration's passwords (control/protocol.ts).

import { DEMOTE_MAINT, DEMOTE_MAX } from '../carp/constants.js'
import type { Config } from '../config/types.js'
import { ControlNonces, type ControlReply, type ControlRequest, macValid } from '../control/protocol.js'
import type { BoardStatus } from '../control/status.js'
import type { Clock } from '../io/clock.js'
import type { Demotions } from './demotion.js'

export interface ControlDeskDeps {
  /** The configuration as loaded at start; reloaded() replaces it. */
  config: Config
  clock: Clock
  random(bytes: number): Buffer
  demotions: Demotions
  /** State sync's full resync; null when sync is not configured. */
  resync: (() => void) | null
  status(): BoardStatus
}

export class ControlDesk {
  private readonly nonces: ControlNonces
  /** The configuration file as last accepted: its passwords key carpd ctl. */
  private config: Config

  constructor(private readonly deps: ControlDeskDeps) {
    this.config = deps.config
    this.nonces = new ControlNonces(deps.random)
  }

  /** carpd ctl signs with the file as it is now: so does the board, whatever of it waits for a restart. */
  reloaded(config: Config): void {
    this.config = config
  }

  answer(req: ControlRequest): ControlReply {
    if (req.cmd === 'challenge') return { ok: true, nonce: this.nonces.issue(this.deps.clock.now()) }
    if (req.cmd !== 'status') {
      const now = this.deps.clock.now()
      // The key comes from the CARP passwords: without a vhid there is none.
      if (this.config.carp.vhids.length === 0) return { ok: false, error: `${req.cmd}: needs at least one carp.N block (its password keys carpd ctl)` }
      const refused = this.nonces.refuse(req.nonce, now)
      if (refused !== null) return { ok: false, error: `${req.cmd}: not authorised: ${refused}` }
      if (!macValid(this.config, req)) {
        return { ok: false, error: `${req.cmd}: not authorised (run carpd ctl as a user that can read the configuration and its secret files; after editing passwords, reload with SIGHUP first)` }
      }
      this.nonces.spend(req.nonce!, now)
    }
    const { demotions } = this.deps
    switch (req.cmd) {
      case 'status':
        break
      case 'maint':
        demotions.set('maint', req.on ? DEMOTE_MAINT : 0, req.on ? 'maintenance mode on' : 'maintenance mode off')
        break
      case 'resync':
        if (!this.deps.resync) return { ok: false, error: 'resync: state sync is not configured (sync.interface, sync.backend)' }
        this.deps.resync()
        break
      case 'demote':
        if (!Number.isInteger(req.value) || req.value < 0 || req.value > DEMOTE_MAX) {
          return { ok: false, error: `demote must be an integer 0..${DEMOTE_MAX}, got ${String(req.value)}` }
        }
        demotions.set('operator', req.value, `operator set demote ${req.value}`)
        break
      default:
        return { ok: false, error: `unknown command ${JSON.stringify((req as { cmd: unknown }).cmd)}` }
    }
    return { ok: true, status: this.deps.status() }
  }
}
