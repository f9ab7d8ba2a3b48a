import t from 'tap'
import { controlToken, parseControlRequest, tokenValid } from '../src/control.js'
import { makeConfig, vhidConfig } from './helpers/agents.js'

t.test('parseControlRequest accepts the three commands and refuses the rest', async (t) => {
  const p = (s: string) => parseControlRequest(Buffer.from(s))
  t.same(p('{"cmd":"status"}'), { cmd: 'status' })
  t.same(p('{"cmd":"maint","on":true}'), { cmd: 'maint', on: true })
  t.same(p('{"cmd":"demote","value":7}'), { cmd: 'demote', value: 7 })
  t.same(p('{"cmd":"demote","value":7,"token":"ab"}'), { cmd: 'demote', value: 7, token: 'ab' })
  t.same(p('{"cmd":"resync","token":"ab"}'), { cmd: 'resync', token: 'ab' })
  t.same(p('{"cmd":"resync"}'), { cmd: 'resync' })
  t.same(p('{"cmd":"maint","on":false,"token":5}'), { cmd: 'maint', on: false }, 'a token that is not text is no token')
  t.same(p('{"cmd":"maint","on":"yes"}'), { error: 'maint needs on: true|false' })
  t.same(p('{"cmd":"demote"}'), { error: 'demote needs a number' })
  t.same(p('{"cmd":"reboot"}'), { error: 'unknown command "reboot"' })
  t.same(p('nope'), { error: 'request is not JSON' })
  t.same(p('null'), { error: 'request is not an object' })
  t.same(parseControlRequest(Buffer.alloc(2000, 32)), { error: 'request too large' })
})

t.test('the control token depends on every password and the node name', async (t) => {
  const base = makeConfig('fw-a', [vhidConfig(), vhidConfig({ vhid: 2, pass: 'other' })])
  const token = controlToken(base)
  t.match(token, /^[0-9a-f]{64}$/)
  t.equal(controlToken(makeConfig('fw-a', [vhidConfig(), vhidConfig({ vhid: 2, pass: 'other' })])), token, 'deterministic')
  t.not(controlToken(makeConfig('fw-b', base.carp.vhids)), token, 'node name')
  t.not(controlToken(makeConfig('fw-a', [vhidConfig(), vhidConfig({ vhid: 2, pass: 'changed' })])), token, 'a password')
  t.ok(tokenValid(base, token))
  t.notOk(tokenValid(base, undefined))
  t.notOk(tokenValid(base, token.slice(1)))
  t.notOk(tokenValid(base, token.replace(/.$/, (c) => (c === '0' ? '1' : '0'))))
})
