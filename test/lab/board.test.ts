// The board lab (issue 16) in the suite: `npm run board-lab` builds the apu2 image
// (its Debian root cached under /var/cache/carpd-image) and boots two copies under
// QEMU as a pair; this file runs it and asserts what it measured, item by item. Needs
// root, QEMU and the image tools; skipped otherwise, a failure with CARPD_LAB=required.
import { spawn, spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import t from 'tap'
import { LAB_REQUIRED, labUnavailable } from './netlab.js'

const BOARD_LAB = resolve(import.meta.dirname ?? __dirname, '../../scripts/board-lab.mjs')
/** The tools the image build and the board lab run, and the Debian package of each. */
const TOOLS: Record<string, string> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  mmdebstrap: 'mmdebstrap',
  mcopy: 'mtools',
  sfdisk: 'fdisk',
  'mkfs.vfat': 'dosfstools',
  syslinux: 'syslinux',
  tcpdump: 'tcpdump',
  socat: 'socat',
}
/** The namespace lab's failover at advbase 1 (README, Figures); the goal is twice it, a lab run may take three times. */
const NAMESPACE_FAILOVER_MS = 2858

interface BoardLabResult {
  passed: boolean
  error?: string
  firstAdvertMs?: number
  bothUpMs?: number
  senders?: string[]
  dual?: boolean
  master?: string
  takeoverMs?: number
  tcpResumed?: boolean
  tcpReset?: boolean
  longestEchoGapMs?: number
  returnUpMs?: number
  sendersAfterReturn?: string[]
  consoles?: Record<string, string[]>
}

function boardLabUnavailable(): string | null {
  const why = labUnavailable()
  if (why !== null) return why
  const missing = Object.entries(TOOLS).filter(([tool]) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
  return missing.length === 0 ? null : `missing ${missing.map(([tool]) => tool).join(', ')}: apt-get install -y ${[...new Set(missing.map(([, pkg]) => pkg))].join(' ')}`
}

/** Runs the board lab; its output lines, exit code and the result it printed last. */
function runBoardLab(): Promise<{ code: number | null; lines: string[]; result: BoardLabResult | null }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BOARD_LAB], { stdio: ['ignore', 'pipe', 'pipe'] })
    const lines: string[] = []
    const take = (d: Buffer): void => {
      lines.push(...d.toString().split('\n').filter(Boolean))
    }
    child.stdout.on('data', take)
    child.stderr.on('data', take)
    child.on('close', (code) => {
      const json = [...lines].reverse().find((l) => l.startsWith('board lab result: '))
      done({ code, lines, result: json === undefined ? null : (JSON.parse(json.slice('board lab result: '.length)) as BoardLabResult) })
    })
  })
}

const why = boardLabUnavailable()
if (why !== null) {
  if (LAB_REQUIRED) t.fail(`CARPD_LAB=required but the board lab cannot run: ${why}`)
  else t.plan(0, `board lab skipped: ${why}`)
} else {
  // An image from a cold cache (about 3 minutes) and three boots under TCG (about a minute each).
  t.setTimeout(1_200_000)
  t.test('two boards power on, lose the master, get it back: one master, the preferred one, and the TCP stream goes on', async (t) => {
    const { code, lines, result } = await runBoardLab()
    // Its figures, then the end of its output (the consoles' carpd lines).
    t.comment(lines.filter((l) => !l.startsWith(' ') && !l.startsWith('board lab result: ')).join('\n'))
    t.comment(lines.slice(-40).join('\n'))
    t.ok(result !== null, 'the board lab printed its result')
    if (result === null) return
    t.equal(result.error, undefined, `the board lab ran to its end (${result.error ?? 'no error'})`)
    t.equal(result.dual, false, `never both boards advertising at the power-on (senders in order: ${result.senders?.join(', ')})`)
    t.equal(result.master, 'A', `the preferred board A is master once both carpd are up and settled (first advert ${result.firstAdvertMs} ms after power-on, both up after ${result.bothUpMs} ms)`)
    const takeover = result.takeoverMs ?? -1
    t.ok(takeover >= 0 && takeover <= 3 * NAMESPACE_FAILOVER_MS, `B advertises ${takeover} ms after A's power-off (goal ${2 * NAMESPACE_FAILOVER_MS} ms, lab bound ${3 * NAMESPACE_FAILOVER_MS} ms)`)
    t.ok(result.tcpResumed === true && result.tcpReset === false, `the client's TCP stream goes on through B, no reset (longest gap between echoes ${result.longestEchoGapMs} ms)`)
    t.same(result.sendersAfterReturn, ['B'], `A powered on again comes back as backup: only B advertises after (A's carpd up after ${result.returnUpMs} ms)`)
    const consoles = result.consoles ?? {}
    const bLast = consoles.B?.filter((l) => /vhid=1 \w+->\w+/.test(l)).at(-1) ?? 'no transition'
    t.match(bLast, /vhid=1 BACKUP->MASTER/, `B's console ends on its takeover: ${bLast}`)
    t.ok(consoles.A?.some((l) => /vhid=1 INIT->BACKUP/.test(l)) && !consoles.A.some((l) => /->MASTER/.test(l)), "A's console, since its return, shows it back as backup and never master")
    t.equal(code, takeover <= 2 * NAMESPACE_FAILOVER_MS ? 0 : 1, 'the board lab\'s own verdict agrees (it holds the takeover to the goal)')
  })
}
