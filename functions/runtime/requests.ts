import { accepted, completed, Outcome, VmContext } from './function';
import type { KubeVirt } from './kubevirt';
import type { VirtualMachine } from './kubevirt-types';
import { KubeApiError } from './kube/errors';
import { Transient } from './retry';
import { LAST_ACTIVITY, rfc3339 } from './activity';
import { awaitTarget } from './lifecycle';
import { judge } from './targets';
import { isPaused, isRunning, isStopped, isUnpaused } from './vm-state';
import {
  Ask,
  CLAIM_TTL_MS,
  decide,
  Decision,
  Entry,
  find,
  Ledger,
  LEDGER,
  Pending,
  readLedger,
  serialiseLedger,
  Target,
  upsert,
} from './ledger';

// The request ledger (ledger.ts) at work around one VM command (contract §6):
//  1. before the function runs: decide from what the VM records whether this
//     delivery may act (`guard`);
//  2. right before its KubeVirt call the function claims the request
//     (ctx.claim): one merge patch with the VM's resourceVersion, which also
//     carries the activity stamp (contract §5), so it costs no extra write;
//  3. after it: record what it came to, and for an outcome that comes later
//     what it waits for and until when (contract §2).
// A conflict on the claim means another delivery wrote first: the dispatcher
// re-reads the VM and decides again. The record after the call re-reads by
// itself, since the call has just changed the VM.

/** How long an `.accepted` request waits for its target before it is reported failed/Timeout. */
export const DEFAULT_RESULT_TIMEOUT_MS = 10 * 60_000;

export interface Guard {
  decision: Decision;
  /** Answer without running the function (recorded, superseded), or undefined to run it. */
  answer?: Outcome;
  /** Record the claim; the function calls it right before its KubeVirt call. */
  claim(p: Omit<Pending, 'deadline'>): Promise<void>;
  /** Whether claim() was called and written. */
  claimed(): boolean;
  /** After the function: its outcome goes into the ledger. Returns the VM as last written. */
  settle(o: Outcome): Promise<VirtualMachine | undefined>;
}

export interface GuardOptions {
  action: string;
  resultTimeoutMs?: number;
}

export function askOf(ctx: VmContext, action: string): Ask {
  const t = ctx.event.time ? Date.parse(ctx.event.time) : NaN;
  return { key: ctx.requestKey, action, time: Number.isNaN(t) ? undefined : t, delivery: ctx.deliveryId };
}

export function guard(ctx: VmContext, opts: GuardOptions): Guard {
  const ask = askOf(ctx, opts.action);
  const now = () => ctx.now().getTime();
  const decision = decide(readLedger(ctx.vm), ask, now());
  // An internal retry of this delivery finds its own claim on the VM: no need to write it again. Nor
  // when another delivery's claim is fresh (only actions that may repeat get here; restart is 'busy'):
  // writing ours too would only make the deliveries conflict with each other until the budget runs out.
  let entry: Entry | undefined =
    decision.kind === 'retake' && (decision.entry.delivery === ask.delivery || now() - decision.entry.at < CLAIM_TTL_MS)
      ? decision.entry
      : undefined;
  let vm: VirtualMachine | undefined = ctx.vm;

  if (decision.kind === 'busy') {
    // Read again within the retry budget (the other delivery usually records its outcome in
    // milliseconds); past it, the event goes back to Knative with 503.
    throw new Transient(
      new Error(
        `another delivery of this request is acting on VM ${ctx.namespace}/${ctx.name} (claimed ${now() - decision.entry.at} ms ago, trusted for ${CLAIM_TTL_MS} ms); redeliver to get its outcome`,
      ),
    );
  }

  return {
    decision,
    answer: answerFor(ctx, decision),
    claimed: () => entry !== undefined,
    async claim(p) {
      if (entry) return;
      const at = now();
      const deadline = at + Math.max(opts.resultTimeoutMs ?? DEFAULT_RESULT_TIMEOUT_MS, waitLeft(ctx, at));
      const claim: Entry = {
        key: ask.key,
        action: ask.action,
        at,
        ...(ask.time !== undefined && { time: ask.time }),
        state: 'claimed',
        delivery: ask.delivery,
        request: { id: ctx.event.id, source: ctx.event.source, type: ctx.event.type },
        pending: { ...p, deadline },
        ...(p.object && { object: p.object }),
      };
      const current = readLedger(ctx.vm);
      try {
        vm = await ctx.kubevirt.mergePatch<VirtualMachine>('virtualmachines', ctx.namespace, ctx.name, {
          metadata: {
            resourceVersion: ctx.vm.metadata.resourceVersion,
            annotations: { [LEDGER]: serialiseLedger(upsert(current, claim), at), [LAST_ACTIVITY]: rfc3339(at) },
          },
        });
        entry = claim;
      } catch (e) {
        // Someone wrote the VM since we read it. Most often another delivery of this very request
        // claimed it a moment ago: for an action that may repeat, go on under that claim. Anything
        // else goes back to the dispatcher, which re-reads and decides again.
        if (!isConflict(e)) throw e;
        const fresh = await ctx.kubevirt.getVM(ctx.namespace, ctx.name);
        const again = fresh && decide(readLedger(fresh), ask, now());
        if (!fresh || again?.kind !== 'retake' || now() - again.entry.at >= CLAIM_TTL_MS) throw e;
        vm = fresh;
        entry = again.entry;
      }
    },
    async settle(o) {
      if (!entry && decision.kind === 'superseded' && decision.entry) {
        // An expired claim overtaken by a newer command: close it, so its redeliveries answer the same.
        entry = { ...decision.entry, delivery: ask.delivery };
      }
      if (!entry || o.reason === 'DryRun') return vm;
      const claim = entry;
      const outcome = o.outcome;
      const settled: Entry = {
        ...claim,
        state: outcome === 'accepted' && claim.pending ? 'applied' : 'done',
        outcome,
        ...(o.reason && { reason: o.reason }),
        pending: outcome === 'accepted' ? claim.pending : undefined,
      };
      if (!settled.reason) delete settled.reason;
      const written = await updateLedger(
        ctx.kubevirt,
        ctx.namespace,
        ctx.name,
        vm,
        (l) => {
          const mine = find(l, claim.key);
          // Settled meanwhile by a change event (contract §2): that outcome stands.
          if (mine && mine.state === 'done') return undefined;
          // Taken over by another delivery after our claim expired: theirs is the record now.
          if (mine && mine.delivery !== claim.delivery) return undefined;
          return upsert(l, settled);
        },
        now,
      );
      return written ?? vm;
    },
  };
}

const VM_TARGETS: Partial<Record<Target, (vm: VirtualMachine | undefined) => boolean>> = {
  running: isRunning,
  paused: isPaused,
  stopped: isStopped,
  unpaused: isUnpaused,
};

/**
 * A delivery of a recorded request still pending, whose target is reached by
 * now: answered with the final outcome, and the entry closed with it, so the
 * results function publishes no second one (contract §2).
 */
export async function settleRecorded(
  ctx: VmContext,
  e: Entry,
): Promise<{ outcome: Outcome; vm?: VirtualMachine } | undefined> {
  if (e.state === 'done' || !e.pending) return undefined;
  const v = await judge(e, { namespace: ctx.namespace, vm: ctx.vm, kubevirt: ctx.kubevirt });
  if (!v) return undefined;
  const outcome: Outcome = { ...v, vm: ctx.vm };
  const vm = await updateLedger(
    ctx.kubevirt,
    ctx.namespace,
    ctx.name,
    ctx.vm,
    (l) => {
      const current = find(l, e.key);
      if (!current || current.state === 'done') return undefined;
      const done: Entry = { ...current, state: 'done', outcome: v.outcome, pending: undefined };
      if (v.reason) done.reason = v.reason;
      else delete done.reason;
      return upsert(l, done);
    },
    () => ctx.now().getTime(),
  );
  return { outcome, vm };
}

/**
 * A redelivery that asks to `wait` for a request an earlier delivery left
 * pending: watch for the same target (a direct caller that retried after a
 * timeout still gets its answer). Other targets answer what is recorded.
 */
export async function awaitRecorded(ctx: VmContext, answer: Outcome, e: Entry): Promise<Outcome> {
  const test = e.pending && VM_TARGETS[e.pending.target];
  if (!test || e.state === 'done' || ctx.waitUntil === undefined) return answer;
  const out = await awaitTarget(ctx, test, answer.reason);
  return out.outcome === 'completed' ? out : { ...out, message: answer.message };
}

function waitLeft(ctx: VmContext, now: number): number {
  return ctx.waitUntil === undefined ? 0 : Math.max(0, ctx.waitUntil - now);
}

function answerFor(ctx: VmContext, d: Decision): Outcome | undefined {
  if (d.kind === 'superseded') {
    const by = d.by.request;
    return completed('Superseded', {
      message: `${by.type} ${by.id} from ${by.source} was applied to the VM since this request was made; nothing was done`,
      vm: ctx.vm,
    });
  }
  if (d.kind !== 'recorded') return undefined;
  const e = d.entry;
  const note = 'an earlier delivery of this request acted on the VM; nothing more was done';
  if (e.outcome === 'failed') return { outcome: 'failed', reason: e.reason, message: note, vm: ctx.vm };
  if (e.outcome === 'completed' || e.state === 'done') return completed(e.reason, { message: note, vm: ctx.vm });
  return accepted(e.reason, { message: note, vm: ctx.vm });
}

/**
 * Read-modify-write of the ledger with the VM's resourceVersion, re-reading on
 * a conflict. `change` returns the new ledger, or undefined when there is
 * nothing to write. Returns the VM as written (or as read, when nothing was),
 * undefined when the VM is gone.
 */
export async function updateLedger(
  kubevirt: KubeVirt,
  namespace: string,
  name: string,
  vm: VirtualMachine | undefined,
  change: (l: Ledger, vm: VirtualMachine) => Ledger | undefined | Promise<Ledger | undefined>,
  now: () => number,
  attempts = 5,
): Promise<VirtualMachine | undefined> {
  let current = vm ?? (await kubevirt.getVM(namespace, name));
  for (let i = 0; current; i++) {
    const next = await change(readLedger(current), current);
    if (!next) return current;
    try {
      return await kubevirt.mergePatch<VirtualMachine>('virtualmachines', namespace, name, {
        metadata: {
          resourceVersion: current.metadata.resourceVersion,
          annotations: { [LEDGER]: serialiseLedger(next, now()) },
        },
      });
    } catch (e) {
      if (!isConflict(e) || i + 1 >= attempts) throw e;
      current = await kubevirt.getVM(namespace, name);
    }
  }
  return undefined;
}

export function isConflict(e: unknown): boolean {
  const cause = e instanceof Transient ? e.cause : e;
  return cause instanceof KubeApiError && cause.status === 409 && cause.reason !== 'AlreadyExists';
}
