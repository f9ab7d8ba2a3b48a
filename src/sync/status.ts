// What `carpd status` shows of state sync: the engine's counters and the runtime's
// (backend, commits). Types only; control/ renders them.

import type { BackendCounters } from './backend.js'
import type { BulkInfo, SyncStatus } from './engine.js'

export type { BulkInfo }

export interface CommitInfo {
  loaded: number // peer states the kernel had no entry for
  replaced: number // stale kernel entries replaced by the peer's newer state
  expired: number // kernel entries of flows that ended while the peer served, removed
  skipped: number // there already (the kernel made them meanwhile)
  failed: number
  leftOut: number // marked for a WAN that is dead on this board: not loaded (they could only hang)
  ms: number
  agoMs: number
}

export interface SyncRuntimeStatus extends SyncStatus {
  peerAddress: string
  backend: BackendCounters & { snapshots: number; snapshotFailures: number; unsyncable: number }
  sendErrors: number
  lastCommit: CommitInfo | null
}
