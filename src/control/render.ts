// `carpd status` and SIGUSR1: the board's state as text for a terminal (the JSON form
// is the BoardStatus object itself).

import type { QuorumStatus } from '../quorum/status.js'
import type { BulkInfo, CommitInfo, SyncRuntimeStatus } from '../sync/status.js'
import type { WanRuntimeStatus } from '../wan/status.js'
import type { BoardStatus } from './status.js'

export function renderStatus(s: BoardStatus): string {
  const demoteWhy = Object.entries(s.demote.reasons).map(([k, v]) => `${k}=${v}`).join(' ')
  const lines = [
    `carpd ${s.node} version ${s.version} up ${fmtDuration(s.uptimeMs)}`,
    `demote ${s.demote.total}${demoteWhy ? ` (${demoteWhy})` : ''}  maint ${s.maint ? 'on' : 'off'}`,
  ]
  for (const v of s.vhids) {
    lines.push(
      `vhid ${v.vhid} ${v.state} for ${fmtDuration(v.forMs)} on ${v.interface}${v.vmac ? ` (virtual MAC on ${v.vmac})` : ''} vip ${v.vips.join(',')} ` +
        `advbase ${v.advbaseS} advskew ${v.advskew} ${v.transport}`,
      `  reason: ${v.reason}`,
    )
    if (v.master) {
      lines.push(
        `  master ${v.master.from} demote ${v.master.demote} advbase ${v.master.advbase} ` +
          `advskew ${v.master.advskew} heard ${fmtDuration(v.master.heardMsAgo)} ago`,
      )
    }
    lines.push(`  adverts received ${v.received} sent ${v.sent} transitions ${v.transitions}`)
  }
  const drops = Object.entries(s.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k}=${n}`)
  const links = Object.entries(s.links).map(([iface, state]) => `${iface} ${state}`)
  if (links.length > 0) lines.push(`links: ${links.join(', ')}`)
  lines.push(
    `drops: ${drops.length ? drops.join(' ') : 'none'}`,
    `send errors: ${s.sendErrors}  OS command failures: ${s.platformFailures}  repairs: ${s.repairs}`,
  )
  if (s.sync) lines.push(...syncLines(s.sync))
  if (s.quorum) lines.push(...quorumLines(s.quorum))
  if (s.wan) lines.push(...wanLines(s.wan))
  if (s.bugs > 0) lines.push(`internal errors: ${s.bugs} (see the console log)`)
  return lines.join('\n') + '\n'
}

export function fmtDuration(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`
  const totalS = Math.floor(ms / 1000)
  const h = Math.floor(totalS / 3600)
  const m = Math.floor((totalS % 3600) / 60)
  const sec = totalS % 60
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`
  return `${sec}s`
}

function syncLines(y: SyncRuntimeStatus): string[] {
  const heard = y.peer.heardMsAgo === null ? 'never heard' : `heard ${fmtDuration(y.peer.heardMsAgo)} ago`
  const c = y.counters
  const b = y.bulk
  const bulk = [
    b.wanted ? `waiting for the peer's table (${b.wanted})` : '',
    b.receiving ? `receiving ${bulkText(b.receiving)}` : '',
    b.sending ? `sending ${bulkText(b.sending)}` : '',
    b.lastIn ? `last in: ${b.lastIn.done} states in ${b.lastIn.ms} ms, ${fmtDuration(b.lastIn.agoMs)} ago` : 'last in: none',
    b.lastOut ? `last out: ${b.lastOut.done} states, ${fmtDuration(b.lastOut.agoMs)} ago` : 'last out: none',
  ].filter(Boolean)
  const drops = Object.entries(y.drops).filter(([, n]) => n > 0).map(([k, n]) => `${k}=${n}`)
  const k = y.backend
  const commit = y.lastCommit
    ? `${commitText(y.lastCommit)} in ${y.lastCommit.ms} ms, ${fmtDuration(y.lastCommit.agoMs)} ago`
    : 'never'
  return [
    `sync peer ${y.peerAddress} ${y.peer.state} (${heard})  states: own ${y.states.local}, peer's ${y.states.peer}`,
    `  lag: ${y.lag.queued} queued, ${y.lag.unacked} frames unacked (oldest ${y.lag.oldestUnackedMs} ms)`,
    `  frames sent ${c.framesSent} received ${c.framesReceived}  changes sent ${c.changesSent} received ${c.changesReceived}`,
    `  resends ${c.resends} duplicates ${c.duplicates} out of order ${c.outOfOrder} lost frames ${c.lostFrames} gaps skipped ${c.gapsSkipped} stale peer states ${c.staleRecords} overflows ${c.overflows} send errors ${y.sendErrors}${c.ipv6HeldBack ? ` IPv6 held back ${c.ipv6HeldBack}` : ''}`,
    `  bulk: ${bulk.join('; ')}${c.bulkRetries ? ` (requests asked again: ${c.bulkRetries})` : ''}`,
    `  backend: snapshots ${k.snapshots} (failed ${k.snapshotFailures}), bad lines ${k.badLines}, unsyncable ${k.unsyncable}, event reader restarts ${k.watchRestarts}, load failures ${k.loadFailures}; last load on promotion: ${commit}`,
    `  sync drops: ${drops.length ? drops.join(' ') : 'none'}`,
  ]
}

function bulkText(b: BulkInfo): string {
  return `${b.done}/${b.total} states for ${fmtDuration(b.ms)}`
}

function commitText(c: CommitInfo): string {
  return `${c.loaded} states loaded, ${c.replaced} stale replaced, ${c.expired} ended removed (${c.skipped} present, ${c.failed} failed${c.leftOut ? `, ${c.leftOut} left out` : ''})`
}

function quorumLines(q: QuorumStatus): string[] {
  const paths = q.paths.map((p) => {
    const heard = p.heardMsAgo === null ? 'never heard' : `heard ${fmtDuration(p.heardMsAgo)} ago`
    return `${p.path} ${p.state} (${heard}, timeout ${p.timeoutMs} ms)`
  })
  const lines = [
    q.mode === 'witness' ? `quorum: witness ${q.witness} lease ${q.leaseMs} ms (2 of 3 votes to hold MASTER)` : 'quorum: two-node mode (no witness): CARP plus the peer paths',
    `  peer paths: ${paths.join(', ')}`,
    q.peer
      ? `  peer ${q.peer.node}: vhids ${q.peer.vhids} demote ${q.peer.demote}, last heartbeat ${fmtDuration(q.peer.heardMsAgo)} ago`
      : '  peer: no heartbeat yet',
  ]
  for (const v of q.vhids) {
    const leases = [
      v.peerLeaseMs > 0 ? `peer lease ${v.peerLeaseMs} ms` : '',
      v.witnessLeaseMs > 0 ? `witness lease ${v.witnessLeaseMs} ms` : '',
      v.deferringToPeerMs > 0 ? `deferring to the peer for ${v.deferringToPeerMs} ms` : '',
    ].filter(Boolean)
    lines.push(`  vhid ${v.vhid}: ${v.held ? 'may hold MASTER' : 'may not hold MASTER'} (${v.why})${leases.length ? `; ${leases.join(', ')}` : ''}`)
    if (q.mode === 'witness') {
      lines.push(`    requests ${v.requests}, grants peer ${v.grants.peer} witness ${v.grants.witness}, denials peer ${v.denials.peer} witness ${v.denials.witness}`)
    }
  }
  if (q.serial) {
    const r = q.serial.reader
    lines.push(
      `  serial ${q.serial.device} ${q.serial.open ? 'open' : 'not open'}: frames ${r.frames}, garbage ${r.garbage}, bad CRC ${r.badCrc}, bad fields ${r.badField}, too long ${r.tooLong}; write errors ${q.serial.writeErrors}`,
    )
  }
  const drops = [...Object.entries(q.drops), ...Object.entries(q.linkDrops)].filter(([, n]) => n > 0).map(([k, n]) => `${k}=${n}`)
  lines.push(`  heartbeats sent ${q.heartbeatsSent}, send errors ${q.sendErrors}; quorum drops: ${drops.length ? drops.join(' ') : 'none'}`)
  return lines
}

function wanLines(w: WanRuntimeStatus): string[] {
  const pct = (x: number | null) => (x === null ? 'n/a' : `${Math.round(x * 100)}%`)
  const lines = [`wan: new connections: ${w.plan}`]
  if (w.wanted) lines.push(`  wanted, not loaded yet: ${w.wanted}`)
  for (const x of w.wans) {
    const p = x.probes
    const replies = Object.entries(p.replies).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`)
    const counters = p.sent > 0 ? [`rounds ${p.rounds} (good ${p.goodRounds}, failed ${p.failedRounds})`, `queries ${p.sent}`, `replies: ${replies.join(' ') || 'none'}`] : []
    lines.push(
      `  wan${x.wan} ${x.interface} ${x.address ?? '(no address)'} ${x.state} for ${fmtDuration(x.forMs)}: ${x.reason}`,
      `    loss ${pct(x.loss)} latency ${x.latencyMs === null ? 'n/a' : `${Math.round(x.latencyMs)} ms`}; probes: ${counters.join(', ') || 'none yet'}`,
    )
  }
  const last = w.lastLoad ? `last ${w.lastLoad.ok ? 'ok' : `FAILED (${w.lastLoad.error})`} ${fmtDuration(w.lastLoad.agoMs)} ago` : 'none yet'
  lines.push(`  rules loaded ${w.loads} times, ${w.loadFailures} failed; ${last}; connections removed from offline WANs: ${w.flushed}; repairs ${w.repairs}`)
  return lines
}
