import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startRig } from './rig/cluster';

// Starts the rig once for every test file; its state file is found through VIRTWAKE_RIG_STATE.
export default async function globalSetup(): Promise<void> {
  const dir = process.env.VIRTWAKE_RIG_DIR || mkdtempSync(path.join(os.tmpdir(), 'virtwake-rig-'));
  const log = (m: string) => process.stderr.write(`[rig] ${m}\n`);
  log(`directory ${dir}`);
  const state = await startRig(dir, log);
  const file = path.join(dir, 'state.json');
  writeFileSync(file, JSON.stringify(state, null, 2));
  process.env.VIRTWAKE_RIG_STATE = file;
  log(
    `up: ${Object.entries(state.timings)
      .map(([k, v]) => `${k} ${v} ms`)
      .join(', ')}`,
  );
}
