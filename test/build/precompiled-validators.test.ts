/**
 * The production bundle validates with validators ajv generated at build time
 * (scripts/precompile-validators.cjs, wired in by scripts/build.mjs). They must
 * answer exactly as ajv.compile() does from source: same verdict, same errors.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { compileValidator, createAjv } from '../../functions/runtime/validate-compile';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS build script without type declarations
const { precompiledValidators } = require('../../scripts/precompile-validators.cjs');

const dir = path.join(__dirname, '../../schemas');
// As scripts/build.mjs compiles them: the command schemas, then the configuration files' (schemas/config).
const read = (d: string): Record<string, any>[] =>
  fs
    .readdirSync(d)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(d, f), 'utf8')));
const schemas = [...read(dir), ...read(path.join(dir, 'config'))];

function loadPrecompiled(): { compileValidator(schema: object): any } {
  const source: string = precompiledValidators(createAjv({ code: { source: true } }), schemas);
  const mod = { exports: {} as any };
  new Function('module', 'exports', 'require', source)(
    mod,
    mod.exports,
    createRequire(path.join(dir, '..', 'package.json')),
  );
  return mod.exports;
}

const aot = loadPrecompiled();

const ODD_VALUES: unknown[] = [
  undefined,
  null,
  0,
  -1,
  1.5,
  300,
  'x',
  '',
  'Not_A_Name',
  'a/../b',
  'x'.repeat(300),
  true,
  {},
  [],
  { matchLabels: { 'bad key!': 'v' } },
  { timeoutSeconds: 271 },
  '10m',
  'P1D',
];

function samples(schema: Record<string, any>): unknown[] {
  const out: unknown[] = [
    {},
    null,
    'text',
    [],
    { name: 'vm-1' },
    { selector: { matchLabels: { app: 'web' } } },
    { name: 'vm-1', selector: { matchLabels: {} } },
    { name: 'vm-1', bogus: 1 },
  ];
  for (const field of Object.keys(schema.properties ?? {})) {
    for (const v of ODD_VALUES) out.push({ name: 'vm-1', [field]: v }, { [field]: v });
  }
  // The routes file: odd values in each field of an HTTP and a TCP route.
  if (schema.properties?.routes) {
    const http = { host: 'a.example', vm: { name: 'a' }, service: { name: 'a', port: 80 } };
    const tcp = { listen: { tcp: 5432 }, vm: { name: 'db' }, service: { name: 'db', port: 'pg' } };
    out.push({ routes: [http, tcp] }, { routes: null }, { routes: {} });
    for (const route of [http, tcp] as Record<string, unknown>[])
      for (const field of [...Object.keys(route), 'pathPrefix', 'stripPrefix', 'listen', 'bogus'])
        for (const v of ODD_VALUES) out.push({ routes: [{ ...route, [field]: v }] });
  }
  // The policy file: odd values in each field of a rule, and in the items of its lists.
  if (schema.properties?.rules) {
    const rule = { name: 'ci', sources: ['/ci/*'], actions: ['start'], namespaces: ['ci'], selector: 'ci=true' };
    out.push({ rules: [rule] }, { rules: null }, { rules: {} }, { rules: [rule, rule] }, { rules: [] });
    for (const field of [...Object.keys(rule), 'description', 'bogus'])
      for (const v of ODD_VALUES) {
        out.push({ rules: [{ ...rule, [field]: v }] }, { rules: [{ ...rule, [field]: [v] }] });
      }
  }
  return out;
}

describe.each(schemas.map((s) => [s.title as string, s]))('%s', (_title, schema) => {
  const jit = compileValidator(schema);
  const pre = aot.compileValidator(schema);

  test('precompiled and compiled-from-source validators agree on verdict and errors', () => {
    for (const data of samples(schema)) {
      const a = jit(data);
      const jitErrors = jit.errors;
      const b = pre(data);
      expect([data, b, pre.errors ?? null]).toEqual([data, a, jitErrors ?? null]);
    }
  });

  test('a schema that differs from the one compiled is refused', () => {
    expect(() => aot.compileValidator({ ...schema, description: 'changed' })).toThrow(/rebuild/);
  });
});
