/**
 * The dispatcher's rules, without HTTP: which handler an event goes to, what is
 * refused before anything runs, and how a selector command adds up its VMs
 * (one VM that must be redone hands the whole command back; a denial is that
 * VM's failure, not the command's).
 */
import pino from 'pino';
import type { CloudEvent } from '../../functions/runtime/cloudevents/event';
import { loadConfig } from '../../functions/runtime/config';
import { dispatcher, Handler } from '../../functions/runtime/dispatch';
import { Denied, HandBack, InvalidCommand } from '../../functions/runtime/errors';
import { completed, VmFunction } from '../../functions/runtime/function';
import { createMetrics } from '../../functions/runtime/metrics';
import type { Runtime } from '../../functions/runtime/runtime';
import { fakeKubeVirt } from '../snapshot/fake';

const SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  properties: {
    name: { type: 'string' },
    selector: { type: 'object' },
  },
  additionalProperties: false,
};

/** Plays each VM's fate by its name: hand back, denied, or done. */
const poke: VmFunction = {
  async run(ctx) {
    if (ctx.name.startsWith('busy')) throw new HandBack(`${ctx.name} is busy`, 5);
    if (ctx.name.startsWith('secret')) throw new Denied(`${ctx.name} is not yours`);
    return completed();
  },
};

const COMMANDS = [{ type: 'test.poke', fn: 'poke' as const }];

function setup(vms: string[], env: NodeJS.ProcessEnv = {}) {
  const fake = fakeKubeVirt();
  for (const name of vms)
    fake.put('virtualmachines', {
      metadata: { name, namespace: 'default', labels: { app: 'x', 'virtwake.io/enabled': 'true' } },
    });
  const seen: string[] = [];
  const handlers: Record<'poke' | 'deadletter', Handler> = {
    poke: { kind: 'vm', fn: poke, schema: SCHEMA },
    deadletter: {
      kind: 'event',
      fn: {
        async handle(ev) {
          seen.push(ev.id);
          return undefined;
        },
      },
    },
  };
  const rt: Runtime = {
    config: loadConfig({ VIRTWAKE_NAMESPACE: 'default', VIRTWAKE_RETRY_ATTEMPTS: '1', ...env }),
    kubevirt: fake.kubevirt,
    log: pino({ level: 'silent' }),
    metrics: createMetrics(),
    now: () => new Date(Date.UTC(2025, 0, 1)),
    signal: new AbortController().signal,
  };
  return { d: dispatcher(rt, COMMANDS, handlers), seen };
}

const event = (type: string, data: unknown, extensions: CloudEvent['extensions'] = {}): CloudEvent => ({
  specversion: '1.0',
  id: 'e1',
  source: '/test',
  type,
  datacontenttype: 'application/json',
  data,
  extensions,
});

function refusal(fn: () => unknown): InvalidCommand {
  try {
    fn();
  } catch (e) {
    if (e instanceof InvalidCommand) return e;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('prepare: refused before anything runs', () => {
  test('an unknown type says which types this service serves', () => {
    const e = refusal(() => setup([]).d.prepare(event('test.other', { name: 'a' })));
    expect(e.why).toBe('unknown-type');
    expect(e.message).toBe('event type "test.other" is not handled by this service; it serves: test.poke');
  });
  test('missing data, data that is not an object, data against the schema', () => {
    const { d } = setup([]);
    expect(refusal(() => d.prepare(event('test.poke', undefined))).why).toBe('invalid-data');
    expect(refusal(() => d.prepare(event('test.poke', 'a'))).message).toMatch(/data must be a JSON object/);
    const e = refusal(() => d.prepare(event('test.poke', { name: 'a', colour: 'red' })));
    expect(e.message).toBe('data does not match schemas/test.poke.json');
    expect(e.errors).toEqual(['/colour: unknown field, not allowed']);
  });
  test('a dead-lettered event goes to the dead-letter sink whatever its type', async () => {
    const { d, seen } = setup([]);
    const p = d.prepare(event('test.poke', { name: 'a' }, { knativeerrorcode: '500' }));
    expect(p.fn).toBe('deadletter');
    await d.execute(p);
    expect(seen).toEqual(['e1']);
  });
  test('a function this instance does not serve is an unknown type', () => {
    const e = refusal(() => setup([], { VIRTWAKE_FUNCTIONS: 'start' }).d.prepare(event('test.poke', { name: 'a' })));
    expect(e.message).toBe('event type "test.poke" is not handled by this service; it serves: (none)');
  });
  test('an instance that serves only the dead-letter sink takes every event', () => {
    const { d } = setup([], { VIRTWAKE_FUNCTIONS: 'deadletter' });
    expect(d.prepare(event('test.other', 'anything')).fn).toBe('deadletter');
  });
});

describe('a selector command adds up its VMs', () => {
  test('a denial is that VM failing Forbidden; the others complete; entries sorted by name', async () => {
    const { d } = setup(['b', 'secret-1', 'a']);
    const r = await d.execute(d.prepare(event('test.poke', { selector: { matchLabels: { app: 'x' } } })));
    const data = r.reply?.data as { outcome: string; results: { name: string; outcome: string; reason?: string }[] };
    expect(data.results.map((x) => [x.name, x.outcome, x.reason])).toEqual([
      ['a', 'completed', undefined],
      ['b', 'completed', undefined],
      ['secret-1', 'failed', 'Forbidden'],
    ]);
  });
  test('one VM that must be redone hands the whole command back', async () => {
    const { d } = setup(['a', 'busy-1', 'c']);
    const p = d.prepare(event('test.poke', { selector: { matchLabels: { app: 'x' } } }));
    await expect(d.execute(p)).rejects.toBeInstanceOf(HandBack);
  });
});
