import { KubeApiError, KubeTransportError } from './kube/errors';

// How virtwake reads KubeVirt's answer to a lifecycle subresource call
// (reference kubevirt-api.md §2.3 and §2.5). This table is the only place that
// turns a status code and message into an outcome; tests walk every row.

export type Action = 'start' | 'stop' | 'restart' | 'pause' | 'unpause';

export type Verdict =
  { kind: 'outcome'; outcome: 'accepted' | 'completed' | 'failed'; reason: string } | { kind: 'transient' };

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

/** First matching row wins, so specific messages come before catch-alls. */
export const ANSWERS: readonly Row[] = [
  // Someone changed the VM between virt-api's read and its guarded patch: re-read and retry.
  { actions: '*', status: 409, says: 'jsonpatch test operation does not apply', verdict: TRANSIENT },
  { actions: '*', status: 409, says: 'the object has been modified', verdict: TRANSIENT },
  { actions: ['start'], status: 409, says: 'VM is already running', verdict: ALREADY },
  { actions: ['start'], status: 409, says: 'does not support manual start requests', verdict: REFUSED },
  { actions: ['start'], status: 409, says: 'does not support starting VM from failed state', verdict: REFUSED },
  {
    actions: ['stop'],
    status: 409,
    says: 'Halted only supports manual stop requests with a shorter graceperiod',
    verdict: IN_PROGRESS,
  },
  // "VM is not running: Halted" is restart's refusal; stop's plain "VM is not running" means already stopped.
  { actions: ['restart'], status: 409, says: 'VM is not running', verdict: REFUSED },
  { actions: ['stop'], status: 409, says: 'VM is not running', verdict: ALREADY },
  { actions: ['restart'], status: 409, says: 'does not support manual restart requests', verdict: REFUSED },
  { actions: ['pause'], status: 409, says: 'VMI is already paused', verdict: ALREADY },
  { actions: ['pause'], status: 409, says: 'VM is not running', verdict: REFUSED },
  { actions: ['unpause'], status: 409, says: 'VMI is not paused', verdict: ALREADY },
  { actions: ['unpause'], status: 409, says: 'VM snapshot is in progress', verdict: TRANSIENT },
  { actions: ['unpause'], status: 409, says: 'VMI is not running', verdict: REFUSED },
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
  if (err.status >= 500) return TRANSIENT;
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
