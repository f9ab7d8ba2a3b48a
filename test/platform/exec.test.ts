import t from 'tap'
import { readFileSync } from 'node:fs'
import { execRunner } from '../../src/platform/exec.js'

/** Running, not a zombie waiting for whoever inherited it to reap it. */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

t.test('exit codes, output, timeouts and missing programs', async (t) => {
  t.match(await execRunner(['sh', '-c', 'echo out; echo err >&2'], 5000), { code: 0, stdout: 'out\n', stderr: 'err\n', timedOut: false })
  t.match(await execRunner(['sh', '-c', 'exit 3'], 5000), { code: 3, timedOut: false })
  const slow = await execRunner(['sleep', '5'], 100)
  t.match(slow, { code: -1, timedOut: true })
  const missing = await execRunner(['/nonexistent/carpd-test'], 1000)
  t.equal(missing.code, -1)
  t.match(missing.stderr, /ENOENT/)
  // Arguments are passed as they are: no shell sees them.
  t.match(await execRunner(['printf', '%s', '$(echo no); rm -rf /'], 1000), { stdout: '$(echo no); rm -rf /' })
})

t.test('a command that leaves a process behind returns when it exits', async (t) => {
  const started = performance.now()
  const r = await execRunner(['sh', '-c', 'sleep 3 & echo $!'], 5000)
  t.equal(r.code, 0)
  t.ok(performance.now() - started < 1000, 'not held until the background sleep ends')
  const pid = Number(r.stdout.trim())
  t.ok(alive(pid), 'the background process is the hook\'s business')
  process.kill(pid, 'SIGKILL')
})

t.test('a timeout kills the whole process group', async (t) => {
  const r = await execRunner(['sh', '-c', 'sleep 30 & echo $!; wait'], 300)
  t.equal(r.timedOut, true)
  const pid = Number(r.stdout.trim())
  await new Promise((res) => setTimeout(res, 100))
  t.notOk(alive(pid), 'the grandchild died with it')
})
