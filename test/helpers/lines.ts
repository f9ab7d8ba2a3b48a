// Watches a child process's output line by line: the console lines of carpd, of
// ping, of tcpdump. Shared by the CLI tests and the namespace lab.
import type { ChildProcess } from 'node:child_process'

export interface Watched {
  child: ChildProcess
  lines: string[]
  /** Resolves with the first line (already seen or to come) matching `re`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>
  exited: Promise<number | null>
}

export function watchLines(child: ChildProcess, label: string, defaultTimeoutMs = 10_000): Watched {
  const lines: string[] = []
  const waiters: { re: RegExp; resolve: (line: string) => void }[] = []
  // One buffer per stream: with one for both, a chunk of stderr landed inside a line
  // of stdout and garbled it (the failback lab read no time from such a line).
  const reader = () => {
    let buffer = ''
    return (chunk: string) => {
      buffer += chunk
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        lines.push(line)
        for (const w of [...waiters]) {
          if (!w.re.test(line)) continue
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(line)
        }
      }
    }
  }
  child.stdout?.setEncoding('utf8').on('data', reader())
  child.stderr?.setEncoding('utf8').on('data', reader())
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  const waitFor = (re: RegExp, timeoutMs = defaultTimeoutMs): Promise<string> => {
    const seen = lines.find((l) => re.test(l))
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const waiter = { re, resolve: (line: string) => (clearTimeout(timer), resolve(line)) }
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1)
        reject(new Error(`${label}: no line matching ${re} within ${timeoutMs} ms; last lines:\n${lines.slice(-15).join('\n')}`))
      }, timeoutMs)
      waiters.push(waiter)
    })
  }
  return { child, lines, waitFor, exited }
}
