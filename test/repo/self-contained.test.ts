// A public clone has nothing beside it: no tracked file may point outside the
// repository, and the data the tests read must be in it.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' })
  .split('\0')
  .filter((f) => f !== '' && existsSync(path.join(ROOT, f)));

test('no tracked file refers to a folder beside the repository', () => {
  const outside = /\.\.\/shared\b|\/work\/shared\b/;
  const offenders = tracked.filter((f) => {
    if (f === 'package-lock.json' || f.startsWith('test/fixtures/')) return false;
    return outside.test(readFileSync(path.join(ROOT, f), 'latin1'));
  });
  expect(offenders).toEqual([]);
});

test('every fixture folder is listed in test/fixtures/SOURCES.md', () => {
  const sources = readFileSync(path.join(ROOT, 'test/fixtures/SOURCES.md'), 'utf8');
  const folders = new Set(tracked.filter((f) => f.startsWith('test/fixtures/')).map((f) => f.split('/')[2]));
  folders.delete('SOURCES.md');
  for (const folder of folders) expect([folder, sources.includes(`\`${folder}`)]).toEqual([folder, true]);
});

test('the contract the code cites is in the repository', () => {
  expect(existsSync(path.join(ROOT, 'docs/contract.md'))).toBe(true);
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  expect(readme).toMatch(/\(docs\/contract\.md\)/);
});
