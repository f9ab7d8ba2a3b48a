// Builds a bootable raw disk image for a board profile (issue 16):
//
//   npm run image -- --board apu2 --out carpd-apu2.img [--conf FILE] [--cache DIR]
//
// The disk (MBR, syslinux):
//   partition 1  FAT32, label CARPD, mounted at /cf: the boot loader, kernel and
//                initrd, and the operator's files: carpd.conf, secret files, the
//                witness state, interfaces (the boards' own addresses). FAT, so the
//                card can be edited from any computer.
//   partition 2  ext4, label carpd-root, mounted read-only: Debian (trixie, for its
//                Node.js 20) with the tools carpd runs, carpd.js and its unit; tmpfs
//                where the system writes (/tmp, /var/log, /var/tmp, /var/lib).
// The serial console is ttyS0 at the profile's serial.baud for the boot loader, the
// kernel, the login and carpd's own lines. systemd starts carpd once the network is
// configured, restarts it when it dies and stops it (it bows out) at shutdown.
//
// Needs root and Debian's packages only: mmdebstrap, e2fsprogs, dosfstools, mtools,
// syslinux, syslinux-common, fdisk. The Debian root is cached (one download, about a
// minute) under --cache (default /var/cache/carpd-image), keyed by what goes in it;
// carpd's own files are added after, so a new carpd.js does not rebuild the root.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'

const ROOT = new URL('..', import.meta.url).pathname
const SUITE = 'trixie'
const MIB = 1024 * 1024
/** FAT32 boot-and-card partition: kernel (12 MB) and initrd (28 MB) twice over (room for an update), and the operator's files. */
const CF_MIB = 128
/** Space left free in the root file system (it is read-only: only for what an operator adds by hand). */
const ROOT_SLACK_MIB = 24
const ROOT_LABEL = 'carpd-root'
const CF_LABEL = 'CARPD'
/** What the root holds: the kernel, an init, the tools carpd runs, Node.js. */
const PACKAGES = [
  'linux-image-amd64',
  'initramfs-tools',
  'systemd-sysv',
  'udev',
  'kmod',
  'ifupdown',
  'iproute2',
  'arping',
  'conntrack',
  'iptables',
  'nftables',
  'nodejs',
  'procps',
  'lz4',
  // WANs by DHCP or PPPoE (ifupdown's dhcp and ppp methods), and fsck for the card.
  'dhcpcd-base',
  'ppp',
  'dosfstools',
]
/**
 * The initrd's drivers: what the boards boot from (mSATA and SATA, IDE in legacy
 * mode, NVMe, SD, USB sticks and readers) and QEMU's virtio disk, and the two file
 * systems. A short list instead of MODULES=most: an initrd of a few MB unpacks in a
 * fraction of the time, which counts on a 1 GHz board and under emulation. They are
 * put in the initrd, not loaded by name: the initrd's udev loads those the hardware
 * has (loading all 30 by name took 3.8 s of the boot under emulation).
 */
const INITRD_MODULES = [
  'ahci', 'ata_piix', 'ata_generic', 'pata_acpi', 'nvme', 'sd_mod',
  'sdhci_pci', 'sdhci_acpi', 'mmc_block',
  'xhci_pci', 'ehci_pci', 'ohci_pci', 'uhci_hcd', 'usb_storage', 'uas',
  'virtio_pci', 'virtio_blk', 'virtio_scsi',
  'ext4', 'vfat', 'nls_cp437', 'nls_iso8859_1', 'nls_ascii',
  // The wired network cards of the boards (APU2: Intel i210/i211; thin clients:
  // Realtek, Intel, Broadcom) and QEMU's: loaded before the root is mounted, so every
  // interface exists when ifupdown raises them, without waiting for udev to settle.
  'igb', 'e1000e', 'e1000', 'r8169', 'tg3', '8139too', 'via_rhine', 'sky2', 'virtio_net',
]
/** Units a router board without a screen or a package manager at work does not need at boot. */
const MASKED_UNITS = [
  'getty@tty1.service', 'autovt@.service', 'dpkg-db-backup.timer', 'apt-daily.timer', 'apt-daily-upgrade.timer',
  'e2scrub_all.timer', 'e2scrub_reap.service', 'fstrim.timer', 'systemd-hwdb-update.service',
  'getty-static.service', 'systemd-tmpfiles-clean.timer', 'dev-hugepages.mount', 'sys-kernel-debug.mount',
  'sys-kernel-tracing.mount', 'sys-fs-fuse-connections.mount', 'modprobe@drm.service', 'modprobe@fuse.service',
  // ConditionNeedsUpdate=/etc: true at every boot on a root that cannot record the update.
  'ldconfig.service', 'systemd-journal-catalog-update.service', 'systemd-update-done.service',
  // `udevadm settle` before ifupdown: waits for udev's whole coldplug (14.7 s under
  // emulation), while the network cards' drivers are loaded in the initrd already.
  'ifupdown-pre.service',
]
/**
 * udev rules for what a router board has not (input, sound, video, seats, cameras,
 * sensors...): each device event of the coldplug runs every rule file, and the
 * coldplug shares the one CPU with the boot. Kept: block devices and their labels,
 * serial ports, network cards, driver loading, systemd's device units.
 */
const UNUSED_UDEV_RULES = [
  '60-autosuspend', '60-cdrom_id', '60-dmi-id', '60-drm', '60-evdev', '60-fido-id', '60-infiniband', '60-input-id',
  '60-persistent-alsa', '60-persistent-input', '60-persistent-storage-mtd', '60-persistent-storage-tape',
  '60-persistent-v4l', '60-sensor', '64-btrfs', '70-camera', '70-joystick', '70-memory', '70-mouse',
  '70-power-switch', '70-touchpad', '70-uaccess', '71-seat', '73-seat-late', '75-net-description', '75-probe_mtd',
  '78-sound-card', '90-iocost',
]
/** initramfs-tools hook: the drivers in the initrd without loading them by name, and fsck.fat for the card. */
const INITRAMFS_HOOK = [
  '#!/bin/sh',
  '# carpd board image: the drivers the boards boot and network with, in the initrd',
  '# (its udev loads those the hardware has), and fsck.fat for the card.',
  'case "$1" in prereqs) exit 0 ;; esac',
  '. /usr/share/initramfs-tools/hook-functions',
  `for m in ${INITRD_MODULES.join(' ')}; do manual_add_modules "$m"; done`,
  'copy_exec /usr/sbin/fsck.fat /sbin',
]
/**
 * initramfs-tools local-bottom script: the card checked and mounted at /cf before
 * systemd starts. udev has named it in the initrd already; from fstab, systemd waited
 * for the main system's udev to name it again (at 15 s of a 26 s start under
 * emulation) before fsck, mount and then ifupdown, which reads /cf/interfaces.
 */
const CF_MOUNT_SCRIPT = [
  '#!/bin/sh',
  `# carpd board image: the partition labelled ${CF_LABEL} checked and mounted at /cf.`,
  'case "$1" in prereqs) exit 0 ;; esac',
  '. /scripts/functions',
  `dev=$(blkid -l -t LABEL=${CF_LABEL} -o device)`,
  `[ -n "$dev" ] || { log_warning_msg "carpd: no partition labelled ${CF_LABEL}: nothing at /cf"; exit 0; }`,
  '/sbin/fsck.fat -a -w "$dev" >/dev/null 2>&1',
  'mount -t vfat -o rw,noatime,fmask=0177,dmask=0077,flush "$dev" "${rootmnt}/cf" || log_warning_msg "carpd: mounting $dev at /cf failed"',
]
/**
 * Kernel modules a router board never loads (graphics, sound, cameras, wireless,
 * InfiniBand...): removed to keep the image small. What is left: storage (SATA, NVMe,
 * SD, USB), wired network cards, netfilter, virtio (the board lab under QEMU).
 */
const UNUSED_MODULES = [
  'kernel/sound',
  'kernel/drivers/gpu',
  'kernel/drivers/media',
  'kernel/drivers/infiniband',
  'kernel/drivers/net/wireless',
  'kernel/net/wireless',
  'kernel/net/mac80211',
  'kernel/net/bluetooth',
  'kernel/drivers/bluetooth',
  'kernel/drivers/staging',
  'kernel/drivers/iio',
  'kernel/drivers/hid',
  'kernel/drivers/input/joystick',
  'kernel/drivers/input/touchscreen',
  'kernel/drivers/input/misc',
  'kernel/drivers/isdn',
  'kernel/drivers/net/can',
  'kernel/drivers/scsi/qla2xxx',
  'kernel/drivers/scsi/lpfc',
  'kernel/drivers/scsi/mpt3sas',
  'kernel/drivers/net/ethernet/mellanox',
  'kernel/drivers/net/ethernet/chelsio',
  'kernel/drivers/net/ethernet/qlogic',
  'kernel/drivers/net/ethernet/sfc',
  'kernel/drivers/md',
  'kernel/fs/btrfs',
  'kernel/fs/xfs',
  'kernel/fs/ocfs2',
  'kernel/fs/gfs2',
  'kernel/fs/nfs',
  'kernel/fs/nfsd',
  'kernel/fs/ceph',
  'kernel/fs/smb',
]
/** Removed from the root after the packages are in: documentation, translations, apt's lists. */
const TRIMMED = ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale', 'var/lib/apt/lists', 'var/cache/apt', 'var/cache/debconf']

const USAGE = `usage: npm run image -- --board NAME --out FILE [--conf FILE] [--cache DIR]

Builds a bootable raw disk image for a board profile (boards/NAME.conf, an x86-64
board): a read-only Debian root with Node.js and carpd, and a FAT partition mounted
at /cf for carpd.conf, secret files and the boards' addresses (edit it from any
computer). Write it to the card with: dd if=FILE of=/dev/sdX bs=4M conv=fsync
  --board NAME   apu2 (an x86-64 board that runs Node.js, its console on ttyS0)
  --out FILE     the raw image to write
  --conf FILE    carpd.conf to put on the card (default: a commented example)
  --interfaces FILE  ifupdown interfaces file for the card (default: loopback only)
  --cache DIR    where the Debian root is kept between builds (default /var/cache/carpd-image)
  --refresh      build the Debian root again with today's packages (security updates)
Needs root and mmdebstrap, e2fsprogs, dosfstools, mtools, syslinux, fdisk (Debian).
`

/**
 * Board profiles an image is built for, with their console: the serial port the
 * firmware uses, at its speed (the heartbeat has its own port, serial.device). A thin
 * client's COM port is its heartbeat line and its console is the screen: no image for
 * it in this version.
 */
const IMAGE_BOARDS = { apu2: { console: 'ttyS0', baud: 115200 } }

class BuildError extends Error {}

/** Stops the build: main() says why, removes what it made and exits 1. */
function fail(message) {
  throw new BuildError(message)
}

/** What a build that stops half-way must not leave behind (temp folders, a partial image). */
const cleanups = []
function cleanUp() {
  for (const c of cleanups.splice(0).reverse()) c()
}
process.once('SIGINT', () => {
  cleanUp()
  process.exit(130)
})

/** Lines as single-quoted shell words, for printf in a hook. */
function shellWords(lines) {
  return lines.map((l) => `'${l.replaceAll("'", "'\\''")}'`).join(' ')
}

/** Runs argv; its output goes to ours unless `capture`; exits the build on failure. */
function run(argv, opts = {}) {
  const stdin = opts.input === undefined ? 'ignore' : 'pipe'
  const r = spawnSync(argv[0], argv.slice(1), { stdio: opts.capture ? [stdin, 'pipe', 'pipe'] : [stdin, 'inherit', 'inherit'], encoding: 'utf8', cwd: opts.cwd, input: opts.input })
  if (r.error) fail(`${argv[0]}: ${r.error.message}`)
  if (r.status !== 0) fail(`${argv.join(' ')}: exit ${r.status}${opts.capture ? `: ${(r.stderr || r.stdout).trim()}` : ''}`)
  return r.stdout ?? ''
}

function profileOf(board) {
  const profile = Object.hasOwn(IMAGE_BOARDS, board) ? IMAGE_BOARDS[board] : undefined
  if (profile === undefined) fail(`--board ${board}: images are built for ${Object.keys(IMAGE_BOARDS).join(', ')} (an x86-64 board that runs Node.js, with a serial console apart from its heartbeat port; see boards/README.md)`)
  return { board, ...profile }
}

/** The cached Debian root for this package set (a tar), built when missing. */
function debianRoot(cacheDir, refresh) {
  const trim = [
    ...UNUSED_MODULES.map((m) => `rm -rf "$1"/usr/lib/modules/*/${m}`),
    'for k in "$1"/usr/lib/modules/*; do chroot "$1" depmod "$(basename "$k")"; done',
    'sed -i "s/^MODULES=.*/MODULES=list/; s/^COMPRESS=.*/COMPRESS=lz4/" "$1"/etc/initramfs-tools/initramfs.conf',
    // The builder's swap is no resume device of the board's.
    'echo RESUME=none > "$1"/etc/initramfs-tools/conf.d/resume',
    `printf '%s\\n' ${shellWords(INITRAMFS_HOOK)} > "$1"/etc/initramfs-tools/hooks/carpd`,
    `printf '%s\\n' ${shellWords(CF_MOUNT_SCRIPT)} > "$1"/etc/initramfs-tools/scripts/local-bottom/carpd-cf`,
    'chmod 755 "$1"/etc/initramfs-tools/hooks/carpd "$1"/etc/initramfs-tools/scripts/local-bottom/carpd-cf',
    `rm -f ${UNUSED_UDEV_RULES.map((r) => `"$1"/usr/lib/udev/rules.d/${r}.rules`).join(' ')}`,
    `chroot "$1" systemctl mask ${MASKED_UNITS.join(' ')}`,
    'chroot "$1" update-initramfs -u -k all',
    ...TRIMMED.map((d) => `rm -rf "$1"/${d}`),
  ].join(' && ')
  const args = [
    '--variant=minbase',
    '--include', PACKAGES.join(','),
    '--dpkgopt', 'path-exclude=/usr/share/doc/*',
    '--dpkgopt', 'path-exclude=/usr/share/man/*',
    '--dpkgopt', 'path-exclude=/usr/share/locale/*',
    '--customize-hook', trim,
    '--format', 'tar',
    SUITE,
  ]
  // Keyed by the whole recipe: any change to what goes in builds a new root. A cached
  // root keeps the packages of the day it was built: --refresh takes today's.
  const key = createHash('sha256').update(JSON.stringify(args)).digest('hex').slice(0, 16)
  const tar = join(cacheDir, `root-${SUITE}-${key}.tar`)
  if (existsSync(tar) && !refresh) {
    process.stdout.write(`image: Debian root from the cache (built ${statSync(tar).mtime.toISOString().slice(0, 10)}; --refresh for today's packages): ${tar}\n`)
    return tar
  }
  mkdirSync(cacheDir, { recursive: true })
  const started = Date.now()
  const partial = `${tar}.partial`
  cleanups.push(() => rmSync(partial, { force: true }))
  run(['mmdebstrap', ...args, partial])
  renameSync(partial, tar)
  process.stdout.write(`image: Debian root built in ${((Date.now() - started) / 1000).toFixed(0)} s: ${tar}\n`)
  return tar
}

/** carpd's own files and the board's settings, into the unpacked root. */
function addCarpd(root, profile) {
  const bundle = join(ROOT, 'build', 'carpd.js')
  mkdirSync(join(root, 'usr/local/lib/carpd'), { recursive: true })
  copyFileSync(bundle, join(root, 'usr/local/lib/carpd/carpd.js'))
  writeFileSync(join(root, 'usr/local/sbin/carpd'), '#!/bin/sh\nexec /usr/bin/node /usr/local/lib/carpd/carpd.js "$@"\n')
  chmodSync(join(root, 'usr/local/sbin/carpd'), 0o755)
  copyFileSync(join(ROOT, 'boards/service/carpd.service'), join(root, 'etc/systemd/system/carpd.service'))
  mkdirSync(join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true })
  symlinkSync('/etc/systemd/system/carpd.service', join(root, 'etc/systemd/system/multi-user.target.wants/carpd.service'))
  writeFileSync(
    join(root, 'etc/fstab'),
    [
      '# carpd board image: the root is read-only; the card partition holds what an operator edits.',
      `LABEL=${ROOT_LABEL} / ext4 ro,noatime 0 1`,
      `# LABEL=${CF_LABEL} /cf vfat: checked and mounted by the initrd (/etc/initramfs-tools/scripts/local-bottom/carpd-cf)`,
      'tmpfs /tmp tmpfs mode=1777,size=32m 0 0',
      'tmpfs /var/tmp tmpfs mode=1777,size=8m 0 0',
      'tmpfs /var/log tmpfs mode=0755,size=16m 0 0',
      'tmpfs /var/lib tmpfs mode=0755,size=16m 0 0',
      '',
    ].join('\n'),
  )
  mkdirSync(join(root, 'cf'), { recursive: true })
  // The journal in memory only (the root is read-only), and on the console.
  mkdirSync(join(root, 'etc/systemd/journald.conf.d'), { recursive: true })
  writeFileSync(join(root, 'etc/systemd/journald.conf.d/carpd.conf'), '[Journal]\nStorage=volatile\nRuntimeMaxUse=8M\n')
  // The boards' own addresses come from the card, in ifupdown's format.
  writeFileSync(join(root, 'etc/network/interfaces'), '# The interfaces and addresses of this board are on the card: /cf/interfaces\nsource /cf/interfaces\n')
  writeFileSync(join(root, 'etc/hostname'), `carpd-${profile.board}\n`)
  writeFileSync(join(root, 'etc/hosts'), `127.0.0.1 localhost\n127.0.1.1 carpd-${profile.board}\n`)
  // root logs in on the serial console without a password: the console is the one way
  // in (no SSH server), and whoever holds the cable holds the board anyway.
  const shadow = join(root, 'etc/shadow')
  writeFileSync(shadow, readFileSync(shadow, 'utf8').replace(/^root:[^:]*:/m, 'root::'))
  // An empty machine-id: systemd makes a transient one at each boot on a read-only root.
  writeFileSync(join(root, 'etc/machine-id'), '')
  // Forwarding on from the start (a router); carpd sets what else it needs.
  writeFileSync(join(root, 'etc/sysctl.d/50-carpd-router.conf'), 'net.ipv4.ip_forward = 1\n')
  // Nothing in /boot: the kernel and initrd live on the card partition, for syslinux.
  for (const f of readdirSync(join(root, 'boot'))) rmSync(join(root, 'boot', f), { recursive: true, force: true })
  // Sources of udev's compiled hardware database, and Node's package-manager shim: not used.
  for (const d of ['usr/lib/udev/hwdb.d', 'usr/share/nodejs/corepack']) rmSync(join(root, d), { recursive: true, force: true })
}

/** Bytes of the files under `dir`. */
function duBytes(dir) {
  return Number(run(['du', '-sb', dir], { capture: true }).split('\t')[0])
}

function main() {
  let values
  try {
    ;({ values } = parseArgs({
      options: { board: { type: 'string' }, out: { type: 'string' }, conf: { type: 'string' }, interfaces: { type: 'string' }, cache: { type: 'string' }, refresh: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }))
  } catch (err) {
    fail(`${err.message}\n${USAGE}`)
  }
  if (values.help) {
    process.stdout.write(USAGE)
    return
  }
  if (!values.board || !values.out) fail(`--board and --out are required\n${USAGE}`)
  const profile = profileOf(values.board)
  if (process.getuid?.() !== 0) fail('needs root (mmdebstrap, and file ownership in the root file system)')
  for (const tool of ['mmdebstrap', 'mkfs.ext4', 'mkfs.vfat', 'mcopy', 'mmd', 'syslinux', 'sfdisk', 'tar', 'du']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) fail(`${tool} not found: apt-get install -y mmdebstrap e2fsprogs dosfstools mtools syslinux syslinux-common fdisk`)
  }
  const started = Date.now()
  run(['node', join(ROOT, 'esbuild.config.mjs')])
  const tar = debianRoot(values.cache ?? '/var/cache/carpd-image', values.refresh === true)

  const work = mkdtempSync(join(tmpdir(), 'carpd-image-'))
  cleanups.push(() => rmSync(work, { recursive: true, force: true }))
  const root = join(work, 'root')
  mkdirSync(root)
  run(['tar', '-xpf', tar, '-C', root, '--numeric-owner'])
  const kernel = readdirSync(join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'))
  const initrd = readdirSync(join(root, 'boot')).find((f) => f.startsWith('initrd.img-'))
  if (!kernel || !initrd) fail('no kernel or initrd in the Debian root')
  const card = join(work, 'card')
  mkdirSync(card)
  copyFileSync(join(root, 'boot', kernel), join(card, 'vmlinuz'))
  copyFileSync(join(root, 'boot', initrd), join(card, 'initrd.img'))
  addCarpd(root, profile)
  writeCard(card, profile, values)

  // The root file system, sized to its content.
  const rootBytes = duBytes(root)
  // ext4's own metadata (inodes, bitmaps) takes about 5 % over the files.
  const rootMib = Math.ceil((rootBytes * 1.05) / MIB) + ROOT_SLACK_MIB
  const rootImg = join(work, 'root.ext4')
  run(['mkfs.ext4', '-q', '-L', ROOT_LABEL, '-d', root, '-O', '^has_journal', '-m', '0', rootImg, `${rootMib}M`])

  // The card partition: FAT32, syslinux installed into it without mounting it.
  const cfImg = join(work, 'cf.vfat')
  run(['truncate', '-s', `${CF_MIB}M`, cfImg])
  run(['mkfs.vfat', '-F', '32', '-n', CF_LABEL, cfImg], { capture: true })
  run(['mmd', '-i', cfImg, '::/syslinux'])
  run(['syslinux', '--install', '--directory', '/syslinux', cfImg])
  // Into the folders syslinux made (mcopy -s of a folder onto one would nest it).
  for (const f of readdirSync(card)) {
    if (!statSync(join(card, f)).isDirectory()) run(['mcopy', '-i', cfImg, join(card, f), `::/${f}`])
    else for (const g of readdirSync(join(card, f))) run(['mcopy', '-i', cfImg, join(card, f, g), `::/${f}/${g}`])
  }

  // The disk: MBR with syslinux's boot code, partition 1 the card (active), 2 the root.
  const cfStart = 2048
  const cfSectors = (CF_MIB * MIB) / 512
  const rootStart = cfStart + cfSectors
  const rootSectors = (rootMib * MIB) / 512
  const totalBytes = (rootStart + rootSectors) * 512
  const out = values.out
  mkdirSync(dirname(out), { recursive: true })
  rmSync(out, { force: true })
  const partialOut = () => rmSync(out, { force: true })
  cleanups.push(partialOut)
  run(['truncate', '-s', String(totalBytes), out])
  run(['sfdisk', '--quiet', out], { input: `label: dos\nstart=${cfStart}, size=${cfSectors}, type=c, bootable\nstart=${rootStart}, size=${rootSectors}, type=83\n` })
  const mbr = readFileSync('/usr/lib/syslinux/mbr/mbr.bin')
  const fd = openSync(out, 'r+')
  try {
    writeSync(fd, mbr, 0, Math.min(mbr.length, 440), 0)
  } finally {
    closeSync(fd)
  }
  run(['dd', `if=${cfImg}`, `of=${out}`, 'bs=1M', `seek=${cfStart * 512}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none'])
  run(['dd', `if=${rootImg}`, `of=${out}`, 'bs=1M', `seek=${rootStart * 512}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none'])

  const kernelVersion = kernel.slice('vmlinuz-'.length)
  const node = run(['chroot', root, 'node', '--version'], { capture: true }).trim()
  const mib = (n) => `${(n / MIB).toFixed(0)} MiB`
  process.stdout.write(
    [
      `image: ${out} for ${profile.board}, ${mib(totalBytes)} raw, built in ${((Date.now() - started) / 1000).toFixed(0)} s`,
      `  partition 1  FAT32 ${CF_LABEL} ${CF_MIB} MiB at /cf: syslinux, kernel ${kernelVersion} (${mib(statSync(join(card, 'vmlinuz')).size)}), initrd (${mib(statSync(join(card, 'initrd.img')).size)}), ${readdirSync(card).filter((f) => !['vmlinuz', 'initrd.img', 'syslinux'].includes(f)).join(', ')}`,
      `  partition 2  ext4 ${ROOT_LABEL} ${rootMib} MiB, read-only: Debian ${SUITE} (${mib(rootBytes)} of files), Node.js ${node}, carpd.js ${(statSync(join(root, 'usr/local/lib/carpd/carpd.js')).size / 1024).toFixed(0)} KiB`,
      `  console: ${profile.console} at ${profile.baud} baud (syslinux, kernel, login, carpd's lines); carpd.service restarts carpd when it dies`,
      '',
    ].join('\n'),
  )
  cleanups.splice(cleanups.indexOf(partialOut), 1) // the image is whole: it stays
}

/** Boot loader configuration and the operator's files, into the card folder. */
function writeCard(card, profile, values) {
  mkdirSync(join(card, 'syslinux'))
  writeFileSync(
    join(card, 'syslinux', 'syslinux.cfg'),
    [
      `SERIAL ${Number(profile.console.slice(-1))} ${profile.baud}`,
      'DEFAULT carpd',
      'PROMPT 0',
      'TIMEOUT 10',
      'LABEL carpd',
      '  LINUX /vmlinuz',
      '  INITRD /initrd.img',
      // The serial port alone: the boards have no screen, and a second console slows
      // the boot (every line drawn twice).
      `  APPEND root=LABEL=${ROOT_LABEL} ro console=${profile.console},${profile.baud}n8 net.ifnames=0 panic=10`,
      '',
    ].join('\n'),
  )
  const conf = values.conf ? readFileSync(values.conf, 'utf8') : exampleConf(profile)
  writeFileSync(join(card, 'carpd.conf'), conf)
  const interfaces = values.interfaces
    ? readFileSync(values.interfaces, 'utf8')
    : [
        '# This board\'s interfaces and addresses (ifupdown, man 5 interfaces). The VIPs are',
        "# carpd's: do not list them here. Example:",
        '#   auto eth0',
        '#   iface eth0 inet static',
        '#       address 192.0.2.2/24',
        'auto lo',
        'iface lo inet loopback',
        '',
      ].join('\n')
  writeFileSync(join(card, 'interfaces'), interfaces)
}

function exampleConf(profile) {
  return [
    `# carpd on a ${profile.board}: edit this file on the card (partition CARPD), then reboot.`,
    '# Every key: carpd check --help, and README.md. Until a carp.N block is filled in,',
    '# carpd stops at boot with a message on the console saying what is missing.',
    `board = ${profile.board}`,
    'node = fw-a',
    '# Lines that fit the 80-column serial console; log.syslog = HOST sends them to a',
    '# syslog server as well (the journal of this board lives in memory only).',
    'log.format = short',
    '#carp.1.interface = eth0',
    '#carp.1.vip = 192.0.2.1/24',
    '#carp.1.passfile = /cf/carp1.pass',
    '',
  ].join('\n')
}

try {
  main()
  cleanUp()
} catch (err) {
  cleanUp()
  process.stderr.write(`image: ${err instanceof BuildError ? err.message : err.stack}\n`)
  process.exit(1)
}
