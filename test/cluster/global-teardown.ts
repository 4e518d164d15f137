import { readState, stopRig } from './rig/cluster';

export default async function globalTeardown(): Promise<void> {
  const file = process.env.VIRTWAKE_RIG_STATE;
  if (file) await stopRig(readState(file));
}
