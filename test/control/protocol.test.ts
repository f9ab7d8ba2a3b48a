import t from 'tap'
import { ControlNonces, NONCES_MAX, NONCE_TTL_MS, controlKey, macValid, parseControlRequest, requestMac } from '../../src/control/protocol.js'
import { makeConfig, vhidConfig } from '../helpers/agents.js'

t.test('parseControlRequest accepts the commands and refuses the rest', async (t) => {
  const p = (s: string) => parseControlRequest(Buffer.from(s))
  const nonce = 'ab'.repeat(38)
  t.same(p('{"cmd":"status"}'), { cmd: 'status' })
  t.same(p('{"cmd":"challenge"}'), { cmd: 'challenge' })
  t.same(p('{"cmd":"maint","on":true}'), { cmd: 'maint', on: true })
  t.same(p('{"cmd":"demote","value":7}'), { cmd: 'demote', value: 7 })
  t.same(p(`{"cmd":"demote","value":7,"nonce":"${nonce}","mac":"cd"}`), { cmd: 'demote', value: 7, nonce, mac: 'cd' })
  t.same(p(`{"cmd":"resync","nonce":"${nonce}"}`), { cmd: 'resync', nonce })
  t.same(p('{"cmd":"resync"}'), { cmd: 'resync' })
  t.same(p('{"cmd":"maint","on":false,"nonce":"XYZ","mac":5}'), { cmd: 'maint', on: false }, 'a nonce that is not ours and a mac that is not text are none')
  t.same(p('{"cmd":"maint","on":false,"token":"ab"}'), { cmd: 'maint', on: false }, 'the static token of older versions counts for nothing')
  t.same(p('{"cmd":"maint","on":"yes"}'), { error: 'maint needs on: true|false' })
  t.same(p('{"cmd":"demote"}'), { error: 'demote needs a number' })
  t.same(p('{"cmd":"reboot"}'), { error: 'unknown command "reboot"' })
  t.same(p('{"cmd":"constructor"}'), { error: 'unknown command "constructor"' })
  t.same(p('nope'), { error: 'request is not JSON' })
  t.same(p('null'), { error: 'request is not an object' })
  t.same(parseControlRequest(Buffer.alloc(2000, 32)), { error: 'request too large' })
})

t.test('the challenge answer depends on every password, the node name, the nonce and the request', async (t) => {
  const base = makeConfig('fw-a', [vhidConfig(), vhidConfig({ vhid: 2, pass: 'other' })])
  const n = 'ab'.repeat(16)
  const mac = requestMac(base, n, { cmd: 'maint', on: true })
  t.match(mac, /^[0-9a-f]{64}$/)
  t.equal(requestMac(makeConfig('fw-a', [vhidConfig(), vhidConfig({ vhid: 2, pass: 'other' })]), n, { cmd: 'maint', on: true }), mac, 'deterministic')
  t.not(requestMac(makeConfig('fw-b', base.carp.vhids), n, { cmd: 'maint', on: true }), mac, 'node name')
  t.not(requestMac(makeConfig('fw-a', [vhidConfig(), vhidConfig({ vhid: 2, pass: 'changed' })]), n, { cmd: 'maint', on: true }), mac, 'a password')
  t.not(requestMac(base, 'cd'.repeat(16), { cmd: 'maint', on: true }), mac, 'the nonce')
  t.not(requestMac(base, n, { cmd: 'maint', on: false }), mac, 'the request')
  t.ok(macValid(base, { cmd: 'maint', on: true, nonce: n, mac }))
  t.notOk(macValid(base, { cmd: 'maint', on: true, nonce: n }))
  t.notOk(macValid(base, { cmd: 'maint', on: true, nonce: n, mac: mac.slice(1) }))
  t.notOk(macValid(base, { cmd: 'maint', on: true, nonce: n, mac: mac.replace(/.$/, (c: string) => (c === '0' ? '1' : '0')) }))
  t.match(controlKey(base), /^[0-9a-f]{64}$/)
})

t.test("challenges: the agent's own, in time, spent once; a flood of asks crowds nobody out", async (t) => {
  let i = 0
  const nonces = new ControlNonces((bytes) => Buffer.alloc(bytes, ++i))
  const first = nonces.issue(0)
  t.match(first, /^[0-9a-f]{76}$/)
  t.equal(nonces.refuse(first, NONCE_TTL_MS), null, 'good until it expires')
  nonces.spend(first, 1)
  t.equal(nonces.refuse(first, 2), 'the challenge was used already')
  t.equal(nonces.refuse(undefined, 1), 'no challenge answered (ask the agent for one first)')
  t.equal(nonces.refuse(nonces.issue(0), NONCE_TTL_MS + 1), 'the challenge expired')
  t.equal(nonces.refuse(first.replace(/.$/, (c) => (c === '0' ? '1' : '0')), 2), 'a challenge this agent never issued', 'a forged tag')
  const other = new ControlNonces((bytes) => Buffer.alloc(bytes, 0xee))
  t.equal(nonces.refuse(other.issue(0), 1), 'a challenge this agent never issued', "another agent's")
  const mine = nonces.issue(10)
  for (let k = 0; k < 10_000; k++) nonces.issue(10) // a local user asking in a loop
  t.equal(nonces.refuse(mine, 11), null, "the operator's challenge still holds")
  // Spent nonces are remembered until they expire, at most NONCES_MAX at once.
  const spent = Array.from({ length: NONCES_MAX + 1 }, () => nonces.issue(20))
  for (const n of spent) nonces.spend(n, 21)
  t.equal(nonces.refuse(spent[NONCES_MAX], 22), 'the challenge was used already')
  t.equal(nonces.refuse(spent[5], NONCE_TTL_MS + 21), 'the challenge expired', 'expired ones need no memory')
})
