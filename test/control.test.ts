import t from 'tap'
import { ControlNonces, NONCES_MAX, NONCE_TTL_MS, controlKey, macValid, parseControlRequest, requestMac } from '../src/control.js'
import { makeConfig, vhidConfig } from './helpers/agents.js'

t.test('parseControlRequest accepts the commands and refuses the rest', async (t) => {
  const p = (s: string) => parseControlRequest(Buffer.from(s))
  const nonce = 'ab'.repeat(16)
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

t.test('challenges: one use each, within 5 s, at most 32 outstanding', async (t) => {
  let i = 0
  const nonces = new ControlNonces((bytes) => Buffer.alloc(bytes, ++i))
  const first = nonces.issue(0)
  t.ok(nonces.take(first, NONCE_TTL_MS))
  t.notOk(nonces.take(first, 1), 'used up')
  t.notOk(nonces.take(undefined, 1))
  t.notOk(nonces.take(nonces.issue(0), NONCE_TTL_MS + 1), 'too late')
  const flood = Array.from({ length: NONCES_MAX + 1 }, () => nonces.issue(10))
  t.notOk(nonces.take(flood[0], 11), 'the oldest gave way')
  t.ok(nonces.take(flood[NONCES_MAX], 11))
})
