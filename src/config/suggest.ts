// "Did you mean ...?" for misspelt keys and board names.
import { SCHEMA, instantiate } from './schema.js'

/** Words longer than this get no suggestion (the longest key is under 40 characters). */
export const SUGGEST_MAX_CHARS = 64

/** Edit distance: insertions, deletions and substitutions each cost 1. */
export function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution))
    }
    previous = current
  }
  return previous[b.length]
}

/**
 * The candidate closest to `word`, or '' when none is close enough to be a typo
 * rather than a different word: at most max(2, a third of the word's length).
 * Ties go to the earlier candidate, so schema order decides.
 */
export function nearest(word: string, candidates: readonly string[]): string {
  // No key or board name is this long: a longer word is no typo of one, and the
  // search grows with the product of the lengths (an 8 KB key froze a reload 6 s).
  if (word.length > SUGGEST_MAX_CHARS) return ''
  const limit = Math.max(2, Math.floor(word.length / 3))
  let best = ''
  let bestDistance = limit + 1
  for (const candidate of candidates) {
    // The distance is at least the difference in length: no need to compute it.
    if (Math.abs(candidate.length - word.length) >= bestDistance) continue
    const distance = levenshtein(word, candidate)
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return best
}

/**
 * The nearest valid key to an unknown one. Block rows are tried with the block
 * number the user wrote (carp.1.advskw → carp.1.advskew, crap.7.vip → carp.7.vip),
 * or with 1 when the key has no number at all.
 */
export function suggestKey(bad: string): string {
  const n = /\d{1,3}/.exec(bad)?.[0] ?? '1'
  return nearest(bad, SCHEMA.map((row) => instantiate(row.key, n)))
}
