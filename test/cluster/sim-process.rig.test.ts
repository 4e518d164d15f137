import net from 'node:net';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { rig } from './helpers';
import { alive } from './rig/cluster';
import { startRigSimulator } from './rig/sim-process';

// The rig simulator that cannot start must fail the rig at once, saying why, and leave nothing
// running: before, a simulator that died or hung during start-up left the rig waiting on it.

const { state } = rig();
let n = 0;

function config(overrides: Record<string, unknown>): { file: string; log: string } {
  const id = `sim-start-${process.pid}-${++n}`;
  const file = path.join(state.dir, `${id}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      server: state.server,
      ca: state.pki.ca,
      adminCert: state.pki.adminCert,
      adminKey: state.pki.adminKey,
      servingCert: state.pki.virtApiCert,
      servingKey: state.pki.virtApiKey,
      frontProxyCA: state.pki.frontProxyCA,
      allowedNames: ['front-proxy-client'],
      port: 0,
      stepMs: 20,
      ...overrides,
    }),
  );
  return { file, log: path.join(state.dir, `${id}.log`) };
}

test('a simulator that throws at start-up: the error carries its exit and the end of its log', async () => {
  const { file, log } = config({ adminCert: path.join(state.dir, 'no-such.crt') });
  const pids: number[] = [];
  await expect(startRigSimulator(file, log, (p) => pids.push(p))).rejects.toThrow(
    /rig simulator exited with 1 before it reported its port; the end of .*\n[\s\S]*ENOENT[\s\S]*no-such\.crt/,
  );
  expect(pids).toHaveLength(1);
});

test('a simulator that never reports its port (an apiserver that never answers) is stopped and reported', async () => {
  // Accepts connections and says nothing: the simulator's first list waits forever.
  const silent = net.createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const { port } = silent.address() as net.AddressInfo;
  const { file, log } = config({ server: `https://127.0.0.1:${port}` });
  const pids: number[] = [];
  try {
    await expect(startRigSimulator(file, log, (p) => pids.push(p), 5000)).rejects.toThrow(
      /rig simulator did not report its port within 5000 ms; the end of /,
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(alive(pids[0])).toBe(false);
  } finally {
    silent.close();
  }
});
