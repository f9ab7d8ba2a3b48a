// carpd's entry point: parse argv and hand over to the command (cli/). The board and
// everything below it are built in daemon/board.ts and testable without the OS.

import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, VERSION } from './config/constants.js'
import { renderReference } from './config/render.js'
import { TAKES_WORDS, parseArgs } from './cli/args.js'
import { check } from './cli/check.js'
import { fence } from './cli/fence.js'
import { HELP } from './cli/help.js'
import { rules } from './cli/rules.js'
import { run } from './cli/run.js'
import { ask, ctlRequest } from './cli/status.js'
import { witness } from './cli/witness.js'

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv)
  if (typeof args === 'string') return usage(`carpd: ${args}\n${HELP.main}`)
  const help = Object.hasOwn(HELP, args.command) ? HELP[args.command] : undefined
  if (help === undefined) return usage(`carpd: unknown command ${args.command}\n${HELP.main}`)
  if (args.positional.length > 0 && !TAKES_WORDS.has(args.command)) return usage(`carpd ${args.command}: unexpected ${args.positional.join(' ')}\n${help}`)
  if (args.help) {
    // `carpd --help` alone is about carpd, not about the default command.
    process.stdout.write(argv[0] === args.command ? help : HELP.main!)
    return EXIT_OK
  }
  switch (args.command) {
    case 'run':
      return run(args)
    case 'check':
      return check(args)
    case 'status':
      return ask(args, { cmd: 'status' })
    case 'ctl': {
      const req = ctlRequest(args.positional)
      return typeof req === 'string' ? usage(`carpd: ${req}\n${HELP.ctl}`) : ask(args, req)
    }
    case 'version':
      process.stdout.write(`carpd ${VERSION}\n`)
      return EXIT_OK
    case 'help':
      process.stdout.write(args.positional[0] === 'config' ? renderReference() : HELP.main!)
      return EXIT_OK
    case 'witness':
      return witness(args)
    case 'fence':
      return fence(args.positional[0] ?? 'carpd')
    case 'rules':
      return rules(args)
    default:
      return usage(HELP.main!)
  }
}

function usage(text: string): number {
  process.stderr.write(text)
  return EXIT_USAGE
}

// A fault that escapes every handler is a runtime failure (exit 2, SPEC), not Node's
// own exit 1, which means a bad file or bad usage: a service manager restarts carpd
// after the first and not after the second (boards/service/carpd.service).
const fatal = (err: unknown): never => {
  process.stderr.write(`carpd: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  process.exit(EXIT_RUNTIME)
}
process.on('uncaughtException', fatal)
process.on('unhandledRejection', fatal)

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`carpd: ${err.stack ?? err.message}\n`)
    process.exit(EXIT_RUNTIME)
  },
)
