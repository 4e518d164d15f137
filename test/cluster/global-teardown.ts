import { readState, removePodNetwork, stopRig } from './rig/cluster';
import { stopKnative } from './rig/knative';

export default async function globalTeardown(): Promise<void> {
  const file = process.env.VIRTWAKE_RIG_STATE;
  if (!file) return;
  const state = readState(file);
  await stopRig(state);
  removePodNetwork(state.netns);
  stopKnative(state.dir, state.knative.network);
}
