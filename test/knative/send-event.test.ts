// scripts/send-event.sh through `kn event send`, with a stand-in `kn` first on
// PATH that records its arguments. The data kn would send is rebuilt from them
// the way kn-plugin-event reads them: `--field path=value` is a boolean if it
// parses as one, else a number if it parses as one, else the text as given
// (quotes included); `--raw-field path=value` is the text as given; dots in the
// path nest objects.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './manifests';

const SCRIPT = path.join(ROOT, 'scripts/send-event.sh');
const dir = mkdtempSync(path.join(os.tmpdir(), 'virtwake-kn-'));
const record = path.join(dir, 'args');
writeFileSync(path.join(dir, 'kn'), `#!/bin/sh\nprintf '%s\\0' "$@" > "$KN_RECORD"\n`);
chmodSync(path.join(dir, 'kn'), 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Data = { [k: string]: unknown };

function send(data: string): { status: number | null; stderr: string; args?: string[] } {
  rmSync(record, { force: true });
  const r = spawnSync('bash', [SCRIPT, 'io.virtwake.vm.start', data, 'broker:virtwake:virtwake'], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, SENDER: 'kn', KN_RECORD: record, EVENT_ID: 'id-1' },
  });
  const args = existsSync(record) ? readFileSync(record, 'utf8').split('\0').slice(0, -1) : undefined;
  return { status: r.status, stderr: r.stderr, args };
}

/** The data kn-plugin-event builds from the recorded arguments. */
function dataFrom(args: string[]): Data {
  const data: Data = {};
  for (const a of args) {
    const m = /^--(field|raw-field)=([^=]+)=(.*)$/s.exec(a);
    if (!m) continue;
    const [, flag, p, text] = m;
    let value: unknown = text;
    if (flag === 'field') {
      if (text === 'true' || text === 'false') value = text === 'true';
      else if (text.trim() !== '' && Number.isFinite(Number(text))) value = Number(text);
    }
    const keys = p.split('.');
    let o = data;
    for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Data;
    o[keys[keys.length - 1]] = value;
  }
  return data;
}

describe('send-event.sh with SENDER=kn', () => {
  test.each([
    ['the README example', { name: 'legacy-erp', wait: { timeoutSeconds: 30 } }],
    ['strings that look like numbers and booleans stay strings', { name: '123', snapshotName: 'true' }],
    ['numbers and booleans keep their type', { name: 'db', keep: 3, stopFirst: true, startAfter: false }],
    ['quotes, spaces, "=", a newline and non-ASCII pass as they are', { name: 'a "b" = c\nd é 🙂' }],
    ['nested objects', { selector: { matchLabels: { app: 'erp', tier: 'db' } }, gracePeriodSeconds: 0.5 }],
  ])('%s', (_what, data) => {
    const r = send(JSON.stringify(data));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.args!.slice(0, 10)).toEqual([
      'event',
      'send',
      '--to',
      'broker:virtwake:virtwake',
      '--id',
      'id-1',
      '--source',
      '/virtwake/send-event',
      '--type',
      'io.virtwake.vm.start',
    ]);
    expect(dataFrom(r.args!)).toEqual(data);
  });

  test('a string is never sent with its JSON quotes', () => {
    const r = send('{"name":"demo"}');
    expect(r.args).toContain('--raw-field=name=demo');
    expect(r.args!.some((a) => a.includes('"demo"'))).toBe(false);
  });

  test.each([
    ['an array', '{"name":"db","tags":["a"]}', /cannot send an array \(at tags\); use SENDER=curl/],
    ['null', '{"name":null}', /cannot send null \(at name\)/],
    ['a key with a dot', '{"a.b":1}', /cannot send the key "a.b"/],
    ['data that is not an object', '[1]', /data that is not a JSON object/],
    ['data that is not JSON', '{name: db}', /data that is not JSON/],
  ])('refuses %s, exit 2, kn not called', (_what, data, message) => {
    const r = send(data);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.args).toBeUndefined();
  });
});
