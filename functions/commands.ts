// The one list of what virtwake serves. The composition root (app.ts) gives it to
// the dispatcher; the schemas (test/core/schemas), the Knative Triggers, EventTypes
// and func.yaml (test/knative) and the README table (test/core/readme-commands)
// are checked against it.

export type FunctionName =
  | 'start'
  | 'stop'
  | 'restart'
  | 'pause'
  | 'unpause'
  | 'snapshot'
  | 'restore'
  | 'activity'
  | 'reaper'
  | 'results'
  | 'deadletter';

export interface CommandSpec {
  /** CloudEvent type this function consumes. */
  type: string;
  fn: FunctionName;
  /** Knative Service (one image, VIRTWAKE_FUNCTIONS picks handlers) that serves it. */
  service: 'virtwake-vm' | 'virtwake-snapshot' | 'virtwake-reaper' | 'virtwake-deadletter';
  /** Whether its data is validated against schemas/<type>.json. */
  schema: boolean;
}

export const COMMANDS: readonly CommandSpec[] = [
  { type: 'io.virtwake.vm.start', fn: 'start', service: 'virtwake-vm', schema: true },
  { type: 'io.virtwake.vm.stop', fn: 'stop', service: 'virtwake-vm', schema: true },
  { type: 'io.virtwake.vm.restart', fn: 'restart', service: 'virtwake-vm', schema: true },
  { type: 'io.virtwake.vm.pause', fn: 'pause', service: 'virtwake-vm', schema: true },
  { type: 'io.virtwake.vm.unpause', fn: 'unpause', service: 'virtwake-vm', schema: true },
  { type: 'io.virtwake.vm.activity', fn: 'activity', service: 'virtwake-vm', schema: true },
  { type: 'io.virtwake.vm.snapshot', fn: 'snapshot', service: 'virtwake-snapshot', schema: true },
  { type: 'io.virtwake.vm.restore', fn: 'restore', service: 'virtwake-snapshot', schema: true },
  { type: 'dev.knative.sources.ping', fn: 'reaper', service: 'virtwake-reaper', schema: false },
  // contract §2: the ApiServerSource's change events (knative/apiserversource.yaml) settle pending requests.
  { type: 'dev.knative.apiserver.resource.add', fn: 'results', service: 'virtwake-reaper', schema: false },
  { type: 'dev.knative.apiserver.resource.update', fn: 'results', service: 'virtwake-reaper', schema: false },
  { type: 'dev.knative.apiserver.resource.delete', fn: 'results', service: 'virtwake-reaper', schema: false },
];

/** Reply types: `<command>.accepted|completed|failed`, and the reaper's summary. */
export const REPLY_SUFFIXES = ['accepted', 'completed', 'failed'] as const;
export const REAPER_REPLY_TYPE = 'io.virtwake.reaper.completed';
/** contract §2: a VM's printableStatus changed (published by the results function). */
export const STATE_CHANGED_TYPE = 'io.virtwake.vm.state.changed';
/** Functions that observe rather than command: their types get no `<type>.<outcome>` replies. */
export const OBSERVERS: ReadonlySet<FunctionName> = new Set(['reaper', 'results']);

/** The longest `wait` a command may ask for (contract §1); Knative timeouts sit above it. */
export const MAX_WAIT_SECONDS = 270;
