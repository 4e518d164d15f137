/**
 * The layers only look down. Read from the import statements of every source file:
 * functions/runtime/ imports nothing above it (no function, command table or wake
 * proxy; the JSON Schemas in schemas/ are data it may read); product code (functions/) never imports the simulator or the tests;
 * scripts/ never imports the tests.
 */
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');

function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|mjs|cjs|js)$/.test(e.name))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)))
    .sort();
}

/** Every module specifier a file names: static and type imports, re-exports, import() and require(). */
export function specifiersOf(source: string): string[] {
  const found = source.matchAll(
    /(?:^|[\s;])(?:import|export)\s[^'";]*?from\s+['"]([^'"]+)['"]|(?:^|[\s;])import\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)|\brequire\(\s*['"]([^'"]+)['"]\s*\)/g,
  );
  return [...found].map((m) => m[1] ?? m[2] ?? m[3] ?? m[4]);
}

/** The repository-relative path a relative specifier points to; undefined for packages. */
function target(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  return path.relative(ROOT, path.resolve(ROOT, path.dirname(file), specifier));
}

function imports(file: string): { specifier: string; to?: string }[] {
  const source = fs.readFileSync(path.join(ROOT, file), 'utf8');
  return specifiersOf(source).map((specifier) => ({ specifier, to: target(file, specifier) }));
}

const inside = (to: string | undefined, dir: string) => to !== undefined && (to === dir || to.startsWith(dir + '/'));

describe('the import reader', () => {
  test('finds every form of import', () => {
    const source = [
      "import a from './a';",
      "import type { B } from '../b';",
      "export { c } from './c';",
      "import './side-effect';",
      "const d = await import('./d');",
      "const e = require('./e');",
      "import {\n  f,\n  g,\n} from './fg';",
    ].join('\n');
    expect(specifiersOf(source).sort()).toEqual(['../b', './a', './c', './d', './e', './fg', './side-effect']);
  });
  test('sees an upward import as leaving the directory', () => {
    expect(inside(target('functions/runtime/x.ts', '../index'), 'functions/runtime')).toBe(false);
    expect(inside(target('functions/runtime/kube/x.ts', '../retry'), 'functions/runtime')).toBe(true);
  });
});

const RUNTIME = filesUnder('functions/runtime');
const PRODUCT = filesUnder('functions');
const SCRIPTS = filesUnder('scripts');

test('there are files to check', () => {
  expect(RUNTIME).toContain('functions/runtime/dispatch.ts');
  expect(PRODUCT).toContain('functions/app.ts');
  expect(SCRIPTS.length).toBeGreaterThan(0);
});

// schemas/ is data, not a layer: the JSON Schemas of commands and configuration files sit below all code.
test.each(RUNTIME)('%s imports nothing above functions/runtime/', (file) => {
  const upward = imports(file).filter(
    (i) =>
      i.to !== undefined && !inside(i.to, 'functions/runtime') && !(inside(i.to, 'schemas') && i.to.endsWith('.json')),
  );
  expect(upward).toEqual([]);
});

test.each(PRODUCT)('%s imports neither simulator/ nor test/', (file) => {
  const banned = imports(file).filter((i) => inside(i.to, 'simulator') || inside(i.to, 'test'));
  expect(banned).toEqual([]);
});

test.each(SCRIPTS)('%s imports nothing from test/', (file) => {
  expect(imports(file).filter((i) => inside(i.to, 'test'))).toEqual([]);
});
