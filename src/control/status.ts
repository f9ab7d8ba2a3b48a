// The board status: what `carpd status` prints and `carpd status --json` is, built by
// the board (daemon/board.ts) from each subsystem's own status. Types only.

import type { CarpStatus } from '../carp/status.js'
import type { QuorumStatus } from '../quorum/status.js'
import type { SyncRuntimeStatus } from '../sync/status.js'
import type { WanRuntimeStatus } from '../wan/status.js'

export interface BoardStatus extends CarpStatus {
  node: string
  version: string
  uptimeMs: number
  maint: boolean
  demote: { total: number; reasons: Record<string, number> }
  sync: SyncRuntimeStatus | null
  quorum: QuorumStatus | null
  wan: WanRuntimeStatus | null
}
