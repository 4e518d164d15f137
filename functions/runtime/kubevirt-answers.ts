import { KubeApiError, KubeTransportError } from './kube/errors';

// How virtwake reads KubeVirt's answer to a lifecycle subresource call
// (docs/kubevirt-answers.md, each row with the KubeVirt source it follows). This
// table is the only place that turns a status code and message into an outcome;
// tests walk every row.

export type Action = 'start' | 'stop' | 'restart' | 'pause' | 'unpause';

export type Verdict =
  | { kind: 'outcome'; outcome: 'accepted' | 'completed' | 'failed'; reason: string }
  | { kind: 'transient' }
  /**
   * The answer alone does not say where the VM stands: KubeVirt gives it for
   * states that need different outcomes (a VMI running, starting or being shut
   * down). The function re-reads the VM and decides (start.ts, stop.ts).
   */
  | { kind: 'depends'; on: 'vmiExists' | 'noLiveVmi' };

interface Row {
  actions: readonly Action[] | '*';
  status: number;
  /** Substring of KubeVirt's message; undefined matches any message. */
  says?: string;
  verdict: Verdict;
}

const ALREADY: Verdict = { kind: 'outcome', outcome: 'completed', reason: 'AlreadyInState' };
const REFUSED: Verdict = { kind: 'outcome', outcome: 'failed', reason: 'Refused' };
const NOT_FOUND: Verdict = { kind: 'outcome', outcome: 'failed', reason: 'NotFound' };
const IN_PROGRESS: Verdict = { kind: 'outcome', outcome: 'accepted', reason: 'AlreadyInProgress' };
const TRANSIENT: Verdict = { kind: 'transient' };
const VMI_EXISTS: Verdict = { kind: 'depends', on: 'vmiExists' };
const NO_LIVE_VMI: Verdict = { kind: 'depends', on: 'noLiveVmi' };

/** First matching row wins, so specific messages come before catch-alls. */
export const ANSWERS: readonly Row[] = [
  // virt-api's guarded patch lost to a concurrent change: kube-apiserver's 422 for a failed JSON-patch
  // `test` reaches the client as this 500 (lifecycle.go patch error handling; apiserver patch.go).
  // Re-read and retry. KubeVirt never answers 409 "jsonpatch test operation does not apply" here.
  {
    actions: '*',
    status: 500,
    says: 'the server rejected our request due to an error in our request',
    verdict: TRANSIENT,
  },
  // Any VMI that is not final, also one being shut down (Stopping) or not yet running (Starting,
  // ErrorUnschedulable…), and checked before `paused` is read (lifecycle.go start handler).
  { actions: ['start'], status: 409, says: 'VM is already running', verdict: VMI_EXISTS },
  { actions: ['start'], status: 409, says: 'does not support manual start requests', verdict: REFUSED },
  { actions: ['start'], status: 409, says: 'does not support starting VM from failed state', verdict: REFUSED },
  {
    actions: ['stop'],
    status: 409,
    says: 'Halted only supports manual stop requests with a shorter graceperiod',
    verdict: IN_PROGRESS,
  },
  // "VM is not running: Halted" is restart's refusal (no VMI to restart).
  { actions: ['restart'], status: 409, says: 'VM is not running', verdict: REFUSED },
  // No VMI, or a final one (a Manual VM whose guest powered off), or RerunOnFailure between its
  // failed VMI and the rerun it queued (lifecycle.go stop handler, vm.go syncRunStrategy).
  { actions: ['stop'], status: 409, says: 'VM is not running', verdict: NO_LIVE_VMI },
  { actions: ['restart'], status: 409, says: 'does not support manual restart requests', verdict: REFUSED },
  { actions: ['pause'], status: 409, says: 'VMI is already paused', verdict: ALREADY },
  // The VMI exists but is not Running yet (Pending, Scheduling, Scheduled): it will be.
  { actions: ['pause'], status: 409, says: 'VM is not running', verdict: TRANSIENT },
  { actions: ['unpause'], status: 409, says: 'VMI is not paused', verdict: ALREADY },
  { actions: ['unpause'], status: 409, says: 'VM snapshot is in progress', verdict: TRANSIENT },
  { actions: ['unpause'], status: 409, says: 'VMI is not running', verdict: REFUSED },
  // Restart while a volume update is under way (VolumesChange=True) says this and ends on its own;
  // start says it after a failed volume migration, which needs a person (lifecycle.go).
  { actions: ['restart'], status: 409, says: 'VM recovery required', verdict: TRANSIENT },
  { actions: '*', status: 409, says: 'VM recovery required', verdict: REFUSED },
  // The VMI is gone although the VM exists: pause and unpause have nothing to act on.
  { actions: ['pause', 'unpause'], status: 404, says: 'virtualmachineinstance', verdict: REFUSED },
  { actions: '*', status: 404, verdict: NOT_FOUND },
  // "stop/start already underway" and admission webhooks refusing while a snapshot
  // or restore holds the VM: both clear up on their own.
  { actions: '*', status: 500, verdict: TRANSIENT },
  { actions: '*', status: 429, verdict: TRANSIENT },
  { actions: '*', status: 401, verdict: TRANSIENT },
  { actions: '*', status: 403, verdict: REFUSED },
  { actions: '*', status: 400, verdict: REFUSED },
  { actions: '*', status: 422, verdict: REFUSED },
  { actions: '*', status: 409, verdict: REFUSED },
];

export function judge(action: Action, err: unknown): Verdict {
  if (err instanceof KubeTransportError) return TRANSIENT;
  if (!(err instanceof KubeApiError)) throw err;
  for (const row of ANSWERS) {
    if (row.status !== err.status) continue;
    if (row.actions !== '*' && !row.actions.includes(action)) continue;
    if (row.says !== undefined && !err.message.includes(row.says)) continue;
    return row.verdict;
  }
  // An answer KubeVirt is not documented to give: let Knative redeliver rather than drop it.
  return TRANSIENT;
}

/** Transient classification for plain reads and writes (not lifecycle subresources). */
export function isTransient(err: unknown): boolean {
  if (err instanceof KubeTransportError) return true;
  if (err instanceof KubeApiError)
    return (
      err.status >= 500 ||
      err.status === 429 ||
      (err.status === 409 && err.reason !== 'AlreadyExists') ||
      err.status === 401 ||
      err.status === 408
    );
  return false;
}

/**
 * KubeVirt's VM webhook refused an update because the VM's own spec no longer
 * validates (a feature gate turned off, a rule tightened since it was made).
 * The webhook checks the whole spec on every update, so annotation-only
 * patches (activity stamps, the request ledger, reaper claims) fail too
 * (vms-admitter.go). Nothing virtwake retries can change that.
 */
export function vmSpecInvalid(err: unknown): KubeApiError | undefined {
  return err instanceof KubeApiError && err.status === 422 && err.message.includes('virtualmachine-validator')
    ? err
    : undefined;
}

export function vmSpecInvalidMessage(vm: string, err: KubeApiError): string {
  return `VM ${vm} itself no longer passes KubeVirt's validation, so nothing can update it (annotations included) until its spec is fixed: ${err.message}`;
}
