import { isLabelValue } from '../../functions/runtime/labels';
import { isName, isNamespace } from '../../functions/runtime/names';
import { derivedName, ownedBySelector, vmLabelValue } from '../../functions/runtime/snapshot-objects';
import { requestKey } from '../../functions/runtime/reply';

// Derived names and labels (contract §6): deterministic per request, distinct per
// VM and kind, always valid names and label values whatever the VM is called.

const key = requestKey({ source: '/ops/backup', id: 'nightly-1' });
const LONG = `${'a'.repeat(60)}.${'b-'.repeat(70)}c.${'d'.repeat(40)}`;

test('the same request and VM always give the same name', () => {
  expect(derivedName('snapshot', key, 'erp')).toBe(
    derivedName('snapshot', requestKey({ source: '/ops/backup', id: 'nightly-1' }), 'erp'),
  );
  expect(derivedName('snapshot', key, 'erp')).toMatch(/^vw-erp-[0-9a-f]{10}$/);
});

test('another request, another VM or another kind gives another name', () => {
  const names = new Set([
    derivedName('snapshot', key, 'erp'),
    derivedName('snapshot', requestKey({ source: '/ops/backup', id: 'nightly-2' }), 'erp'),
    derivedName('snapshot', requestKey({ source: '/ops/other', id: 'nightly-1' }), 'erp'),
    derivedName('snapshot', key, 'crm'),
    derivedName('restore', key, 'erp'),
  ]);
  expect(names.size).toBe(5);
});

test.each([
  ['erp'],
  ['a'],
  ['web.prod.example'],
  [LONG],
  ['x'.repeat(253)],
  ['a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q-r-s-t-u-v-w-x-y-z-0-1-2-3-4-5-6-7-8-9'],
])('derived names are DNS-1123 labels of at most 63 characters (VM %s)', (vm) => {
  expect(isName(vm)).toBe(true);
  for (const kind of ['snapshot', 'restore'] as const) {
    const n = derivedName(kind, key, vm);
    expect(n.length).toBeLessThanOrEqual(63);
    expect(isNamespace(n)).toBe(true); // the DNS-1123 label check
  }
});

test('a VM name that fits a label value is the label value', () => {
  expect(vmLabelValue('erp')).toBe('erp');
  expect(vmLabelValue('web.prod.example')).toBe('web.prod.example');
});

test('a longer VM name becomes a shortened, hashed label value', () => {
  const v = vmLabelValue(LONG);
  expect(isLabelValue(v)).toBe(true);
  expect(v).not.toBe(vmLabelValue(`${LONG}x`));
  expect(v.startsWith('a'.repeat(52))).toBe(true);
});

test('the selector finds what virtwake made for one VM', () => {
  expect(ownedBySelector('erp')).toBe('virtwake.io/vm=erp,app.kubernetes.io/managed-by=virtwake');
});
