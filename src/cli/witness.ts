// `carpd witness -c FILE`: the third host of split-brain protection (quorum/witness-server.ts).

import { realClock } from '../io/clock.js'
import { lineLogger } from '../io/log.js'
import { runWitness } from '../quorum/witness-server.js'
import { type Args, DEFAULT_CONFIG } from './args.js'
import { loadOrExit } from './config-file.js'

export function witness(args: Args): Promise<number> {
  const config = loadOrExit(args.config ?? DEFAULT_CONFIG)
  const clock = realClock()
  return runWitness({ config, clock, log: lineLogger(config.node, (line) => process.stdout.write(line), clock.wall) })
}
