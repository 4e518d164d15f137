/** The shared shutdown: refuse new work, wait for work in flight up to the limit, then the leftover hook. */
import http from 'node:http';
import { drain } from '../../functions/runtime/drain';

function server(): http.Server {
  return http.createServer((_, res) => res.end()).listen(0, '127.0.0.1');
}

test('waits for tracked work, then runs the leftover hook and closes', async () => {
  const s = server();
  const d = drain(s, 20_000);
  let finish!: () => void;
  d.track(new Promise<void>((r) => (finish = r)));
  const order: string[] = [];
  const done = d.shutdown({ onClosing: () => order.push('closing'), leftover: () => void order.push('leftover') });
  expect(d.closing()).toBe(true);
  expect(d.inFlight()).toBe(1);
  await new Promise((r) => setImmediate(r));
  expect(order).toEqual(['closing']);
  finish();
  await done;
  expect(order).toEqual(['closing', 'leftover']);
  expect(d.inFlight()).toBe(0);
  expect(s.listening).toBe(false);
});

test('past the limit the leftover hook runs with work still in flight', async () => {
  const s = server();
  const d = drain(s, 10);
  d.track(new Promise<void>(() => {}));
  let inFlightAtLeftover = -1;
  await d.shutdown({ leftover: () => void (inFlightAtLeftover = d.inFlight()) });
  expect(inFlightAtLeftover).toBe(1);
});

test('work that fails still counts down, and a second shutdown resolves at once', async () => {
  const s = server();
  const d = drain(s, 20_000);
  d.track(Promise.reject(new Error('handled by its owner')).catch(() => {}));
  d.track(Promise.reject(new Error('a rejection track itself observes')));
  await new Promise((r) => setImmediate(r));
  expect(d.inFlight()).toBe(0);
  await d.shutdown();
  await expect(d.shutdown()).resolves.toBeUndefined();
});
