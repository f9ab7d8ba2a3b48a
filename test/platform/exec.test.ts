import t from 'tap'
import { execRunner } from '../../src/platform/exec.js'

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
