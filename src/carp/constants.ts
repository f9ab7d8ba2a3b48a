// CARP timing and limits (carp(4), OpenBSD ip_carp.c; SPEC "CARP behaviour").

// advskew's unit and the master-down count: the configuration derives timing from them too.
export { MASTER_DOWN_INTERVALS, SKEW_UNIT_MS } from '../config/constants.js'
/** Bow-out: an advert with advbase 255 and advskew 255 says "I am leaving, take over now". */
export const BOW_OUT_ADVBASE = 255
export const BOW_OUT_ADVSKEW = 255
/** Multicast group of CARP/VRRP (RFC 5798 §5.1.1.2). */
export const CARP_MULTICAST_GROUP = '224.0.0.18'
/** ...and of IPv6 (RFC 5798 §5.1.2.2), for a vhid with only IPv6 VIPs. */
export const CARP_MULTICAST_GROUP6 = 'ff02::12'
/** Adverts are sent with TTL 255 and a receiver may check it (RFC 5798 §5.1.1.3). */
export const CARP_TTL = 255
/**
 * A master that steps down to a better one keeps its VIPs this long: neighbours keep
 * sending to its MAC until the new master's gratuitous ARP reaches them (arping
 * needs ~40 ms to start), and a planned switchover should lose nothing meanwhile.
 */
export const VIP_RELEASE_GRACE_MS = 250
/** ...and the new master's second ARP comes at least this long after that release. */
export const GARP_AFTER_RELEASE_MS = 50
/** A second gratuitous ARP this many intervals after taking over (SPEC). */
export const GARP_REPEAT_INTERVALS = 2

/** The demotion counter travels in one byte. */
export const DEMOTE_MAX = 255
/** Demotion added by `carpd ctl maint on`: above any organic reason, so the peer takes over. */
export const DEMOTE_MAINT = 128
/** Demotion while sending adverts fails (raised and cleared with hysteresis). */
export const DEMOTE_SEND_ERRORS = 10
/** Consecutive failed sends before demoting, consecutive good ones before clearing. */
export const SEND_ERRORS_TO_DEMOTE = 3
export const SENDS_OK_TO_CLEAR = 3
/**
 * A demoted board usually becomes backup and backups send nothing, so good sends
 * cannot clear the demotion; it also clears after this long without a failed send.
 */
export const SEND_ERRORS_HOLD_MS = 30_000

/** Demotion while an interface of a vhid has no link (carp(4) demotes on link loss). */
export const DEMOTE_LINK = 20
/** How often the link state is read, and how many readings change it (hysteresis). */
export const LINK_POLL_MS = 200
export const LINK_DOWN_POLLS = 2
export const LINK_UP_POLLS = 3
/** Demotion while a VIP cannot be added: this board cannot serve it. */
export const DEMOTE_PLATFORM = 10
/** ...cleared when adding works again, or after this long without another failure. */
export const PLATFORM_FAIL_HOLD_MS = 300_000

/** Demotion while every WAN of this board is offline and the peer has a healthy one (SPEC "Multi-WAN"). */
export const DEMOTE_WAN = 20
