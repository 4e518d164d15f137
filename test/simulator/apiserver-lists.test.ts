// Lists as a real kube-apiserver (v1.36.3, the rig's) answers them: reads at a resourceVersion,
// 410s after compaction, and the exact texts of a malformed selector or continue token. Each
// expected text below was read from the real apiserver and comes from the upstream file named.
import { parseLabelSelector } from '../../simulator/selectors';
import { ApiError } from '../../simulator/errors';
import { request, startEnv, vmPath, type TestEnv } from './helpers';

let env: TestEnv;
beforeAll(async () => {
  env = await startEnv();
  for (const n of ['a', 'b', 'c', 'd', 'e'])
    env.sim.store.addVM({ metadata: { name: `vm-${n}`, namespace: 'ns1' }, spec: { runStrategy: 'Halted' } });
});
afterAll(() => env.sim.close());

const list = (query: string) => request(env.kc, 'GET', `${vmPath('ns1')}?${query}`);
const names = (r: { json: any }) => r.json.items.map((i: any) => i.metadata.name);
const decode = (token: string) => JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));

function status(code: number, reason: string, message: string, extra: Record<string, unknown> = {}) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code, ...extra };
}

describe('reads at a resourceVersion (k8s.io/apiserver pkg/storage/interfaces.go, etcd3/store.go, etcd3/errors.go)', () => {
  test('Exact at an older resourceVersion lists the objects as they were then', async () => {
    const before = await list('');
    env.sim.store.addVM({ metadata: { name: 'vm-later', namespace: 'ns1' }, spec: { runStrategy: 'Halted' } });
    const then = await list(`resourceVersion=${before.json.metadata.resourceVersion}&resourceVersionMatch=Exact`);
    expect(then.status).toBe(200);
    expect(then.json.metadata.resourceVersion).toBe(before.json.metadata.resourceVersion);
    expect(names(then)).toEqual(['vm-a', 'vm-b', 'vm-c', 'vm-d', 'vm-e']);
    expect(names(await list(''))).toContain('vm-later');
  });

  test('Exact, or a limited list with a resourceVersion, at a compacted resourceVersion is 410', async () => {
    const old = (await list('')).json.metadata.resourceVersion;
    env.sim.store.addVM({ metadata: { name: 'vm-f', namespace: 'ns1' }, spec: { runStrategy: 'Halted' } });
    env.sim.store.compact();
    const tooOld = status(410, 'Expired', 'The resourceVersion for the provided list is too old.');
    const exact = await list(`resourceVersion=${old}&resourceVersionMatch=Exact`);
    expect(exact.status).toBe(410);
    expect(exact.json).toEqual(tooOld);
    expect((await list(`resourceVersion=${old}&limit=2`)).json).toEqual(tooOld);
    // NotOlderThan (and the legacy form without a limit) is served at the latest revision.
    expect((await list(`resourceVersion=${old}&resourceVersionMatch=NotOlderThan`)).status).toBe(200);
    expect((await list(`resourceVersion=${old}`)).status).toBe(200);
  });

  test("an expired continue token's 410 offers a token that goes on at the latest resourceVersion", async () => {
    const first = await list('limit=2');
    expect(decode(first.json.metadata.continue)).toEqual({
      v: 'meta.k8s.io/v1',
      rv: Number(first.json.metadata.resourceVersion),
      start: 'vm-b\u0000', // relative to the namespace, as etcd3 keys it
    });
    env.sim.store.addVM({ metadata: { name: 'vm-aa', namespace: 'ns1' }, spec: { runStrategy: 'Halted' } });
    env.sim.store.compact();
    const expired = await list(`limit=2&continue=${first.json.metadata.continue}`);
    expect(expired.status).toBe(410);
    expect(expired.json).toEqual({
      ...status(
        410,
        'Expired',
        'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
      ),
      metadata: { continue: expect.any(String) },
    });
    expect(decode(expired.json.metadata.continue)).toEqual({ v: 'meta.k8s.io/v1', rv: -1, start: 'vm-b\u0000' });
    const rest = await list(`limit=2&continue=${expired.json.metadata.continue}`);
    expect(rest.status).toBe(200);
    expect(names(rest)).toEqual(['vm-c', 'vm-d']);
    expect(rest.json.metadata.resourceVersion).toBe(env.sim.store.resourceVersion());
  });

  test('a resourceVersion not reached yet is 504 Timeout with ResourceVersionTooLarge (storage/errors.go)', async () => {
    const current = Number(env.sim.store.resourceVersion());
    for (const q of ['resourceVersionMatch=Exact', 'resourceVersionMatch=NotOlderThan', 'limit=1', '']) {
      const r = await list(`resourceVersion=${current + 1000}&${q}`);
      expect(r.json).toEqual(
        status(504, 'Timeout', `Timeout: Too large resource version: ${current + 1000}, current: ${current}`, {
          details: { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }] },
        }),
      );
    }
  });

  test.each([
    ['resourceVersionMatch=Exact', 'Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided'],
    [
      'resourceVersion=5&resourceVersionMatch=Exact&continue=x',
      'Forbidden: resourceVersionMatch is forbidden when continue is provided',
    ],
    [
      'resourceVersion=0&resourceVersionMatch=Exact',
      'Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
    ],
  ])('ListOptions %s is 422 (apimachinery internalversion/validation ValidateListOptions)', async (q, cause) => {
    const r = await list(q);
    expect(r.json).toEqual(
      status(422, 'Invalid', `ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: ${cause}`, {
        details: {
          group: 'meta.k8s.io',
          kind: 'ListOptions',
          causes: [{ reason: 'FieldValueForbidden', message: cause, field: 'resourceVersionMatch' }],
        },
      }),
    );
  });

  test.each([
    [
      'resourceVersion=5&resourceVersionMatch=Foo',
      422,
      'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Unsupported value: "Foo": supported values: "Exact", "NotOlderThan", ""',
    ],
    [
      'resourceVersion=abc',
      400,
      'invalid resource version: resourceVersion: Invalid value: "abc": strconv.ParseUint: parsing "abc": invalid syntax',
    ],
    [
      'resourceVersion=5&limit=2&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTEsInN0YXJ0Ijoidm0tYlx1MDAwMCJ9',
      400,
      'specifying resource version is not allowed when using continue',
    ],
  ])('%s -> %i', async (q, code, message) => {
    const r = await list(q);
    expect(r.status).toBe(code);
    expect(r.json.message).toBe(message);
  });
});

const LABEL_VALUE_RULE =
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

describe('label selector texts (k8s.io/apimachinery pkg/labels/selector.go, api/validate/content/kube.go)', () => {
  test.each([
    ['a b', "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"],
    ['a=b=c', "found '=', expected: ',' or 'end of string'"],
    ['!', "unable to parse requirement: found '', expected: identifier"],
    ['a in ', "unable to parse requirement: found '' expected: '('"],
    ['a,', "found '', expected: identifier after ','"],
    ['(a)', "found '(', expected: !, identifier, or 'end of string'"],
    [
      'Bad_Key-/x',
      "unable to parse requirement: <nil>: Invalid value: \"Bad_Key-/x\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    ],
    ['a=-bad', `unable to parse requirement: values[0][a]: Invalid value: "-bad": ${LABEL_VALUE_RULE}`],
    [
      'a>1x',
      "unable to parse requirement: values[0]: Invalid value: \"1x\": for 'Gt', 'Lt' operators, the value must be an integer",
    ],
    // Values are sorted before they are checked, so the index is the sorted one.
    ['a in (z,-bad)', `unable to parse requirement: values[0][a]: Invalid value: "-bad": ${LABEL_VALUE_RULE}`],
  ])('%s', async (sel, message) => {
    const r = await list(`labelSelector=${encodeURIComponent(sel)}`);
    expect(r.json).toEqual(status(400, 'BadRequest', message));
  });

  test('`in ()`, `a=` and `a==` are accepted: the empty value', async () => {
    for (const sel of ['a in ()', 'a=', 'a==', 'a in (b,)', 'in=x'])
      expect((await list(`labelSelector=${encodeURIComponent(sel)}`)).status).toBe(200);
    expect(() => parseLabelSelector('a in (b c)')).toThrow(ApiError);
  });
});

describe('field selector texts (apimachinery pkg/fields/selector.go, apiextensions-apiserver conversion/converter.go)', () => {
  test.each([
    ['spec.runStrategy=Halted', 'field label not supported: spec.runStrategy'],
    ['metadata.name', "invalid selector: 'metadata.name'; can't understand 'metadata.name'"],
    ['metadata.name=a,spec.x=b', 'field label not supported: spec.x'],
    ['metadata.name=a=b', 'invalid field selector: unescaped character in value: 61'],
    ['metadata.name=a\\x', 'invalid field selector: invalid escape sequence: \\x'],
  ])('%s', async (sel, message) => {
    const r = await list(`fieldSelector=${encodeURIComponent(sel)}`);
    expect(r.json).toEqual(status(400, 'BadRequest', message));
  });
});

describe('continue token texts (k8s.io/apiserver pkg/storage/continue.go DecodeContinue)', () => {
  const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64url');
  test.each([
    ['garbage!', 'illegal base64 data at input byte 7'],
    ['abc', "invalid character 'i' looking for beginning of value"],
    ['garbage', "invalid character '\\u0081' looking for beginning of value"],
    [b64('not json'), "invalid character 'o' in literal null (expecting 'u')"],
    [b64('tru'), "invalid character ' ' in literal true (expecting 'e')"],
    [b64('1.'), "invalid character ' ' after decimal point in numeric literal"],
    [b64('{"v":"x"}'), 'server does not recognize this encoded version x'],
    [b64('{"v":1}'), 'json: cannot unmarshal number into Go struct field continueToken.v of type string'],
    [b64('{"rv":1.5}'), 'json: cannot unmarshal number 1.5 into Go struct field continueToken.rv of type int64'],
    [b64('[1]'), 'json: cannot unmarshal array into Go value of type storage.continueToken'],
    [
      b64('{"v":"meta.k8s.io/v1","rv":0,"start":"vm-b\\u0000"}'),
      'incorrect encoded start resourceVersion (version meta.k8s.io/v1)',
    ],
    [b64('{"v":"meta.k8s.io/v1","rv":5}'), 'encoded start key empty (version meta.k8s.io/v1)'],
    [b64('{"v":"meta.k8s.io/v1","rv":5,"start":"a/../b"}'), 'a/../b'],
  ])('%s', async (token, detail) => {
    const r = await list(`limit=2&continue=${token}`);
    expect(r.json).toEqual(status(400, 'BadRequest', `invalid continue token: continue key is not valid: ${detail}`));
  });
});
