/** The paging helper: follows continue tokens, lists again once on 410 Gone, visits each object once. */
import { KubeApiError } from '../../functions/runtime/kube/errors';
import { eachPage, listAll } from '../../functions/runtime/paging';
import type { ObjectList } from '../../functions/runtime/kubevirt-types';

type Item = { metadata: { namespace: string; name: string } };
const item = (name: string): Item => ({ metadata: { namespace: 'default', name } });
const gone = () => new KubeApiError(410, 'Expired', 'The provided continue parameter is too old');

/** Pages of `names`, `size` per page; `fail` decides per call whether to answer 410 instead. */
function lister(names: string[], size: number, fail: (call: number, token?: string) => boolean = () => false) {
  const tokens: (string | undefined)[] = [];
  const fetch = async (token: string | undefined): Promise<ObjectList<Item>> => {
    tokens.push(token);
    if (fail(tokens.length, token)) throw gone();
    const from = token ? Number(token) : 0;
    const next = from + size < names.length ? String(from + size) : undefined;
    return { metadata: { continue: next }, items: names.slice(from, from + size).map(item) };
  };
  return { fetch, tokens };
}

test('follows continue tokens to the end', async () => {
  const l = lister(['a', 'b', 'c', 'd', 'e'], 2);
  const all = await listAll(l.fetch);
  expect(all.map((i) => i.metadata.name)).toEqual(['a', 'b', 'c', 'd', 'e']);
  expect(l.tokens).toEqual([undefined, '2', '4']);
});

test('an expired token lists again from the start; what was visited is not visited again', async () => {
  const l = lister(['a', 'b', 'c', 'd'], 2, (call) => call === 2);
  const visited: string[] = [];
  let restarts = 0;
  await eachPage(
    l.fetch,
    (items) => void visited.push(...items.map((i) => i.metadata.name)),
    () => restarts++,
  );
  expect(visited).toEqual(['a', 'b', 'c', 'd']);
  expect(restarts).toBe(1);
  expect(l.tokens).toEqual([undefined, '2', undefined, '2']);
});

test('a second 410 is thrown, not looped on', async () => {
  const l = lister(['a', 'b', 'c'], 1, (call, token) => token !== undefined);
  await expect(listAll(l.fetch)).rejects.toMatchObject({ status: 410 });
  expect(l.tokens).toEqual([undefined, '1', undefined, '1']);
});

test('other errors are thrown at once', async () => {
  const fetch = async (): Promise<ObjectList<Item>> => {
    throw new KubeApiError(403, 'Forbidden', 'no');
  };
  await expect(listAll(fetch)).rejects.toMatchObject({ status: 403 });
});
