// The command line: `carpd [COMMAND] [WORDS] [OPTIONS]`, parsed without a library.

export const DEFAULT_CONFIG = '/cf/carpd.conf'
export const DEFAULT_CONTROL_PORT = 8239

export interface Args {
  command: string
  positional: string[]
  config: string | undefined
  dryRun: boolean
  json: boolean
  help: boolean
  routes: boolean // rules --routes
  system: boolean // check --system
  wanState: string | undefined // rules --wan-state
}

/** Commands that take words after them; the others take options only. */
export const TAKES_WORDS = new Set(['ctl', 'help', 'fence'])

/** The arguments, or a message saying what is wrong with them. */
export function parseArgs(argv: readonly string[]): Args | string {
  const args: Args = {
    command: 'run',
    positional: [],
    config: undefined,
    dryRun: false,
    json: false,
    help: false,
    routes: false,
    system: false,
    wanState: undefined,
  }
  const rest = [...argv]
  if (rest[0] !== undefined && !rest[0].startsWith('-')) args.command = rest.shift()!
  while (rest.length > 0) {
    const arg = rest.shift()!
    if (arg === '-c' || arg === '--config') {
      const file = rest.shift()
      if (file === undefined) return `${arg} needs a file name`
      args.config = file
    } else if (arg.startsWith('--config=')) args.config = arg.slice('--config='.length)
    else if (arg === '--dry-run') args.dryRun = true
    else if (arg === '--routes') args.routes = true
    else if (arg === '--system') args.system = true
    else if (arg === '--wan-state') {
      const states = rest.shift()
      if (states === undefined) return `${arg} needs a list such as up,down`
      args.wanState = states
    }
    else if (arg === '--json') args.json = true
    else if (arg === '-h' || arg === '--help') args.help = true
    else if (arg.startsWith('-') && !/^-\d+$/.test(arg)) return `unknown option ${arg}`
    else args.positional.push(arg)
  }
  return args
}
