import t from 'tap'
import { levenshtein, nearest, suggestKey } from '../../src/config/suggest.js'

t.test('levenshtein', async (t) => {
  t.equal(levenshtein('', ''), 0)
  t.equal(levenshtein('abc', ''), 3)
  t.equal(levenshtein('', 'abc'), 3)
  t.equal(levenshtein('kitten', 'sitting'), 3)
  t.equal(levenshtein('advskw', 'advskew'), 1)
  t.equal(levenshtein('crap', 'carp'), 2)
})

t.test('nearest: closest candidate within max(2, len/3), ties to the first', async (t) => {
  t.equal(nearest('platfrom', ['node', 'platform']), 'platform')
  t.equal(nearest('xyz', ['node', 'platform']), '', 'nothing close')
  t.equal(nearest('ab', ['abcd', 'abce']), 'abcd', 'distance 2 is allowed for short words; first wins')
  t.equal(nearest('ab', ['abcde']), '')
  // 12 characters allow 4 edits.
  t.equal(nearest('heartbeatxxxx', ['heartbeat']), 'heartbeat')
  t.equal(nearest('heartbeatxxxxx', ['heartbeat']), '')
})

t.test('suggestKey uses the block number the user wrote', async (t) => {
  t.equal(suggestKey('carp.1.advskw'), 'carp.1.advskew')
  t.equal(suggestKey('crap.1.vip'), 'carp.1.vip')
  t.equal(suggestKey('wna.7.weight'), 'wan.7.weight')
  t.equal(suggestKey('carp1.vip'), 'carp.1.vip')
  t.equal(suggestKey('carp.preemt'), 'carp.preempt')
  t.equal(suggestKey('heartbeat.intervall'), 'heartbeat.interval')
  t.equal(suggestKey('carp.advskew'), 'carp.1.advskew', 'no number: block 1 is offered')
  t.equal(suggestKey('totally.unrelated.thing'), '')
})
