// `carpd rules -c FILE`: the multi-WAN rules carpd would load for these WAN states
// (all up by default), with each WAN's own address as the board has it now (SNAT
// goes to the pair's VIP on a WAN instead where a carp.N block shares its interface).

import { EXIT_OK, EXIT_USAGE } from '../config/constants.js'
import { interfaceNet } from '../platform/host.js'
import { RulesError, parseWanStates, renderRules } from '../wan/rules/index.js'
import { type Args, DEFAULT_CONFIG } from './args.js'
import { loadOrExit } from './config-file.js'
import { HELP } from './help.js'

export function rules(args: Args): number {
  // No secrets needed.
  const config = loadOrExit(args.config ?? DEFAULT_CONFIG, false)
  try {
    // A file without WAN blocks is told so (by renderRules) before any word on the states.
    const states = args.wanState === undefined || config.wans.length === 0 ? null : parseWanStates(args.wanState, config.wans)
    const addresses = new Map<string, string>()
    for (const w of config.wans) {
      const address = interfaceNet(w.interface)?.address
      if (address !== undefined) addresses.set(w.interface, address)
    }
    process.stdout.write(renderRules(config, states, { routes: args.routes, addresses }))
    return EXIT_OK
  } catch (err) {
    if (!(err instanceof RulesError)) throw err
    process.stderr.write(`carpd rules: ${err.message}\n${err.code === 'badWanState' ? HELP.rules : ''}`)
    return EXIT_USAGE
  }
}
