// The logger of a long-running command (run, witness): console lines on stdout in the
// file's log.format, and with log.syslog the same events to a syslog server.

import type { Config } from '../config/types.js'
import type { Clock } from '../io/clock.js'
import { type Logger, lineLogger, teeLogger } from '../io/log.js'
import { openSyslog } from '../io/syslog.js'

export function commandLogger(config: Config, clock: Clock, write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  const console = lineLogger(config.node, write, clock.wall, config.log.format)
  const server = config.log.syslog
  if (server === null) return console
  return teeLogger(console, openSyslog({ host: server.address, port: server.port, facility: config.log.facility, node: config.node, wall: clock.wall, console }))
}
