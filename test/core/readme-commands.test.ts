/**
 * The README's command table lists exactly the command table (functions/commands.ts), each
 * type once: a type added, renamed or dropped in one and not the other fails here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { COMMANDS } from '../../functions/commands';

const README = fs.readFileSync(path.resolve(__dirname, '../../README.md'), 'utf8');

/** The first-column types of the first table under `## Commands`. */
function readmeTypes(): string[] {
  const section = README.split(/^## /m).find((s) => s.startsWith('Commands\n'));
  if (!section) throw new Error('README.md has no "## Commands" section');
  return section
    .split('\n')
    .filter((line) => /^\| `[^`]+` \|/.test(line))
    .map((line) => (/^\| `([^`]+)`/.exec(line) as RegExpExecArray)[1]);
}

test('the README command table lists every command type of functions/commands.ts, once', () => {
  expect(readmeTypes().sort()).toEqual(COMMANDS.map((c) => c.type).sort());
});
