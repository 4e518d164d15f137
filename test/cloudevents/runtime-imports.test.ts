/**
 * Cold start: the runtime CloudEvents files import nothing but each other (no SDK, no ajv,
 * no other package), and compile their regexes once, at module level.
 */
import fs from 'node:fs';
import path from 'node:path';

const DIR = path.resolve(__dirname, '../../functions/runtime/cloudevents');
const FILES = fs.readdirSync(DIR).filter((f) => f.endsWith('.ts'));

test('the layer has its files', () => {
  expect(FILES).toEqual(
    expect.arrayContaining(['event.ts', 'errors.ts', 'http-encode.ts', 'http-parse.ts', 'media-type.ts', 'percent.ts']),
  );
});

test.each(FILES)('%s imports only sibling modules', (file) => {
  const source = fs.readFileSync(path.join(DIR, file), 'utf8');
  const specifiers = [
    ...source.matchAll(/(?:import|export)\s[^'";]*?from\s+'([^']+)'|require\('([^']+)'\)|import\('([^']+)'\)/g),
  ].map((m) => m[1] ?? m[2] ?? m[3]);
  for (const specifier of specifiers) expect(specifier).toMatch(/^\.\/[a-z0-9-]+$/);
});

test.each(FILES)('%s builds no RegExp inside a function', (file) => {
  const source = fs.readFileSync(path.join(DIR, file), 'utf8');
  // `new RegExp` only in top-level const declarations
  for (const line of source.split('\n').filter((l) => l.includes('new RegExp')))
    expect(line).toMatch(/^const [A-Z_]+ = new RegExp\(/);
});
