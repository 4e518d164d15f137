import { activeWindow, KeepWarmError, parseKeepWarm } from '../../functions/reaper/keep-warm';

// virtwake.io/keep-warm: the grammar, every way it can be wrong, and which
// instants fall inside a window (zones and daylight saving through Intl).

const at = (iso: string) => Date.parse(iso);

describe('parseKeepWarm', () => {
  it('reads days, a time range and a zone; UTC without one', () => {
    const [w] = parseKeepWarm('Mon-Fri 08:00-18:00 Europe/Berlin');
    expect([...w.days].sort()).toEqual([1, 2, 3, 4, 5]);
    expect([w.start, w.end, w.zone]).toEqual([480, 1080, 'Europe/Berlin']);
    expect(parseKeepWarm('* 00:00-24:00')[0]).toMatchObject({ start: 0, end: 1440, zone: 'UTC' });
  });

  it('takes a comma list of entries whose days may be a comma list too', () => {
    const ws = parseKeepWarm('Mon-Fri 08:00-18:00 Europe/Berlin, Sat,Sun 10:00-14:00');
    expect(ws).toHaveLength(2);
    expect([...ws[1].days].sort()).toEqual([0, 6]);
    expect(ws[1].zone).toBe('UTC');
  });

  it('wraps day ranges over the week end and windows over midnight', () => {
    const [w] = parseKeepWarm('Fri-Mon 22:00-06:00');
    expect([...w.days].sort()).toEqual([0, 1, 5, 6]);
    expect([w.start, w.end]).toEqual([1320, 1800]);
  });

  it.each([
    ['', 'empty entry'],
    ['Mon-Fri', 'has no time range'],
    ['Mon-Fri 8:00-18:00', 'is not a time range'],
    ['Mon-Fri 08:00-25:00', 'is not a time range'],
    ['Mon-Fri 08:00-08:00', 'is empty'],
    ['Mon-Fri 08:00-18:00 Mars/Olympus', 'is not an IANA time zone'],
    ['Mo-Fr 08:00-18:00', 'is not a day'],
    ['Mon-Wed-Fri 08:00-18:00', 'is not a day or a day range'],
    ['Mon-Fri 08:00-18:00 UTC extra', 'expected days, a time range'],
    ['Mon-Fri 08:00-18:00,', 'empty entry'],
  ])('%j is refused: %s', (value, message) => {
    expect(() => parseKeepWarm(value)).toThrow(KeepWarmError);
    expect(() => parseKeepWarm(value)).toThrow(message);
  });
});

describe('activeWindow', () => {
  const berlin = parseKeepWarm('Mon-Fri 08:00-18:00 Europe/Berlin');

  it('is inside on a weekday in the zone, outside before, after and at the weekend', () => {
    // 2030-03-04 is a Monday; Berlin is UTC+1 in winter.
    expect(activeWindow(berlin, at('2030-03-04T07:00:00Z'))).toBe('0@2030-03-04');
    expect(activeWindow(berlin, at('2030-03-04T06:59:00Z'))).toBeUndefined();
    expect(activeWindow(berlin, at('2030-03-04T17:00:00Z'))).toBeUndefined();
    expect(activeWindow(berlin, at('2030-03-09T10:00:00Z'))).toBeUndefined();
  });

  it('follows daylight saving: 08:00 in Berlin is 06:00 UTC in summer', () => {
    expect(activeWindow(berlin, at('2030-07-01T06:00:00Z'))).toBe('0@2030-07-01');
    expect(activeWindow(berlin, at('2030-07-01T05:59:00Z'))).toBeUndefined();
  });

  it('gives one key per occurrence, so a new day is a new window', () => {
    const mon = activeWindow(berlin, at('2030-03-04T09:00:00Z'));
    expect(activeWindow(berlin, at('2030-03-04T15:00:00Z'))).toBe(mon);
    expect(activeWindow(berlin, at('2030-03-05T09:00:00Z'))).not.toBe(mon);
  });

  it('keeps a window that runs over midnight on the day it started', () => {
    const night = parseKeepWarm('Fri 22:00-06:00');
    expect(activeWindow(night, at('2030-03-08T23:00:00Z'))).toBe('0@2030-03-08');
    expect(activeWindow(night, at('2030-03-09T05:00:00Z'))).toBe('0@2030-03-08');
    expect(activeWindow(night, at('2030-03-09T06:00:00Z'))).toBeUndefined();
    // Thursday night is not Friday's.
    expect(activeWindow(night, at('2030-03-08T05:00:00Z'))).toBeUndefined();
  });

  it('names the entry that matched', () => {
    const ws = parseKeepWarm('Mon-Fri 08:00-18:00, Sat,Sun 10:00-14:00');
    expect(activeWindow(ws, at('2030-03-09T11:00:00Z'))).toBe('1@2030-03-09');
  });
});
