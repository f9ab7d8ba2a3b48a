// `carpd witness -c FILE`: the third host of split-brain protection (quorum/witness-server.ts).

import { realClock } from '../io/clock.js'
import { runWitness } from '../quorum/witness-server.js'
import { type Args, DEFAULT_CONFIG } from './args.js'
import { loadOrExit } from './config-file.js'
import { commandLogger } from './logger.js'

export function witness(args: Args): Promise<number> {
  const config = loadOrExit(args.config ?? DEFAULT_CONFIG)
  const clock = realClock()
  return runWitness({ config, clock, log: commandLogger(config, clock) })
}
