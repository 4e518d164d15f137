import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { COMMANDS } from '../../functions/commands';
import { validateData } from '../../functions/runtime/validate';

const dir = path.join(__dirname, '../../schemas');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));
const load = (f: string) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
const COMMON = ['name', 'selector', 'namespace', 'dryRun', 'wait'];

test('one schema per command type that carries data, and no others', () => {
  const expected = COMMANDS.filter((c) => c.schema)
    .map((c) => `${c.type}.json`)
    .sort();
  expect(files.sort()).toEqual(expected);
});

test.each(files)('%s is strict JSON Schema 2020-12 and compiles', (f) => {
  const s = load(f);
  expect(s.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
  expect(s.additionalProperties).toBe(false);
  expect(s.title).toBe(f.replace(/\.json$/, ''));
  new Ajv2020({ strict: true, strictRequired: false }).compile(s);
});

test('the common target fields are the same in every schema', () => {
  const first = load(files[0]);
  for (const f of files) {
    for (const field of COMMON)
      expect([f, field, load(f).properties[field]]).toEqual([f, field, first.properties[field]]);
  }
});

describe('validation errors name every failing path', () => {
  const start = load('io.virtwake.vm.start.json');
  test.each([
    [{}, ['/: exactly one of "name" or "selector" is required']],
    [{ name: 'a', selector: { matchLabels: { a: 'b' } } }, ['/: exactly one of "name" or "selector" is required']],
    [{ name: 'My_VM' }, [expect.stringMatching(/^\/name: "My_VM" does not match/)]],
    [{ name: 'a/../b' }, [expect.stringMatching(/^\/name: "a\/..\/b" does not match/)]],
    [{ name: 'x'.repeat(300) }, ['/name: must NOT have more than 253 characters']],
    [{ name: 'a', wait: { timeoutSeconds: 271 } }, ['/wait/timeoutSeconds: must be <= 270']],
    [{ name: 'a', paused: 'yes' }, ['/paused: must be boolean']],
    [
      { name: 'a', extra: 1, __proto__x: 2 },
      ['/extra: unknown field, not allowed', '/__proto__x: unknown field, not allowed'],
    ],
    [JSON.parse('{"name":"a","__proto__":{"polluted":true}}'), ['/__proto__: unknown field, not allowed']],
    [{ selector: { matchLabels: {} } }, ['/selector/matchLabels: must NOT have fewer than 1 properties']],
    [
      { selector: { matchLabels: { 'bad key!': 'v' } } },
      ['/selector/matchLabels: label key "bad key!" is not a valid Kubernetes label key'],
    ],
  ])('%j', (data, errors) => {
    expect(validateData(start, data)).toEqual(errors);
  });
  test('valid commands pass', () => {
    expect(
      validateData(start, { name: 'vm-1', namespace: 'ns', dryRun: true, wait: { timeoutSeconds: 30 }, paused: true }),
    ).toEqual([]);
    expect(validateData(start, { selector: { matchLabels: { 'app.kubernetes.io/part-of': 'erp' } } })).toEqual([]);
  });
});
