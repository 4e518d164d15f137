// virtwake.io/keep-warm (contract §5): windows in which a VM is never put to
// sleep, and at whose start the reaper wakes it ahead of its users.
//
//   "Mon-Fri 08:00-18:00 Europe/Berlin, Sat,Sun 10:00-14:00"
//
// A comma-separated list of `DAYS HH:MM-HH:MM [IANA zone]`; DAYS is `*`, a day
// (`Mon`), a range (`Mon-Fri`, `Fri-Mon` wraps) or a comma list (`Sat,Sun`);
// the zone defaults to UTC. A window whose end is not after its start runs
// over midnight into the next day (`22:00-06:00`); it belongs to the day it
// starts on. Local times come from Intl, so daylight saving is the zone's own.
//
// Pure: nothing here reads the clock or the API.

export const KEEP_WARM = 'virtwake.io/keep-warm';

const DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const TIME = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$/;

export interface Window {
  /** Days (0 = Sunday) on which the window starts, in its zone. */
  days: ReadonlySet<number>;
  /** Minutes after local midnight. */
  start: number;
  /** Minutes after local midnight of the start day; above 1440 when it runs over midnight. */
  end: number;
  zone: string;
  /** The entry as written, for messages. */
  text: string;
}

export class KeepWarmError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeepWarmError';
  }
}

/** Parse an annotation value; throws KeepWarmError saying what to fix. */
export function parseKeepWarm(value: string): Window[] {
  const pieces = value.split(',').map((p) => p.trim());
  const entries: string[] = [];
  let days = '';
  for (const p of pieces) {
    if (p === '') throw new KeepWarmError(`${KEEP_WARM}: empty entry in ${JSON.stringify(value)}`);
    // "Sat,Sun 10:00-14:00": a piece that is only days belongs to the next one.
    if (!/\s/.test(p) && !TIME.test(p)) {
      days += `${p},`;
      continue;
    }
    entries.push(days + p);
    days = '';
  }
  if (days)
    throw new KeepWarmError(`${KEEP_WARM}: "${days.slice(0, -1)}" has no time range; write e.g. "Mon-Fri 08:00-18:00"`);
  return entries.map(parseEntry);
}

function parseEntry(text: string): Window {
  const parts = text.split(/\s+/);
  const fail = (why: string): never => {
    throw new KeepWarmError(
      `${KEEP_WARM}: "${text}": ${why}; write "DAYS HH:MM-HH:MM [zone]", e.g. "Mon-Fri 08:00-18:00 Europe/Berlin"`,
    );
  };
  if (parts.length < 2 || parts.length > 3) fail('expected days, a time range and optionally a time zone');
  const [dayText, timeText, zone = 'UTC'] = parts;
  const t = TIME.exec(timeText) ?? fail(`"${timeText}" is not a time range HH:MM-HH:MM`);
  const start = Number(t[1]) * 60 + Number(t[2]);
  let end = Number(t[3]) * 60 + Number(t[4]);
  if (end > 1440) fail(`"${timeText}" ends after 24:00`);
  if (end === start) fail(`"${timeText}" is empty`);
  if (end < start) end += 1440;
  if (!validZone(zone)) fail(`"${zone}" is not an IANA time zone`);
  return { days: parseDays(dayText, fail), start, end, zone, text };
}

function parseDays(text: string, fail: (why: string) => never): Set<number> {
  if (text === '*') return new Set([0, 1, 2, 3, 4, 5, 6]);
  const out = new Set<number>();
  const day = (name: string) => {
    const i = DAY_NAMES.findIndex((d) => d.toLowerCase() === name.toLowerCase());
    return i >= 0 ? i : fail(`"${name}" is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun or *)`);
  };
  for (const item of text.split(',')) {
    const [a, b, extra] = item.split('-');
    if (extra !== undefined || !a) fail(`"${item}" is not a day or a day range`);
    if (b === undefined) {
      out.add(day(a));
      continue;
    }
    for (let d = day(a), last = day(b); ; d = (d + 1) % 7) {
      out.add(d);
      if (d === last) break;
    }
  }
  return out;
}

const zoneOk = new Map<string, boolean>();
function validZone(zone: string): boolean {
  let ok = zoneOk.get(zone);
  if (ok === undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: zone });
      ok = true;
    } catch {
      ok = false;
    }
    zoneOk.set(zone, ok);
  }
  return ok;
}

const formats = new Map<string, Intl.DateTimeFormat>();
/** Day of week, local date and minutes after midnight of `at` in `zone`. */
function localTime(at: number, zone: string): { day: number; date: string; minutes: number } {
  let f = formats.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      weekday: 'short',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
    });
    formats.set(zone, f);
  }
  const p: Record<string, string> = {};
  for (const part of f.formatToParts(new Date(at))) p[part.type] = part.value;
  return {
    day: DAY_NAMES.indexOf(p.weekday as (typeof DAY_NAMES)[number]),
    date: `${p.year}-${p.month}-${p.day}`,
    minutes: Number(p.hour) * 60 + Number(p.minute),
  };
}

/**
 * The window occurrence `at` falls in, as a key that names it (entry and local
 * start date), or undefined outside every window. The reaper remembers the key
 * of the occurrence it woke a VM for, so only the first tick inside wakes it.
 */
export function activeWindow(windows: readonly Window[], at: number): string | undefined {
  for (const [i, w] of windows.entries()) {
    const today = localTime(at, w.zone);
    if (w.days.has(today.day) && today.minutes >= w.start && today.minutes < w.end) return `${i}@${today.date}`;
    // Still inside yesterday's window that runs over midnight.
    if (w.end > 1440 && today.minutes < w.end - 1440) {
      const yesterday = localTime(at - (today.minutes + 1) * 60_000, w.zone);
      if (w.days.has(yesterday.day)) return `${i}@${yesterday.date}`;
    }
  }
  return undefined;
}
