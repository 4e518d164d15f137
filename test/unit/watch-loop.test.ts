/**
 * The watch loop on its own, with scripted streams in place of the API server:
 * what it reads, where each stream resumes from, and when it gives up.
 */
import type { StreamEnd } from '../../functions/runtime/kube/watch-once';
import { OpenStream, watchLoop, WatchLoop } from '../../functions/runtime/kube/watch-loop';

type Obj = { metadata: { resourceVersion: string }; ready?: boolean };
type Event = [type: string, obj: Obj];
const obj = (rv: string, ready = false): Obj => ({ metadata: { resourceVersion: rv }, ready });

/** Each stream plays its events, then ends as scripted; records the resourceVersion it was opened at. */
function scripted(streams: { events?: Event[]; end: StreamEnd<never>['kind'] | 'error' }[]) {
  const openedAt: (string | undefined)[] = [];
  const stream: OpenStream = async (rv, onEvent) => {
    openedAt.push(rv);
    const s = streams.shift() ?? { end: 'ended' };
    for (const [type, o] of s.events ?? []) {
      const hit = onEvent(type, o);
      if (hit) return { kind: 'hit', value: hit.value };
    }
    if (s.end === 'error') return { kind: 'error', error: new Error('stream broke') };
    if (s.end === 'refused') return { kind: 'refused', error: new Error('cannot watch') };
    return { kind: s.end } as StreamEnd<never>;
  };
  return { stream, openedAt };
}

function loop(
  reads: (() => Obj | undefined)[],
  stream: OpenStream,
  extra: Partial<WatchLoop<Obj | undefined, Obj | undefined>> = {},
) {
  let readCount = 0;
  const o: WatchLoop<Obj | undefined, Obj | undefined> = {
    async read() {
      const next = reads[Math.min(readCount++, reads.length - 1)];
      const current = next();
      return { state: current, resourceVersion: current?.metadata.resourceVersion };
    },
    apply: (_, type, o) => (type === 'DELETED' ? undefined : (o as Obj)),
    pick: (s) => (s?.ready ? { value: s } : undefined),
    stream,
    deadline: Date.now() + 20_000,
    maxFailures: 3,
    retryable: () => true,
    giveUp: () => new Error('gave up'),
    ...extra,
  };
  return { run: () => watchLoop(o), reads: () => readCount };
}

test('an answer already there is returned without a watch', async () => {
  const s = scripted([]);
  const l = loop([() => obj('5', true)], s.stream);
  await expect(l.run()).resolves.toEqual({ done: true, value: obj('5', true) });
  expect(s.openedAt).toEqual([]);
});

test('events are folded in until the answer shows', async () => {
  const s = scripted([
    {
      events: [
        ['MODIFIED', obj('6')],
        ['MODIFIED', obj('7', true)],
      ],
      end: 'ended',
    },
  ]);
  const l = loop([() => obj('5')], s.stream);
  await expect(l.run()).resolves.toEqual({ done: true, value: obj('7', true) });
  expect(s.openedAt).toEqual(['5']);
});

test('a stream that ends is resumed from the last resourceVersion seen, bookmarks included, without a read', async () => {
  const s = scripted([
    {
      events: [
        ['MODIFIED', obj('6')],
        ['BOOKMARK', obj('9')],
      ],
      end: 'ended',
    },
    { events: [['MODIFIED', obj('10', true)]], end: 'ended' },
  ]);
  const l = loop([() => obj('5')], s.stream);
  await expect(l.run()).resolves.toMatchObject({ done: true });
  expect(s.openedAt).toEqual(['5', '9']);
  expect(l.reads()).toBe(1);
});

test('410 Gone reads again and watches from the new resourceVersion', async () => {
  const s = scripted([{ end: 'gone' }, { events: [['MODIFIED', obj('21', true)]], end: 'ended' }]);
  const l = loop([() => obj('5'), () => obj('20')], s.stream);
  await expect(l.run()).resolves.toMatchObject({ done: true });
  expect(s.openedAt).toEqual(['5', '20']);
  expect(l.reads()).toBe(2);
});

test('a deletion counts as an event (the state becomes undefined)', async () => {
  const s = scripted([{ events: [['DELETED', obj('6')]], end: 'ended' }]);
  const l = loop([() => obj('5')], s.stream, { pick: (st) => (st === undefined ? { value: undefined } : undefined) });
  await expect(l.run()).resolves.toEqual({ done: true, value: undefined });
});

test('streams that keep breaking: read again after the second failure, give up after maxFailures', async () => {
  const s = scripted([{ end: 'error' }, { end: 'error' }, { end: 'error' }, { end: 'error' }]);
  const l = loop([() => obj('5')], s.stream);
  await expect(l.run()).rejects.toThrow('gave up');
  expect(s.openedAt).toHaveLength(4);
  expect(l.reads()).toBeGreaterThan(1);
});

test('an event in between resets the failure count', async () => {
  const s = scripted([
    { end: 'error' },
    { end: 'error' },
    { events: [['MODIFIED', obj('6')]], end: 'error' },
    { end: 'error' },
    { events: [['MODIFIED', obj('7', true)]], end: 'ended' },
  ]);
  const l = loop([() => obj('5')], s.stream);
  await expect(l.run()).resolves.toMatchObject({ done: true });
});

test('a read that fails and may not be retried is thrown at once', async () => {
  const s = scripted([]);
  const l = loop(
    [
      () => {
        throw new Error('403');
      },
    ],
    s.stream,
    { retryable: () => false },
  );
  await expect(l.run()).rejects.toThrow('403');
  expect(l.reads()).toBe(1);
});

test('a stream the API server refuses for good ends the loop at once: no retry, no read again', async () => {
  const s = scripted([{ events: [['MODIFIED', obj('6')]], end: 'ended' }, { end: 'refused' }, { end: 'ended' }]);
  const l = loop([() => obj('5')], s.stream, { maxFailures: 5 });
  await expect(l.run()).rejects.toThrow('cannot watch');
  expect(s.openedAt).toEqual(['5', '6']);
  expect(l.reads()).toBe(1);
});

test('past the deadline, or once aborted: not done, nothing opened', async () => {
  const s = scripted([]);
  const late = loop([() => obj('5')], s.stream, { deadline: Date.now() - 1 });
  await expect(late.run()).resolves.toEqual({ done: false });
  const aborted = new AbortController();
  aborted.abort();
  const off = loop([() => obj('5')], s.stream, { signal: aborted.signal });
  await expect(off.run()).resolves.toEqual({ done: false });
  expect(s.openedAt).toEqual([]);
});
