import pino from 'pino';
import {
  ACTIVITY_INTERVAL_MS,
  activityRecorder,
  LAST_ACTIVITY,
  parseStamp,
  rfc3339,
} from '../../functions/runtime/activity';
import type { KubeVirt } from '../../functions/runtime/kubevirt';
import type { VirtualMachine } from '../../functions/runtime/kubevirt-types';

// The throttle on its own, against a fake client that counts PATCHes.

function fakeKubeVirt(opts: { fail?: boolean; delayMs?: number } = {}) {
  const patches: { name: string; patch: any }[] = [];
  const kv = {
    async mergePatch(_r: string, _ns: string, name: string, patch: unknown) {
      patches.push({ name, patch });
      if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
      if (opts.fail) throw new Error('API down');
      return {};
    },
  } as unknown as KubeVirt;
  return { kv, patches };
}

const vm = (name: string, annotations: Record<string, string> = {}): VirtualMachine => ({
  metadata: { name, namespace: 'vms', annotations },
});

describe('activity throttle (contract §5)', () => {
  let t = Date.parse('2030-01-01T00:00:00Z');
  const now = () => new Date(t);
  const log = pino({ level: 'silent' });

  test('a burst of 10,000 concurrent events for one VM makes one PATCH of only the annotation', async () => {
    const { kv, patches } = fakeKubeVirt({ delayMs: 5 });
    const rec = activityRecorder({ kubevirt: kv, now, log });
    await Promise.all(Array.from({ length: 10_000 }, () => rec.record(vm('a'))));
    expect(patches).toEqual([{ name: 'a', patch: { metadata: { annotations: { [LAST_ACTIVITY]: rfc3339(t) } } } }]);
    // Later events inside the minute: nothing more.
    t += ACTIVITY_INTERVAL_MS - 1000;
    for (let i = 0; i < 100; i++) await rec.record(vm('a'));
    expect(patches).toHaveLength(1);
    // A minute after the write: one more.
    t += 1000;
    await Promise.all([rec.record(vm('a')), rec.record(vm('a'))]);
    expect(patches).toHaveLength(2);
  });

  test('a fresh stamp written by another replica is honoured without writing', async () => {
    const { kv, patches } = fakeKubeVirt();
    const rec = activityRecorder({ kubevirt: kv, now, log });
    await rec.record(vm('b', { [LAST_ACTIVITY]: rfc3339(t - 30_000) }));
    expect(patches).toHaveLength(0);
    await rec.record(vm('c', { [LAST_ACTIVITY]: rfc3339(t - 61_000) }));
    expect(patches.map((p) => p.name)).toEqual(['c']);
  });

  test('each VM has its own minute', async () => {
    const { kv, patches } = fakeKubeVirt();
    const rec = activityRecorder({ kubevirt: kv, now, log });
    await Promise.all(['x', 'y', 'z', 'x', 'y'].map((n) => rec.record(vm(n))));
    expect(patches.map((p) => p.name).sort()).toEqual(['x', 'y', 'z']);
  });

  test('a failed write is logged, never thrown, and retried a few seconds later, not per event', async () => {
    const { kv, patches } = fakeKubeVirt({ fail: true });
    const rec = activityRecorder({ kubevirt: kv, now, log });
    await expect(rec.record(vm('c'))).resolves.toBeUndefined();
    await rec.record(vm('c'));
    expect(patches).toHaveLength(1);
    t += 5_000;
    await rec.record(vm('c'));
    expect(patches).toHaveLength(2);
  });

  test('a stamp far in the future cannot block writes', () => {
    expect(parseStamp(rfc3339(t + 3_600_000), t)).toBeUndefined();
    expect(parseStamp('not a time', t)).toBeUndefined();
    expect(parseStamp(rfc3339(t - 1000), t)).toBe(Math.floor((t - 1000) / 1000) * 1000);
    expect(rfc3339(Date.parse('2030-01-01T00:00:00.789Z'))).toBe('2030-01-01T00:00:00Z');
  });
});
