import { validateData } from '../../functions/runtime/validate';
import snapshotSchema from '../../schemas/io.virtwake.vm.snapshot.json';
import restoreSchema from '../../schemas/io.virtwake.vm.restore.json';

// What the snapshot and restore schemas accept, and how they say no (400,
// every failing path).

const S = { selector: { matchLabels: { tier: 'db' } } };

describe('io.virtwake.vm.snapshot', () => {
  test.each<[string, unknown]>([
    ['a named VM', { name: 'erp' }],
    [
      'every field',
      {
        name: 'erp',
        namespace: 'ops',
        snapshotName: 'before-upgrade',
        failureDeadline: '1h30m',
        keep: 7,
        wait: { timeoutSeconds: 270 },
        dryRun: false,
      },
    ],
    ['a selector, with keep', { ...S, keep: 3, failureDeadline: '0s' }],
  ])('accepts %s', (_what, data) => {
    expect(validateData(snapshotSchema, data)).toEqual([]);
  });

  test.each<[string, unknown, string[]]>([
    [
      'snapshotName with a selector (one name cannot name many snapshots)',
      { ...S, snapshotName: 'x' },
      ['/: must have property name when property snapshotName is present'],
    ],
    ['keep 0', { name: 'erp', keep: 0 }, ['/keep: must be >= 1']],
    ['keep over 100', { name: 'erp', keep: 101 }, ['/keep: must be <= 100']],
    ['keep not an integer', { name: 'erp', keep: 1.5 }, ['/keep: must be integer']],
    [
      'a failureDeadline without unit',
      { name: 'erp', failureDeadline: '300' },
      [expect.stringMatching(/^\/failureDeadline: "300" does not match/)],
    ],
    [
      'an ISO-8601 failureDeadline',
      { name: 'erp', failureDeadline: 'PT5M' },
      [expect.stringMatching(/^\/failureDeadline: "PT5M" does not match/)],
    ],
    [
      'an invalid snapshotName',
      { name: 'erp', snapshotName: 'Before_Upgrade' },
      [expect.stringMatching(/^\/snapshotName: "Before_Upgrade" does not match/)],
    ],
    ['an unknown field', { name: 'erp', retain: 3 }, ['/retain: unknown field, not allowed']],
  ])('refuses %s', (_what, data, errors) => {
    expect(validateData(snapshotSchema, data)).toEqual(errors);
  });
});

describe('io.virtwake.vm.restore', () => {
  test.each<[string, unknown]>([
    ['the minimum', { name: 'erp', snapshotName: 'before-upgrade' }],
    [
      'every field',
      {
        name: 'erp',
        namespace: 'ops',
        snapshotName: 's',
        stopFirst: true,
        startAfter: true,
        wait: { timeoutSeconds: 120 },
        dryRun: false,
      },
    ],
  ])('accepts %s', (_what, data) => {
    expect(validateData(restoreSchema, data)).toEqual([]);
  });

  test.each<[string, unknown, string[]]>([
    ['no snapshotName', { name: 'erp' }, ['/snapshotName: required']],
    ['a selector (one snapshot restores one VM)', { ...S, snapshotName: 's' }, ['/name: required']],
    [
      'name and selector',
      { name: 'erp', ...S, snapshotName: 's' },
      ['/: exactly one of "name" or "selector" is required'],
    ],
    [
      'startAfter without wait (nothing would be there to start the VM)',
      { name: 'erp', snapshotName: 's', startAfter: true },
      ['/: must have property wait when property startAfter is present'],
    ],
    ['stopFirst not a boolean', { name: 'erp', snapshotName: 's', stopFirst: 'yes' }, ['/stopFirst: must be boolean']],
    [
      'a restore name (derived from the request)',
      { name: 'erp', snapshotName: 's', restoreName: 'r' },
      ['/restoreName: unknown field, not allowed'],
    ],
  ])('refuses %s', (_what, data, errors) => {
    expect(validateData(restoreSchema, data)).toEqual(errors);
  });
});
