// Console lines: one per event, `ISO-time node subsystem message` (SPEC "Console and
// status"), e.g. `2026-11-22T04:29:08.944Z fw-b carp vhid=1 BACKUP->MASTER reason="..."`.

export interface Logger {
  event(subsystem: string, message: string): void
}

export function lineLogger(node: string, write: (line: string) => void, wall: () => Date): Logger {
  return {
    event(subsystem, message) {
      write(`${wall().toISOString()} ${node} ${subsystem} ${message}\n`)
    },
  }
}
