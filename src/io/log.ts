// Console lines: one per event, `ISO-time node subsystem message` (SPEC "Console and
// status"), e.g. `2026-11-22T04:29:08.944Z fw-b carp vhid=1 BACKUP->MASTER reason="..."`;
// or, with log.format = short, `04:29:08 carp vhid=1 BACKUP->MASTER reason="..."` for
// an 80-column serial console that shows one board (the date is in its boot lines).
// And the same events as RFC 5424 syslog messages (io/syslog.ts sends them).

export interface Logger {
  event(subsystem: string, message: string): void
}

export type LogFormat = 'full' | 'short'

export function lineLogger(node: string, write: (line: string) => void, wall: () => Date, format: LogFormat = 'full'): Logger {
  return {
    event(subsystem, message) {
      const now = wall().toISOString()
      write(format === 'full' ? `${now} ${node} ${subsystem} ${message}\n` : `${now.slice(11, 19)} ${subsystem} ${message}\n`)
    },
  }
}

/** Every event to each of `loggers`, in order. */
export function teeLogger(...loggers: Logger[]): Logger {
  return {
    event(subsystem, message) {
      for (const l of loggers) l.event(subsystem, message)
    },
  }
}

/** RFC 5424 facility codes carpd may use. */
const FACILITY: Readonly<Record<string, number>> = { daemon: 3, local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23 }
const SEVERITY_WARNING = 4
const SEVERITY_NOTICE = 5
const SEVERITY_INFO = 6
/** An RFC 5424 field: printable US-ASCII without spaces, at most `max` characters; '-' when empty. */
const field = (text: string, max: number): string => text.replace(/[^\x21-\x7e]/g, '_').slice(0, max) || '-'

/**
 * One event as an RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME carpd PROCID
 * SUBSYSTEM - MESSAGE`. Something that failed, was refused or went dead is warning; a
 * change of role (`->MASTER`, `->BACKUP`, any `A->B` of a state machine) notice; the
 * rest info: a server that keeps notice and above keeps the changes and the faults.
 */
export function syslogMessage(facility: string, host: string, pid: number, when: Date, subsystem: string, message: string): string {
  const severity = /\b(failed|fails|refused|rejected|error|dead|lost|timed out|cannot|not loaded)\b/i.test(message)
    ? SEVERITY_WARNING
    : /\b[A-Z][A-Za-z]*->[A-Z][A-Za-z]*\b|\b[a-z]+->[a-z]+\b/.test(message)
      ? SEVERITY_NOTICE
      : SEVERITY_INFO
  const pri = (FACILITY[facility] ?? FACILITY.daemon!) * 8 + severity
  return `<${pri}>1 ${when.toISOString()} ${field(host, 255)} carpd ${pid} ${field(subsystem, 32)} - ${message}`
}
