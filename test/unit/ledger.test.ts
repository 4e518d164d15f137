import {
  CLAIM_TTL_MS,
  decide,
  Entry,
  LEDGER,
  LEDGER_MAX_AGE_MS,
  LEDGER_MAX_ENTRIES,
  parseLedger,
  readLedger,
  serialiseLedger,
  trim,
} from '../../functions/runtime/ledger';

// contract §6: the ledger's decisions, one rule per case.

const T0 = 1_700_000_000_000;
const entry = (key: string, o: Partial<Entry> = {}): Entry => ({
  key,
  action: 'stop',
  at: T0,
  state: 'applied',
  delivery: `d-${key}`,
  request: { id: `id-${key}`, source: '/s', type: 'io.virtwake.vm.stop' },
  outcome: 'accepted',
  ...o,
});
const ask = (key: string, o: Partial<{ action: string; time: number; delivery: string }> = {}) => ({
  key,
  action: 'stop',
  delivery: 'mine',
  ...o,
});

describe('decide', () => {
  test('nothing recorded: new', () => {
    expect(decide({ entries: [] }, ask('a'), T0).kind).toBe('new');
  });
  test('recorded (applied or done): answered as recorded, whatever came since', () => {
    const l = { entries: [entry('a'), entry('b', { action: 'start' })] };
    expect(decide(l, ask('a'), T0)).toEqual({ kind: 'recorded', entry: l.entries[0] });
  });
  test("a restart: another delivery's fresh claim is busy; expired: retake; our own: retake", () => {
    const l = { entries: [entry('a', { action: 'restart', state: 'claimed', outcome: undefined })] };
    const restart = (o = {}) => ask('a', { action: 'restart', ...o });
    expect(decide(l, restart(), T0 + CLAIM_TTL_MS - 1).kind).toBe('busy');
    expect(decide(l, restart(), T0 + CLAIM_TTL_MS).kind).toBe('retake');
    expect(decide(l, restart({ delivery: 'd-a' }), T0 + 1).kind).toBe('retake');
  });
  test('commands safe to repeat act again on a fresh claim of another delivery', () => {
    const l = { entries: [entry('a', { state: 'claimed', outcome: undefined })] };
    expect(decide(l, ask('a'), T0 + 1).kind).toBe('retake');
  });
  test('a claim overtaken by a power command applied after it (ledger order): superseded by it', () => {
    const l = { entries: [entry('a', { state: 'claimed' }), entry('b', { action: 'start' })] };
    const d = decide(l, ask('a'), T0 + CLAIM_TTL_MS);
    expect(d).toEqual({ kind: 'superseded', entry: l.entries[0], by: l.entries[1] });
  });
  test('a new power command older (ce-time) than one applied: superseded by the newest such', () => {
    const l = {
      entries: [
        entry('b', { action: 'start', time: T0 - 10 }),
        entry('c', { action: 'stop', time: T0 - 5 }),
        entry('x', { action: 'snapshot', time: T0 }),
      ],
    };
    const d = decide(l, ask('a', { time: T0 - 20 }), T0);
    expect(d.kind === 'superseded' && d.by.key).toBe('c');
    // Without ce-time there is nothing to compare: it acts.
    expect(decide(l, ask('a'), T0).kind).toBe('new');
    // Not a power command (snapshot): never superseded.
    expect(decide(l, ask('a', { time: T0 - 20, action: 'snapshot' }), T0).kind).toBe('new');
    // A newer claim not yet applied does not count.
    const claimed = { entries: [entry('b', { action: 'start', time: T0, state: 'claimed' })] };
    expect(decide(claimed, ask('a', { time: T0 - 20 }), T0).kind).toBe('new');
  });
});

describe('bounds', () => {
  test(`at most ${LEDGER_MAX_ENTRIES} entries, oldest settled ones first; pending kept`, () => {
    const entries = Array.from({ length: 40 }, (_, i) =>
      entry(`k${i}`, i === 0 ? { pending: { target: 'stopped', deadline: T0 + 1 } } : {}),
    );
    const out = trim({ entries }, T0).entries.map((e) => e.key);
    expect(out).toHaveLength(LEDGER_MAX_ENTRIES);
    expect(out[0]).toBe('k0');
    expect(out[1]).toBe('k9');
  });
  test('entries older than the age limit go, unless pending', () => {
    const l = {
      entries: [
        entry('old', { at: T0 - LEDGER_MAX_AGE_MS - 1 }),
        entry('pending', { at: T0 - LEDGER_MAX_AGE_MS - 1, pending: { target: 'running', deadline: T0 } }),
        entry('young'),
      ],
    };
    expect(trim(l, T0).entries.map((e) => e.key)).toEqual(['pending', 'young']);
  });
  test('an unreadable annotation (a hand edit) counts as empty; round trip keeps everything', () => {
    expect(parseLedger('{not json')).toEqual({ entries: [] });
    expect(parseLedger('{"entries":[{"key":1}]}')).toEqual({ entries: [] });
    const l = { entries: [entry('a', { reason: 'AlreadyInState' })], seen: { status: 'Running' } };
    const vm = { metadata: { name: 'v', annotations: { [LEDGER]: serialiseLedger(l, T0) } } };
    expect(readLedger(vm)).toEqual(l);
  });
});
