// CPU and memory of a process from /proc, shared by the bench scripts.
import { readdirSync, readFileSync } from 'node:fs'

/**
 * CPU time of every thread of a process in seconds, from /proc/PID/task/TID/schedstat
 * (nanoseconds on CPU): /proc/PID/stat counts in 10 ms ticks, too coarse for an idle
 * process over half a minute.
 */
export function cpuSeconds(pid) {
  let ns = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
  }
  return ns / 1e9
}

/**
 * Resident memory in MB: total, anonymous (heap, stacks) and file-backed (the node
 * binary's pages), and the proportional share (PSS: shared pages divided among the
 * processes that map them, so a second node process is not counted twice).
 */
export function rss(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (text, field) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(text)?.[1] ?? NaN)
  let pssMb = NaN
  try {
    pssMb = kb(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss') / 1024
  } catch {
    // no smaps_rollup on this kernel
  }
  return { totalMb: kb(status, 'VmRSS') / 1024, anonMb: kb(status, 'RssAnon') / 1024, fileMb: kb(status, 'RssFile') / 1024, pssMb }
}
