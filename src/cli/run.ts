// `carpd run -c FILE [--dry-run]`: the board (daemon/board.ts) on the real edges:
// UDP sockets, the Linux platform (or the dry run's), conntrack, the serial port, the
// fence child, the control socket; and the signals that stop, reload and report it.

import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { uptime } from 'node:os'
import { setFlagsFromString } from 'node:v8'
import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE } from '../config/constants.js'
import { errorLines } from '../config/render.js'
import type { Config } from '../config/types.js'
import { renderStatus } from '../control/render.js'
import { type BoardIo, openBoard } from '../daemon/board.js'
import { type Clock, realClock } from '../io/clock.js'
import { startControlServer } from '../io/control.js'
import type { Logger } from '../io/log.js'
import { openUdpTransport } from '../io/udp.js'
import { conntrackBackend, pickupWarning } from '../platform/conntrack.js'
import { dryRunPlatform, dryRunSyncBackend } from '../platform/dryrun.js'
import { type Runner, execRunner } from '../platform/exec.js'
import { FENCE_AFTERMATH_MS, earlierFences, spawnFence } from '../platform/fence.js'
import { addressNow, hasInterface, interfaceNet, linkMtu } from '../platform/host.js'
import { linuxPlatform } from '../platform/linux.js'
import { ipBatchRunner } from '../platform/ip-batch.js'
import type { Platform } from '../platform/types.js'
import { fileLedger, linuxVmacs, procInterfaces, procSysctl } from '../platform/vmac.js'
import { SerialLine } from '../platform/serial.js'
import { dryRunWanApplier, linuxWanApplier, reversePathWarning } from '../platform/wan.js'
import { type Args, DEFAULT_CONFIG } from './args.js'
import { loadOrExit, readConfig } from './config-file.js'
import { commandLogger } from './logger.js'

/** How long a stopping carpd waits for its last syslog datagrams to leave. */
const SYSLOG_DRAIN_MS = 100

export async function run(args: Args): Promise<number> {
  // Keep V8's young generation at its first size instead of letting it grow to 32 MB
  // under a burst of sync traffic: that reservation alone broke the 80 MB budget for
  // 100,000 synced flows (npm run bench; sync/README.md). A flag read when the
  // heap grows, so setting it here works, unlike --max-semi-space-size.
  setFlagsFromString('--semi-space-growth-factor=1')
  const file = args.config ?? DEFAULT_CONFIG
  const config = loadOrExit(file)
  if (config.carp.vhids.length === 0 && config.wans.length === 0) {
    process.stderr.write(`carpd: ${file}: nothing to run: no carp.N block (e.g. carp.1.interface, carp.1.vip, carp.1.pass) and no wan.N block\n`)
    return EXIT_USAGE
  }
  if (config.wans.length > 0 && config.wanRules === 'pf' && !args.dryRun) {
    process.stderr.write(`carpd: wan.rules = pf: \`carpd rules\` prints them for pfctl, but loading them needs the BSD platform, not in this version (use iptables or nft on Linux)\n`)
    return EXIT_RUNTIME
  }
  if (!args.dryRun && config.platform !== 'linux') {
    process.stderr.write(`carpd: platform ${config.platform}: only linux (or --dry-run) is in this version\n`)
    return EXIT_RUNTIME
  }
  const clock = realClock()
  const log = commandLogger(config, clock)
  const board = await openBoard({ config, clock, log, random: randomBytes, io: realIo(config, args.dryRun, log, clock) })
  if (typeof board === 'string') {
    process.stderr.write(`carpd: ${board}\n`)
    return EXIT_RUNTIME
  }
  await board.start()

  let stopping = false
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    log.event('carpd', `${signal}: stopping`)
    await board.stop()
    // The last lines' datagrams go out on the next turns of the loop (the address is
    // looked up first): give them a moment before the process ends.
    if (config.log.syslog !== null) await new Promise((r) => setTimeout(r, SYSLOG_DRAIN_MS))
    process.exit(EXIT_OK)
  }
  process.on('SIGTERM', () => void stop('SIGTERM'))
  process.on('SIGINT', () => void stop('SIGINT'))
  process.on('SIGUSR1', () => {
    for (const line of renderStatus(board.status()).trimEnd().split('\n')) log.event('status', line)
  })
  process.on('SIGHUP', () => {
    const result = readConfig(file)
    if (!result.ok) {
      log.event('config', `reload rejected, keeping the running configuration: ${result.errors.length} error(s)`)
      for (const line of errorLines(result.errors)) log.event('config', line)
      return
    }
    const notes = board.reload(result.config)
    if (notes !== null) log.event('config', `reloaded ${file}${notes.length ? '' : ' (no change to the vhids)'}`)
  })
  return new Promise<number>(() => {}) // runs until a signal stops it
}

/** The Linux platform: VIP and macvlan changes through one running `ip -batch` (platform/ip-batch.ts). */
function linuxPlatformWithBatch(log: Logger): Platform {
  const run = ipBatchRunner(execRunner)
  return linuxPlatform({ run, log, vmacs: linuxVmacs({ run, log, sysctl: procSysctl, interfaces: procInterfaces, ledger: fileLedger() }) })
}

/** The real edges; --dry-run logs the OS commands (ip, arping, stty, hooks, rules) instead. */
function realIo(config: Config, dryRun: boolean, log: Logger, clock: Clock): BoardIo {
  const logOnly: Runner = async (argv) => {
    log.event('dry-run', argv.join(' '))
    return { code: 0, stdout: '', stderr: '', timedOut: false }
  }
  const fenceArgv = [process.execPath, process.argv[1]!, 'fence', config.node]
  return {
    platform: dryRun ? dryRunPlatform(log) : linuxPlatformWithBatch(log),
    interfaceNet,
    hasInterface,
    addressNow,
    linkMtu,
    openUdp: openUdpTransport,
    startControl: startControlServer,
    syncBackend: () => (dryRun ? dryRunSyncBackend(log) : conntrackBackend({ log })),
    // --dry-run logs stty instead of running it; the port itself is still opened.
    serialPort: (opts) => new SerialLine({ ...opts, run: dryRun ? logOnly : execRunner, clock, log }),
    wanApplier: () => (dryRun ? dryRunWanApplier(log) : linuxWanApplier({ run: execRunner, log })),
    reversePathWarning: (iface) => reversePathWarning(iface, (path) => readFileSync(path, 'utf8')),
    // A dry run loads nothing: the host's kernel settings are not its concern.
    pickupWarning: dryRun ? undefined : () => pickupWarning((path) => readFileSync(path, 'utf8')),
    spawnFence: (onExpired) => (dryRun ? null : spawnFence({ argv: fenceArgv, log, onExpired })),
    // A carpd restarted on a board up for a while is no power-on (quorum/README.md).
    uptimeMs: dryRun ? undefined : () => uptime() * 1000,
    earlierFencesGone: dryRun ? undefined : async () => {
      // A fence an earlier, killed carpd left still watches its VIPs for a few seconds;
      // starting next to it, it could take the VIPs this run adds off again.
      const until = Date.now() + FENCE_AFTERMATH_MS + 2000
      for (let said = false; Date.now() < until; said = true) {
        const pids = earlierFences(fenceArgv)
        if (pids.length === 0) return
        if (!said) log.event('fence', `the fence of an earlier run (pid ${pids.join(', ')}) still watches its VIPs: starting when it is done (${FENCE_AFTERMATH_MS / 1000} s at most)`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      log.event('fence', 'the fence of an earlier run is still there: starting anyway')
    },
  }
}
