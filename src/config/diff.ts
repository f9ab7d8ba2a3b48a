// Which settings of a newly loaded configuration a reload (SIGHUP) cannot apply: the
// sockets, the serial line, the fence and the arbiter are built at start, so these
// take effect after a restart, and the running ones stay. Pure: two configs in,
// the differences out; the runtimes decide what to do with them.
import type { Config, Endpoint } from './types.js'
import { endpointText } from './values.js'

/** One restart-only setting that changed; a secret's old and new values are not given. */
export interface RestartChange {
  key: string
  from: string | null // null for a secret
  to: string | null
}

const endpoint = (e: Endpoint | null): string => (e === null ? '(none)' : endpointText(e))
const ms = (n: number): string => `${n} ms`

/** The restart-only settings that differ, in the order the reference lists them. */
export function restartChanges(old: Config, next: Config): RestartChange[] {
  const pairs: [string, string, string][] = [
    ['node', old.node, next.node],
    ['carp.port', String(old.carp.port), String(next.carp.port)],
    ['control.port', String(old.controlPort), String(next.controlPort)],
    ['log.format', old.log.format, next.log.format],
    ['log.syslog', endpoint(old.log.syslog), endpoint(next.log.syslog)],
    ['log.syslog.facility', old.log.facility, next.log.facility],
    ['platform', old.platform, next.platform],
    ['sync.interface', old.sync.interface, next.sync.interface],
    ['sync.peer', endpoint(old.sync.peer), endpoint(next.sync.peer)],
    ['sync.port', String(old.sync.port), String(next.sync.port)],
    ['sync.backend', old.sync.backend, next.sync.backend],
    ['serial.device', old.serial.device, next.serial.device],
    ['serial.baud', String(old.serial.baud), String(next.serial.baud)],
    ['heartbeat.interval', ms(old.heartbeat.intervalMs), ms(next.heartbeat.intervalMs)],
    ['heartbeat.timeout', ms(old.heartbeat.timeoutMs), ms(next.heartbeat.timeoutMs)],
    ['witness', endpoint(old.witness.address), endpoint(next.witness.address)],
    ['witness.lease', ms(old.witness.leaseMs), ms(next.witness.leaseMs)],
  ]
  // Multi-WAN applies its changes in place (wan/runtime.ts), but not turning it on or
  // off, nor a change of rules flavour (the old flavour's rules would stay loaded).
  const wans = (c: Config): string => (c.wans.length === 0 ? 'off' : `${c.wans.length} WANs`)
  if ((old.wans.length === 0) !== (next.wans.length === 0)) pairs.push(['wan', wans(old), wans(next)])
  else if (old.wans.length > 0) pairs.push(['wan.rules', old.wanRules, next.wanRules])
  const changes: RestartChange[] = pairs.filter(([, a, b]) => a !== b).map(([key, from, to]) => ({ key, from, to }))
  if (old.sync.key !== next.sync.key) changes.push({ key: 'sync.key', from: null, to: null })
  if (old.witness.key !== next.witness.key) changes.push({ key: 'witness.key', from: null, to: null })
  return changes
}

/** The console's words for one such change. */
export function restartNote(c: RestartChange): string {
  return c.from === null ? `${c.key} changed: takes effect after a restart` : `${c.key} changed (${c.from} -> ${c.to}): takes effect after a restart`
}
