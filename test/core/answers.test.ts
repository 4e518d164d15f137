import { ANSWERS, judge, Action } from '../../functions/runtime/kubevirt-answers';
import { KubeApiError, KubeTransportError } from '../../functions/runtime/kube/errors';

// KubeVirt's documented refusals (reference kubevirt-api.md §2.3, §2.5), with
// the exact messages virt-api writes, and what virtwake must make of them.
const prefix = (name: string) => `Operation cannot be fulfilled on virtualmachine.kubevirt.io "${name}": `;
const cases: [Action, number, string, string][] = [
  ['start', 409, prefix('vm') + 'VM is already running', 'depends/vmiExists'],
  ['start', 409, prefix('vm') + 'Always does not support manual start requests', 'failed/Refused'],
  ['start', 409, prefix('vm') + 'Once does not support manual start requests', 'failed/Refused'],
  ['start', 409, prefix('vm') + 'RerunOnFailure does not support starting VM from failed state', 'failed/Refused'],
  ['start', 409, prefix('vm') + 'VM recovery required: Volume migration failed', 'failed/Refused'],
  ['start', 500, 'Internal error occurred: unable to complete request: stop/start already underway', 'transient'],
  [
    'start',
    500,
    'Internal error occurred: admission webhook denied: Cannot update vm running state until snapshot "s" completes',
    'transient',
  ],
  ['start', 404, 'virtualmachine.kubevirt.io "vm" not found', 'failed/NotFound'],
  ['stop', 409, prefix('vm') + 'VM is not running', 'depends/noLiveVmi'],
  [
    'stop',
    409,
    prefix('vm') + 'Halted only supports manual stop requests with a shorter graceperiod',
    'accepted/AlreadyInProgress',
  ],
  ['restart', 409, prefix('vm') + 'VM is not running: Halted', 'failed/Refused'],
  ['restart', 409, prefix('vm') + 'RunStategy Halted does not support manual restart requests', 'failed/Refused'],
  ['restart', 409, prefix('vm') + 'RunStategy Once does not support manual restart requests', 'failed/Refused'],
  ['restart', 400, 'For force restart, only gracePeriod=0 is supported for now', 'failed/Refused'],
  [
    'restart',
    500,
    'Internal error occurred: the server rejected our request due to an error in our request',
    'transient',
  ],
  [
    'start',
    500,
    'Internal error occurred: the server rejected our request due to an error in our request',
    'transient',
  ],
  ['restart', 409, prefix('vm') + 'VM recovery required: the VM volumes are being updated', 'transient'],
  [
    'pause',
    409,
    'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "vm": VMI is already paused',
    'completed/AlreadyInState',
  ],
  [
    'pause',
    409,
    'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "vm": VM is not running',
    'transient',
  ],
  ['pause', 404, 'virtualmachineinstance.kubevirt.io "vm" not found', 'failed/Refused'],
  [
    'pause',
    403,
    'virtualmachineinstance.kubevirt.io "vm" is forbidden: Pausing VMIs with a non-GuestAgentPing LivenessProbe is not supported',
    'failed/Refused',
  ],
  [
    'unpause',
    409,
    'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "vm": VMI is not paused',
    'completed/AlreadyInState',
  ],
  [
    'unpause',
    409,
    'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "vm": VMI is not running',
    'failed/Refused',
  ],
  [
    'unpause',
    409,
    'Operation cannot be fulfilled on virtualmachineinstance.kubevirt.io "vm": VM snapshot is in progress',
    'transient',
  ],
  ['start', 429, 'Too many requests', 'transient'],
  ['start', 503, 'service unavailable', 'transient'],
  ['start', 401, 'Unauthorized', 'transient'],
];

function show(action: Action, status: number, message: string): string {
  const v = judge(action, new KubeApiError(status, '', message));
  if (v.kind === 'depends') return `depends/${v.on}`;
  return v.kind === 'transient' ? 'transient' : `${v.outcome}/${v.reason}`;
}

test.each(cases)('%s answered %i "%s" is %s', (action, status, message, expected) => {
  expect(show(action, status, message)).toBe(expected);
});

test('a dropped connection or timeout is transient', () => {
  expect(judge('start', new KubeTransportError('socket hang up', 'ECONNRESET'))).toEqual({ kind: 'transient' });
});

test('an answer KubeVirt is not documented to give is handed back to Knative, not dropped', () => {
  expect(show('start', 418, 'teapot')).toBe('transient');
});

test('every row of the table is reached by some case above', () => {
  const reached = new Set<number>();
  for (const [action, status, message] of cases) {
    const i = ANSWERS.findIndex(
      (r) =>
        r.status === status &&
        (r.actions === '*' || r.actions.includes(action)) &&
        (r.says === undefined || message.includes(r.says)),
    );
    reached.add(i);
  }
  const unreached = ANSWERS.map((r, i) => (reached.has(i) ? undefined : `${r.status} ${r.says ?? '*'}`)).filter(
    Boolean,
  );
  // Catch-alls for answers KubeVirt is not known to give: a generic 422 and 409.
  expect(unreached).toEqual(['422 *', '409 *']);
});
