// What state sync needs from a firewall's connection table. The Linux backend
// (platform/conntrack.ts) drives conntrack(8); `sync.backend = none` has no backend.

import type { Flow } from '../wire/flow.js'

export type FlowChange = { op: 'upsert'; flow: Flow } | { op: 'delete'; flow: Flow }

export interface BackendCounters {
  badLines: number // lines of the tool's output that could not be read (skipped)
  otherFamily: number // flows of a family carpd does not sync (neither IPv4 nor IPv6), skipped
  watchRestarts: number // times the event reader had to be started again
  loadFailures: number // load/remove commands that failed
}

export interface SyncBackend {
  readonly counters: BackendCounters
  /**
   * Follows the table: `onChange` for every insert, update and delete the kernel
   * reports. `onLost` says events may have been missed (the reader died, or the
   * kernel dropped events): the caller should take a snapshot. The reader is started
   * again by the backend itself.
   */
  watch(onChange: (change: FlowChange) => void, onLost: (why: string) => void): void
  /** Streams the whole current table, one flow at a time; rejects when it cannot be read. */
  snapshot(onFlow: (flow: Flow) => void): Promise<void>
  /**
   * Loads flows into the kernel table in batches. A flow that is already there is
   * skipped, not an error (the kernel refuses duplicates).
   */
  load(flows: Iterable<Flow>): Promise<{ loaded: number; skipped: number; failed: number }>
  /** Removes flows from the kernel table (missing ones are not an error). */
  remove(flows: Iterable<Flow>): Promise<void>
  /** Stops the event reader; nothing runs afterwards. */
  stop(): void
}
