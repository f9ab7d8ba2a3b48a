// carpd.conf text → validated Config (SPEC "Configuration file").
//
//   lex → board profile first, then the card's file over it → each entry checked
//   against SCHEMA → required keys → cross-key rules → secret files → Config
//
// Every error is collected (a user fixing a card at a serial console wants them all at
// once), none is thrown. Pure: the file system is reached only through deps.readFile.
import { inSubnet, isIpv6 } from '../wire/ip.js'
import { HEARTBEAT_TIMEOUT_MIN_INTERVALS, MASTER_DOWN_INTERVALS, NODE_NAME_MAX_CHARS, SKEW_UNIT_MS, vmacName } from './constants.js'
import { configError } from './errors.js'
import { lex, type Entry } from './lexer.js'
import {
  SCHEMA,
  SECRET_PAIRS,
  allowedText,
  blockPrefix,
  formatMs,
  instantiate,
  resolveKey,
  rowByKey,
  type KeyRow,
} from './schema.js'
import { nearest, suggestKey } from './suggest.js'
import type {
  Cidr,
  Config,
  ConfigError,
  EffectiveEntry,
  Endpoint,
  LoadResult,
  PlatformName,
  ValueSource,
  VhidConfig,
  WanConfig,
} from './types.js'
import { parseValue, type Value } from './values.js'

export interface LoadDeps {
  /** Reads a secret file (carp.N.passfile, ...); throws when it cannot. */
  readFile(path: string): string
  /** Board profiles by name: the text of boards/NAME.conf (see boards.gen.ts). */
  boards: Record<string, string>
}

/** One key's value, wherever it came from. */
interface Setting {
  row: KeyRow
  value: Value
  text: string // normalised
  source: ValueSource
  file: string
  line: number
}

/** Everything the steps share while one file is loaded. */
interface Load {
  file: string
  board: string // '' = no board profile
  errors: ConfigError[]
  settings: Map<string, Setting> // by concrete key; the card's file overrides the board
  written: Set<string> // concrete keys written in the card's file, valid or not
  rejected: Set<string> // concrete keys whose value was bad (already reported)
  blocks: Map<string, Map<number, number>> // prefix → N → first line of the block
  suggestions: number // "did you mean" searches made (bounded: SUGGESTIONS_MAX)
}

/**
 * Unknown keys that get a "did you mean": each search costs a little, and a file of
 * 40,000 unknown keys must not keep a reload busy for seconds. The rest are still
 * reported, without a suggestion.
 */
export const SUGGESTIONS_MAX = 50

/** Keys naming a file a secret is read from (carp.N.passfile, sync.keyfile ...). */
const SECRET_FILE_KEYS: ReadonlySet<string> = new Set(SECRET_PAIRS.map((pair) => pair.file))

export function loadConfig(text: string, file: string, deps: LoadDeps): LoadResult {
  const load = newLoad(file)
  const card = lex(text, file)
  load.errors.push(...card.errors)

  const profile = findBoard(load, card.entries, deps.boards)
  applyEntries(load, profile, true)
  applyEntries(load, card.entries, false)

  checkRequired(load)
  checkSecretPairs(load)
  checkCarpTiming(load)
  checkCarpFamilies(load)
  checkHeartbeat(load)
  checkNodeName(load)
  checkPorts(load)
  checkWanProbe(load)
  checkSync(load)
  checkWitness(load)
  checkWanRules(load)
  readSecretFiles(load, deps.readFile)

  const warnings = boardWarnings(load)
  if (load.errors.length > 0) return { ok: false, errors: sortErrors(load), warnings }
  const config = buildConfig(load)
  const derived = heartbeatTiming(load).derived.timeout !== undefined
  return { ok: true, config, effective: effectiveEntries(load), warnings: [...warnings, ...timingWarnings(config, derived)] }
}

function newLoad(file: string): Load {
  return { file, board: '', errors: [], settings: new Map(), written: new Set(), rejected: new Set(), blocks: new Map(), suggestions: 0 }
}

// ---------------------------------------------------------------------------
// Board profile

/**
 * `board = NAME` may be written anywhere in the file, but its defaults must be laid
 * down before any of the file's own keys, so it is looked up first.
 */
function findBoard(load: Load, entries: Entry[], boards: Record<string, string>): Entry[] {
  const entry = entries.find((e) => e.key === 'board')
  // An empty or malformed name is reported when the entry itself is checked.
  if (entry === undefined || entry.value === '' || !parseValue(rowByKey('board')!, entry.value).ok) return []

  const text = Object.hasOwn(boards, entry.value) ? boards[entry.value] : undefined
  if (text === undefined) {
    const known = Object.keys(boards).sort()
    load.errors.push(
      configError({
        code: 'unknownBoard',
        file: entry.file,
        line: entry.line,
        key: entry.key,
        value: entry.value,
        what: 'no such board profile',
        allowed: known.join(', '),
        suggestion: nearest(entry.value, known),
      }),
    )
    return []
  }
  load.board = entry.value
  const lexed = lex(text, boardFile(entry.value))
  load.errors.push(...lexed.errors)
  return lexed.entries
}

function boardFile(board: string): string {
  return `boards/${board}.conf`
}

/**
 * Board profiles describe hardware, so they may set only global keys that every
 * installation of that board shares: no blocks, no node name, no secrets.
 */
function boardMaySet(row: KeyRow): boolean {
  return blockPrefix(row.key) === undefined && row.secret !== true && row.key !== 'node' && row.key !== 'board'
}

// ---------------------------------------------------------------------------
// Entries against the schema

function applyEntries(load: Load, entries: Entry[], fromBoard: boolean): void {
  const firstLine = new Map<string, number>()
  for (const entry of entries) {
    const previous = firstLine.get(entry.key)
    if (previous !== undefined) {
      load.errors.push(duplicateError(entry, previous))
      continue
    }
    firstLine.set(entry.key, entry.line)
    applyEntry(load, entry, fromBoard)
  }
}

function applyEntry(load: Load, entry: Entry, fromBoard: boolean): void {
  const resolved = resolveKey(entry.key)
  if (resolved.kind === 'unknown') {
    load.errors.push(unknownKeyError(entry, load.suggestions++ < SUGGESTIONS_MAX))
    return
  }
  const { row } = resolved
  // A secret's file key is as sensitive when its value is bad: `carp.1.passfile =
  // hunter2` is a secret typed into the wrong key.
  const secret = row.secret === true || SECRET_FILE_KEYS.has(row.key)
  const at = { file: entry.file, line: entry.line, key: entry.key, value: entry.value, secret }

  if (resolved.kind === 'badBlockNumber') {
    const { prefix, range } = resolved
    const allowed = `${prefix}.N with N (the ${range.what}) ${range.min}..${range.max}`
    load.errors.push(configError({ ...at, code: 'outOfRange', what: 'block number out of range', allowed }))
    return
  }
  if (fromBoard && !boardMaySet(row)) {
    const what = 'a board profile may set only global hardware keys, not this one'
    load.errors.push(configError({ ...at, code: 'conflict', what }))
    return
  }
  if (!fromBoard) load.written.add(entry.key)
  if (resolved.kind === 'block' && !fromBoard) noteBlock(load, resolved.prefix, resolved.n, entry.line)

  const parsed = parseValue(row, entry.value)
  if (!parsed.ok) {
    load.errors.push(configError({ ...at, code: parsed.code, what: parsed.why, allowed: allowedText(row) }))
    load.rejected.add(entry.key)
    return
  }
  const source: ValueSource = fromBoard
    ? { kind: 'board', board: load.board, line: entry.line }
    : { kind: 'file', file: entry.file, line: entry.line }
  load.settings.set(entry.key, { row, value: parsed.value, text: parsed.text, source, file: entry.file, line: entry.line })
}

function noteBlock(load: Load, prefix: string, n: number, line: number): void {
  let numbers = load.blocks.get(prefix)
  if (numbers === undefined) {
    numbers = new Map()
    load.blocks.set(prefix, numbers)
  }
  if (!numbers.has(n)) numbers.set(n, line)
}

/**
 * The value of an unknown key is never shown: a misspelt key is as likely as not
 * a misspelt secret (carp.1.passwd = ...).
 */
function unknownKeyError(entry: Entry, suggest: boolean): ConfigError {
  return configError({
    code: 'unknownKey',
    file: entry.file,
    line: entry.line,
    key: entry.key,
    what: 'unknown key',
    suggestion: suggest ? suggestKey(entry.key) : '',
  })
}

function duplicateError(entry: Entry, firstLine: number): ConfigError {
  const resolved = resolveKey(entry.key)
  return configError({
    code: 'duplicateKey',
    file: entry.file,
    line: entry.line,
    key: entry.key,
    value: entry.value,
    // Not shown for an unknown key either (carp.1.passwd = ... twice), nor a secret's file key.
    secret: resolved.kind === 'unknown' || resolved.row.secret === true || SECRET_FILE_KEYS.has(resolved.row.key),
    what: `set again; first set on line ${firstLine}`,
  })
}

// ---------------------------------------------------------------------------
// Required keys and rules between keys

function blockNumbers(load: Load, prefix: string): number[] {
  return [...(load.blocks.get(prefix)?.keys() ?? [])].sort((a, b) => a - b)
}

function checkRequired(load: Load): void {
  for (const row of SCHEMA) {
    if (row.required !== true) continue
    const prefix = blockPrefix(row.key)
    if (prefix === undefined) {
      if (!load.settings.has(row.key) && !load.written.has(row.key)) {
        load.errors.push(missingError(load, row, row.key, 0))
      }
      continue
    }
    for (const [n, line] of load.blocks.get(prefix) ?? []) {
      const key = instantiate(row.key, n)
      const fileKey = row.fromFile === undefined ? undefined : instantiate(row.fromFile, n)
      if (load.written.has(key) || (fileKey !== undefined && load.written.has(fileKey))) continue
      load.errors.push(missingError(load, row, key, line, fileKey))
    }
  }
}

function missingError(load: Load, row: KeyRow, key: string, line: number, fileKey?: string): ConfigError {
  const what = fileKey === undefined ? 'missing required key' : `missing: set ${key} or ${fileKey}`
  return configError({ code: 'missingKey', file: load.file, line, key, what, allowed: allowedText(row) })
}

interface SecretPair {
  row: KeyRow // the secret's row
  secretKey: string // e.g. carp.3.pass
  fileKey: string // e.g. carp.3.passfile
}

/** Every secret ↔ file pair this file may use: global ones, and one per numbered block. */
function secretPairs(load: Load): SecretPair[] {
  return SECRET_PAIRS.flatMap((pair) => {
    const row = rowByKey(pair.secret)!
    const prefix = blockPrefix(pair.secret)
    const numbers: (number | undefined)[] = prefix === undefined ? [undefined] : blockNumbers(load, prefix)
    return numbers.map((n) => ({
      row,
      secretKey: n === undefined ? pair.secret : instantiate(pair.secret, n),
      fileKey: n === undefined ? pair.file : instantiate(pair.file, n),
    }))
  })
}

/** A secret comes from the file or from its ...file key, never both. */
function checkSecretPairs(load: Load): void {
  for (const { secretKey, fileKey } of secretPairs(load)) {
    const fileSetting = load.settings.get(fileKey)
    const secretSetting = load.settings.get(secretKey)
    if (fileSetting === undefined || secretSetting === undefined) continue
    const what = `conflicts with ${secretKey} on line ${secretSetting.line}; set only one`
    load.errors.push(conflictError(fileSetting, fileKey, what))
  }
}

function conflictError(setting: Setting, key: string, what: string, allowed = ''): ConfigError {
  return configError({
    code: 'conflict',
    file: setting.file,
    line: setting.line,
    key,
    value: setting.text,
    secret: setting.row.secret === true,
    what,
    allowed,
  })
}

/** SPEC: in sub-second mode (advbase 0) the whole interval is advskew, so it must not be 0. */
function checkCarpTiming(load: Load): void {
  for (const n of blockNumbers(load, 'carp')) {
    const advbaseKey = `carp.${n}.advbase`
    const advbase = load.settings.get(advbaseKey)
    if (advbase === undefined || advbase.value !== 0) continue
    if (numberOf(load, `carp.${n}.advskew`) !== 0) continue
    load.errors.push(conflictError(advbase, advbaseKey, `sub-second mode needs carp.${n}.advskew of at least 1`))
  }
}

/**
 * A vhid advertises over IPv4 when it has an IPv4 VIP, else over IPv6 (wire/ip.ts):
 * its unicast peers must be of that family.
 */
function checkCarpFamilies(load: Load): void {
  for (const n of blockNumbers(load, 'carp')) {
    const vips = listOf<Cidr>(load, `carp.${n}.vip`)
    const peerKey = `carp.${n}.peer`
    const peers = load.settings.get(peerKey)
    if (vips.length === 0 || peers === undefined) continue
    const v6 = vips.every((vip) => isIpv6(vip.address))
    const other = listOf<Endpoint>(load, peerKey).find((p) => isIpv6(p.address) !== v6)
    if (other === undefined) continue
    const why = v6
      ? `vhid ${n} has only IPv6 VIPs, so it advertises over IPv6: its peers must be IPv6 addresses (${other.address} is not)`
      : `vhid ${n} has an IPv4 VIP, so it advertises over IPv4: its peers must be IPv4 addresses (${other.address} is not)`
    load.errors.push(conflictError(peers, peerKey, why))
  }
}

/** SPEC: the serial path is dead only after at least 2 missed frames. */
function checkHeartbeat(load: Load): void {
  if (numberOf(load, 'heartbeat.interval') === undefined || numberOf(load, 'heartbeat.timeout') === undefined) return
  const { intervalMs: interval, timeoutMs: timeout, derived } = heartbeatTiming(load)
  // A derived timeout spans 2 intervals by construction.
  if (derived.timeout !== undefined || timeout >= HEARTBEAT_TIMEOUT_MIN_INTERVALS * interval) return
  const [key, setting] = settingOfFirst(load, ['heartbeat.timeout', 'heartbeat.interval'])
  const times = `${formatMs(timeout)} < ${HEARTBEAT_TIMEOUT_MIN_INTERVALS} × ${formatMs(interval)}`
  const what = `heartbeat.timeout must be at least ${HEARTBEAT_TIMEOUT_MIN_INTERVALS} × heartbeat.interval (${times})`
  load.errors.push(conflictError(setting, key, what))
}

/** The node name travels in every heartbeat frame, which caps it (wire/heartbeat.ts). */
function checkNodeName(load: Load): void {
  const setting = load.settings.get('node')
  if (setting === undefined || typeof setting.value !== 'string' || setting.value.length <= NODE_NAME_MAX_CHARS) return
  load.errors.push(conflictError(setting, 'node', `node is ${setting.value.length} characters long`, `at most ${NODE_NAME_MAX_CHARS} characters (it is sent in every heartbeat)`))
}

/** The CARP socket and the control socket both bind UDP ports on this board. */
function checkPorts(load: Load): void {
  const carp = numberOf(load, 'carp.port')
  if (carp === undefined || carp !== numberOf(load, 'control.port')) return
  const [key, setting] = settingOfFirst(load, ['control.port', 'carp.port'])
  load.errors.push(conflictError(setting, key, 'control.port and carp.port must differ'))
}

/** Hysteresis needs the "up" threshold strictly better than the "down" one. */
function checkWanProbe(load: Load): void {
  for (const measure of ['loss', 'latency']) {
    const upKey = `wan.probe.${measure}.up`
    const downKey = `wan.probe.${measure}.down`
    const up = numberOf(load, upKey)
    const down = numberOf(load, downKey)
    if (up === undefined || down === undefined || up < down) continue
    const [key, setting] = settingOfFirst(load, [upKey, downKey])
    load.errors.push(conflictError(setting, key, `${upKey} must be below ${downKey}`))
  }
  // k of n: a WAN cannot need more answers than it has targets.
  for (const n of blockNumbers(load, 'wan')) {
    const needKey = `wan.${n}.probe.need`
    const need = load.settings.get(needKey)
    const targets = listOf<string>(load, `wan.${n}.probe`).length
    if (need === undefined || targets === 0 || (need.value as number) <= targets) continue
    load.errors.push(conflictError(need, needKey, `${needKey} is ${need.value} but wan.${n}.probe lists ${targets} target${targets === 1 ? '' : 's'}`, `at most ${targets}`))
  }
}

/** State sync needs somebody to talk to and a key to sign with. */
function checkSync(load: Load): void {
  const syncInterface = load.settings.get('sync.interface')
  if (syncInterface === undefined || syncInterface.value === '') return
  if (load.settings.get('sync.backend')?.value === 'none') return

  const line = syncInterface.line
  // A sync.peer with a bad value has been reported already.
  if (endpointOf(load, 'sync.peer') === null && !load.rejected.has('sync.peer')) {
    load.errors.push(missingWhen(load, 'sync.peer', line, 'needed when sync.interface is set'))
  }
  requireSecret(load, 'sync.key', 'sync.keyfile', line, 'needed when sync.interface is set')
  checkBackendPlatform(load, 'sync.backend', { conntrack: ['linux'], pf: ['freebsd', 'openbsd'] }, line)
}

/** A board taking part in witness votes, or the witness itself, needs the shared key. */
function checkWitness(load: Load): void {
  for (const key of ['witness', 'witness.listen']) {
    const setting = load.settings.get(key)
    if (setting === undefined || setting.value === null) continue
    requireSecret(load, 'witness.key', 'witness.keyfile', setting.line, `needed when ${key} is set`)
    return
  }
}

/** The rule flavour must be one the platform's firewall loads. */
function checkWanRules(load: Load): void {
  const wans = load.blocks.get('wan')
  if (wans === undefined) return
  const firstLine = Math.min(...wans.values())
  checkBackendPlatform(load, 'wan.rules', { iptables: ['linux'], nft: ['linux'], pf: ['freebsd', 'openbsd'] }, firstLine)
}

function checkBackendPlatform(load: Load, key: string, platforms: Record<string, string[]>, line: number): void {
  const backend = valueOf(load, key)
  const platform = valueOf(load, 'platform')
  // Either one rejected: already reported, nothing to compare.
  if (typeof backend !== 'string' || typeof platform !== 'string') return
  const fits = Object.hasOwn(platforms, backend) ? platforms[backend] : undefined
  if (fits === undefined || fits.includes(platform)) return
  const setting = load.settings.get(key) ?? defaultSetting(load, key, line)
  const allowed = Object.keys(platforms)
    .filter((name) => platforms[name].includes(platform))
    .join(' | ')
  load.errors.push(conflictError(setting, key, `${backend} does not run on platform ${platform}`, allowed))
}

function requireSecret(load: Load, secretKey: string, fileKey: string, line: number, why: string): void {
  if (load.written.has(secretKey) || load.written.has(fileKey)) return
  load.errors.push(missingWhen(load, secretKey, line, `${why}; set ${secretKey} or ${fileKey}`))
}

function missingWhen(load: Load, key: string, line: number, why: string): ConfigError {
  return configError({ code: 'missingKey', file: load.file, line, key, what: `missing: ${why}`, allowed: allowedText(rowByKey(key)!) })
}

/** The first of the keys that was set (to point the error at a line), else a default. */
function settingOfFirst(load: Load, keys: string[]): [string, Setting] {
  for (const key of keys) {
    const setting = load.settings.get(key)
    if (setting !== undefined) return [key, setting]
  }
  return [keys[0], defaultSetting(load, keys[0], 0)]
}

/** A Setting standing for a key's default, to report an error against it. */
function defaultSetting(load: Load, key: string, line: number): Setting {
  const row = rowByKey(key)!
  const parsed = defaultOf(row)
  return { row, value: parsed.value, text: parsed.text, source: { kind: 'default' }, file: load.file, line }
}

// ---------------------------------------------------------------------------
// Secret files

function readSecretFiles(load: Load, readFile: (path: string) => string): void {
  for (const pair of secretPairs(load)) {
    const at = load.settings.get(pair.fileKey)
    // Both set is already a conflict, reported above.
    if (at === undefined || load.settings.has(pair.secretKey)) continue
    readSecretFile(load, pair, at, readFile)
  }
}

function readSecretFile(load: Load, pair: SecretPair, at: Setting, readFile: (path: string) => string): void {
  const path = at.text
  const fail = (what: string): void => {
    load.errors.push(configError({ code: 'secretFile', file: at.file, line: at.line, key: pair.fileKey, value: path, what }))
  }
  let secret: string
  try {
    // Editors and `echo secret > file` add a final newline that is not part of the secret.
    secret = readFile(path).replace(/[\r\n]+$/, '')
  } catch (err) {
    // Only the error code: an error message could quote the file's content.
    const code = (err as { code?: unknown } | null)?.code
    fail(`cannot read the secret file${typeof code === 'string' ? ` (${code})` : ''}`)
    return
  }
  if (secret === '') {
    fail('the secret file is empty')
    return
  }
  const source: ValueSource = { kind: 'secretFile', file: at.file, line: at.line, path }
  load.settings.set(pair.secretKey, { row: pair.row, value: secret, text: secret, source, file: at.file, line: at.line })
}

// ---------------------------------------------------------------------------
// Values with their defaults

const DEFAULTS = new Map(
  SCHEMA.flatMap((row) => {
    if (row.default === undefined) return []
    const parsed = parseValue(row, row.default)
    // A bad default is a bug in SCHEMA, caught by test/config/schema.test.ts.
    if (!parsed.ok) throw new Error(`schema: default of ${row.key} is invalid: ${parsed.why}`)
    return [[row.key, parsed] as const]
  }),
)

function defaultOf(row: KeyRow): { value: Value; text: string } {
  return DEFAULTS.get(row.key) ?? { value: '', text: '' }
}

/**
 * A concrete key's value: set, else its row's default, else undefined. A key whose
 * value was rejected has none, so that rules between keys do not judge it by its
 * default and report a second, misleading error.
 */
function valueOf(load: Load, key: string): Value | undefined {
  const setting = load.settings.get(key)
  if (setting !== undefined) return setting.value
  if (load.rejected.has(key)) return undefined
  const resolved = resolveKey(key)
  return resolved.kind === 'global' || resolved.kind === 'block' ? DEFAULTS.get(resolved.row.key)?.value : undefined
}

function numberOf(load: Load, key: string): number | undefined {
  const value = valueOf(load, key)
  return typeof value === 'number' ? value : undefined
}

function stringOf(load: Load, key: string): string {
  const value = valueOf(load, key)
  return typeof value === 'string' ? value : ''
}

function endpointOf(load: Load, key: string): Endpoint | null {
  return (valueOf(load, key) as Endpoint | null | undefined) ?? null
}

function listOf<T>(load: Load, key: string): T[] {
  return (valueOf(load, key) as T[] | undefined) ?? []
}

// ---------------------------------------------------------------------------
// Results

function sortErrors(load: Load): ConfigError[] {
  // The board profile is applied first, so its errors are listed first.
  const rank = (e: ConfigError): number => (e.file === load.file ? 1 : 0)
  return [...load.errors].sort((a, b) => rank(a) - rank(b) || a.line - b.line)
}

function boardWarnings(load: Load): string[] {
  const supported = load.settings.get('board.supported')
  if (supported === undefined || supported.value !== false) return []
  const note = stringOf(load, 'board.note')
  const name = load.board === '' ? 'this board' : `board ${load.board}`
  return [`${supported.file}:${supported.line}: ${name} is not supported${note === '' ? '' : `: ${note}`}`]
}

/** carp(4)'s master-down interval: 3 adverts (sub-second: advskew/256 s each), plus the skew. */
function masterDownMs(advbaseS: number, advskew: number): number {
  return advbaseS === 0 ? MASTER_DOWN_INTERVALS * advskew * SKEW_UNIT_MS : MASTER_DOWN_INTERVALS * advbaseS * 1000 + advskew * SKEW_UNIT_MS
}

/** The schema's heartbeat.timeout default: the most a derived timeout is. */
const HEARTBEAT_TIMEOUT_DEFAULT_MS = 1000
const HEARTBEAT_INTERVAL_DEFAULT_MS = 250
/**
 * A derived interval: the same on both boards (it must not follow a board's own
 * advskew, or one board would time out between the other's frames), fast enough for
 * sub-second CARP, never below what the serial line carries.
 */
const HEARTBEAT_DERIVED_INTERVAL_MS = 100
/** A derived timeout spans at least 3 intervals: a lost frame plus jitter must not kill a path. */
const HEARTBEAT_DERIVED_MIN_INTERVALS = 3
/** A derived interval keeps the serial line at most a quarter busy with heartbeat lines of this size. */
const SERIAL_LINE_BUDGET_BYTES = 4 * 64

interface HeartbeatTiming {
  intervalMs: number
  timeoutMs: number
  /** Set for each value derived from the CARP timing (not in the file or the board profile). */
  derived: { interval?: string; timeout?: string }
}

/**
 * heartbeat.timeout left unset follows the fastest vhid's master-down (at most the
 * old 1 s default): without a witness a backup takes over only once the peer is
 * silent on every path, so a longer timeout slows every failover of a sub-second
 * pair. heartbeat.interval left unset is then 100 ms (more where the serial line
 * needs it to stay a quarter busy), and the timeout spans at least 3 of them. A
 * value in the file (or the board profile) always wins.
 */
function heartbeatTiming(load: Load): HeartbeatTiming {
  const setInterval = load.settings.has('heartbeat.interval')
  const setTimeout = load.settings.has('heartbeat.timeout')
  let intervalMs = numberOf(load, 'heartbeat.interval') ?? HEARTBEAT_INTERVAL_DEFAULT_MS
  let timeoutMs = numberOf(load, 'heartbeat.timeout') ?? HEARTBEAT_TIMEOUT_DEFAULT_MS
  if (setTimeout) return { intervalMs, timeoutMs, derived: {} }
  const downs = blockNumbers(load, 'carp').map((n) => masterDownMs(numberOf(load, `carp.${n}.advbase`) ?? 1, numberOf(load, `carp.${n}.advskew`) ?? 0))
  const fastest = Math.min(HEARTBEAT_TIMEOUT_DEFAULT_MS, ...downs)
  if (fastest >= HEARTBEAT_TIMEOUT_DEFAULT_MS) return { intervalMs, timeoutMs, derived: {} }
  const derived: HeartbeatTiming['derived'] = {}
  if (!setInterval) {
    const baud = stringOf(load, 'serial.device') === '' ? 0 : Number(stringOf(load, 'serial.baud'))
    const lineMs = baud > 0 ? Math.ceil((SERIAL_LINE_BUDGET_BYTES * 10 * 1000) / baud) : 0
    const next = Math.min(intervalMs, Math.max(HEARTBEAT_DERIVED_INTERVAL_MS, lineMs))
    if (next !== intervalMs) derived.interval = `sub-second CARP${lineMs > HEARTBEAT_DERIVED_INTERVAL_MS ? `, at least ${lineMs} ms at ${baud} bit/s` : ''}`
    intervalMs = next
  }
  timeoutMs = Math.max(Math.floor(fastest), HEARTBEAT_DERIVED_MIN_INTERVALS * intervalMs)
  derived.timeout = `the fastest master-down (${Math.round(fastest)} ms)${timeoutMs > Math.floor(fastest) ? `, at least ${HEARTBEAT_DERIVED_MIN_INTERVALS} intervals` : ''}`
  return { intervalMs, timeoutMs, derived }
}

/**
 * Without a witness a backup takes over only when the peer is silent on every path,
 * so a heartbeat timeout longer than the master-down interval slows every failover.
 */
function timingWarnings(config: Config, derived: boolean): string[] {
  if (config.witness.address || (!config.serial.device && !config.sync.interface)) return []
  const warnings: string[] = []
  for (const v of config.carp.vhids) {
    const downMs = masterDownMs(v.advbaseS, v.advskew)
    if (config.heartbeat.timeoutMs <= downMs) continue
    const fix = derived
      ? 'derived at its floor (3 heartbeat intervals): lower heartbeat.interval in both files, raise serial.baud, or add a witness'
      : 'set heartbeat.timeout at most that, or leave it unset to follow the CARP timing'
    warnings.push(
      `heartbeat.timeout (${config.heartbeat.timeoutMs} ms) is longer than carp.${v.vhid}'s master-down interval (${Math.round(downMs)} ms): ` +
        `without a witness a failover waits until the peer is silent on the sync link and the serial line too; ${fix}`,
    )
  }
  return warnings
}

function buildConfig(load: Load): Config {
  const num = (key: string): number => numberOf(load, key)!
  const str = (key: string): string => stringOf(load, key)
  const syncInterface = str('sync.interface')
  const vhids = blockNumbers(load, 'carp').map((n) => buildVhid(load, n))
  return {
    file: load.file,
    node: str('node'),
    board: str('board'),
    platform: str('platform') as PlatformName,
    controlPort: num('control.port'),
    log: {
      format: str('log.format') as Config['log']['format'],
      syslog: endpointOf(load, 'log.syslog'),
      facility: str('log.syslog.facility') as Config['log']['facility'],
    },
    carp: {
      port: num('carp.port'),
      preempt: valueOf(load, 'carp.preempt') === true,
      preemptHolddownMs: num('carp.preempt.holddown'),
      upscript: str('carp.upscript'),
      downscript: str('carp.downscript'),
      vhids,
    },
    sync: {
      interface: syncInterface,
      peer: endpointOf(load, 'sync.peer'),
      port: num('sync.port'),
      key: str('sync.key'),
      // No sync link means no sync, whatever the (default) backend says.
      backend: syncInterface === '' ? 'none' : (str('sync.backend') as Config['sync']['backend']),
      bulkTimeoutMs: num('sync.bulk.timeout'),
    },
    serial: { device: str('serial.device'), baud: Number(str('serial.baud')) },
    heartbeat: (({ intervalMs, timeoutMs }) => ({ intervalMs, timeoutMs }))(heartbeatTiming(load)),
    witness: {
      address: endpointOf(load, 'witness'),
      key: str('witness.key'),
      leaseMs: num('witness.lease'),
      listen: endpointOf(load, 'witness.listen'),
      state: str('witness.state'),
    },
    wans: blockNumbers(load, 'wan').map((n) => buildWan(load, n, vhids)),
    wanRules: str('wan.rules') as Config['wanRules'],
    wanProbe: {
      intervalMs: num('wan.probe.interval'),
      timeoutMs: num('wan.probe.timeout'),
      window: num('wan.probe.window'),
      lossDown: num('wan.probe.loss.down'),
      lossUp: num('wan.probe.loss.up'),
      latencyDownMs: num('wan.probe.latency.down'),
      latencyUpMs: num('wan.probe.latency.up'),
      downRounds: num('wan.probe.down.rounds'),
      upRounds: num('wan.probe.up.rounds'),
      failbackHoldMs: num('wan.failback.hold'),
    },
  }
}

function buildVhid(load: Load, n: number): VhidConfig {
  const key = (name: string): string => `carp.${n}.${name}`
  return {
    vhid: n,
    interface: stringOf(load, key('interface')),
    vips: listOf<Cidr>(load, key('vip')),
    advbaseS: numberOf(load, key('advbase'))!,
    advskew: numberOf(load, key('advskew'))!,
    pass: stringOf(load, key('pass')),
    peers: listOf<Endpoint>(load, key('peer')),
    vmac: valueOf(load, key('vmac')) === true,
  }
}

function buildWan(load: Load, n: number, vhids: VhidConfig[]): WanConfig {
  const key = (name: string): string => `wan.${n}.${name}`
  const iface = stringOf(load, key('interface'))
  const gateway = stringOf(load, key('gateway'))
  return {
    wan: n,
    interface: stringOf(load, key('interface')),
    gateway: stringOf(load, key('gateway')),
    weight: numberOf(load, key('weight'))!,
    tier: numberOf(load, key('tier'))!,
    probes: listOf<string>(load, key('probe')),
    probeNeed: numberOf(load, key('probe.need'))!,
    ...wanShare(iface, gateway, vhids),
  }
}

/**
 * What a pair shares on a WAN: the carp.N blocks on its interface. New connections
 * are NATed to the first IPv4 VIP on the gateway's subnet (lowest vhid first), else
 * to the first IPv4 VIP (a /32 or routed one): they survive a takeover, where NAT to
 * a board's own address dies with that board; no VIP, the board's own address.
 * Traffic to the VIPs of a vhid with a virtual MAC comes in on its macvlan. A reload
 * passes the vhids and macvlans the agent runs (changes wait for a restart there).
 */
export function wanShare(
  iface: string,
  gateway: string,
  vhids: readonly VhidConfig[],
  macvlanOf: (vc: VhidConfig) => string | undefined = (vc) => (vc.vmac ? vmacName(vc.vhid) : undefined),
): Pick<WanConfig, 'natAddress' | 'vipInterfaces'> {
  const here = vhids.filter((v) => v.interface === iface)
  const v4 = here.flatMap((v) => v.vips).filter((c) => !isIpv6(c.address))
  // On the gateway's subnet first; else (a /32 or routed VIP) the first one.
  const shared = v4.find((c) => inSubnet(c, gateway)) ?? v4[0]
  return { natAddress: shared?.address ?? null, vipInterfaces: here.map(macvlanOf).filter((n): n is string => n !== undefined) }
}

/**
 * Every key with a value, in schema order; numbered blocks are listed block by block
 * where their rows start. Unset optional keys ('' defaults) are left out.
 */
function effectiveEntries(load: Load): EffectiveEntry[] {
  const entries: EffectiveEntry[] = []
  const listed = new Set<string>()
  for (const row of SCHEMA) {
    const prefix = blockPrefix(row.key)
    if (prefix === undefined) {
      pushEffective(load, entries, row, row.key)
    } else if (!listed.has(prefix)) {
      listed.add(prefix)
      const rows = SCHEMA.filter((r) => blockPrefix(r.key) === prefix)
      for (const n of blockNumbers(load, prefix)) {
        for (const r of rows) pushEffective(load, entries, r, instantiate(r.key, n))
      }
    }
  }
  return entries
}

function pushEffective(load: Load, entries: EffectiveEntry[], row: KeyRow, key: string): void {
  const secret = row.secret === true
  const setting = load.settings.get(key)
  if (setting !== undefined) {
    entries.push({ key, value: setting.text, secret, source: setting.source })
    return
  }
  const timing = key === 'heartbeat.interval' || key === 'heartbeat.timeout' ? heartbeatTiming(load) : null
  const why = timing?.derived[key === 'heartbeat.interval' ? 'interval' : 'timeout']
  if (timing && why !== undefined) {
    entries.push({ key, value: formatMs(key === 'heartbeat.interval' ? timing.intervalMs : timing.timeoutMs), secret, source: { kind: 'derived', why } })
    return
  }
  const fallback = DEFAULTS.get(row.key)
  if (fallback === undefined || fallback.text === '') return
  entries.push({ key, value: fallback.text, secret, source: { kind: 'default' } })
}
