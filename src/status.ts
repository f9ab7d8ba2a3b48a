// `carpd status` and SIGUSR1: the agent's state as text for a terminal (the JSON form
// is the AgentStatus object itself).

import type { AgentStatus } from './agent.js'

export function renderStatus(s: AgentStatus): string {
  const demoteWhy = Object.entries(s.demote.reasons).map(([k, v]) => `${k}=${v}`).join(' ')
  const lines = [
    `carpd ${s.node} version ${s.version} up ${fmtDuration(s.uptimeMs)}`,
    `demote ${s.demote.total}${demoteWhy ? ` (${demoteWhy})` : ''}  maint ${s.maint ? 'on' : 'off'}`,
  ]
  for (const v of s.vhids) {
    lines.push(
      `vhid ${v.vhid} ${v.state} for ${fmtDuration(v.forMs)} on ${v.interface} vip ${v.vips.join(',')} ` +
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
    `send errors: ${s.sendErrors}  OS command failures: ${s.platformFailures}`,
  )
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
