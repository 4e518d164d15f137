import { randomUUID } from 'node:crypto';
import type { CloudEvent } from './cloudevents/event';
import { failed, Outcome, VmCommand, VmContext, VmFunction } from './function';
import { awaitRecorded, guard, settleRecorded } from './requests';
import { checkNamespace, checkSource, checkVmForSource, checkVmOptIn } from './policy';
import { requiredActions, SourceRequest } from './source-policy';
import { Abandoned, Denied, HandBack, InvalidCommand, InvalidName, WatchRefused } from './errors';
import { bulkReply, BulkEntry, buildReply, requestKey, vmReply } from './reply';
import { Transient, withRetries } from './retry';
import { KubeApiError } from './kube/errors';
import { vmSpecInvalid, vmSpecInvalidMessage } from './kubevirt-answers';
import type { EventFunction, Runtime } from './runtime';
import { validateData } from './validate';
import { format, fromMatchLabels } from './labels';
import type { ObjectList, VirtualMachine } from './kubevirt-types';
import { inPool } from './async';
import { eachPage, isGone } from './paging';

// From a parsed CloudEvent to a result: find the function for its type,
// validate, apply policy, run with retries, build the reply. Validation and
// policy are a separate step so a batch is checked whole before anything runs.
// The command table and the code behind each name are given by the composition
// root (functions/app.ts); the runtime does not know which functions exist.

/** The code behind one function name: a command on VMs (data checked against `schema`) or any event. */
export type Handler = { kind: 'vm'; fn: VmFunction; schema: object } | { kind: 'event'; fn: EventFunction };

/** One row of the command table: the CloudEvent type a function consumes. */
export interface CommandRow<F extends string> {
  type: string;
  fn: F;
}

/** The dead-letter sink: takes what Knative could not deliver, whatever its type. */
export const DEADLETTER = 'deadletter';

export interface Prepared {
  event: CloudEvent;
  fn: string;
  handler: Handler;
  command?: VmCommand;
  namespace?: string;
  /** What the per-source policy checks (source, actions, namespace); set for VM commands. */
  access?: SourceRequest;
}

export interface Result {
  reply?: CloudEvent;
  /** For the log line: the VM (or namespace) and outcome. */
  target?: string;
  outcome?: string;
}

/**
 * What one HTTP request may still do, shared by every event in it: `signal` aborts once the
 * client has gone (no new VM is acted on, waits end), `vmsLeft` counts down the VMs the whole
 * request may act on (VIRTWAKE_MAX_VMS_PER_REQUEST), so a batch of selector commands stays bounded.
 */
export interface RequestScope {
  signal?: AbortSignal;
  vmsLeft: number;
}

export interface Dispatcher {
  prepare(event: CloudEvent): Prepared;
  execute(p: Prepared, scope?: RequestScope): Promise<Result>;
}

const BULK_PAGE = 100;

export function dispatcher<F extends string>(
  rt: Runtime,
  commands: readonly CommandRow<F>[],
  handlers: Record<F, Handler> & Record<typeof DEADLETTER, Handler>,
): Dispatcher {
  const { config } = rt;
  const byType = new Map<string, { fn: string; handler: Handler }>();
  for (const c of commands) {
    if (!config.functions || config.functions.has(c.fn)) byType.set(c.type, { fn: c.fn, handler: handlers[c.fn] });
  }
  // The dead-letter sink takes whatever Knative could not deliver, of any type.
  // A dead-lettered command keeps its type, so its error extensions decide, not
  // the type: it must be logged, never run again.
  const deadletter = !config.functions || config.functions.has(DEADLETTER) ? handlers[DEADLETTER] : undefined;
  const catchAll = deadletter && config.functions?.has(DEADLETTER) ? deadletter : undefined;
  const served = [...byType.keys()].join(', ') || '(none)';

  function prepare(event: CloudEvent): Prepared {
    if (deadletter && event.extensions.knativeerrorcode !== undefined)
      return { event, fn: DEADLETTER, handler: deadletter };
    const found = byType.get(event.type);
    if (!found) {
      if (catchAll) return { event, fn: DEADLETTER, handler: catchAll };
      throw new InvalidCommand(
        'unknown-type',
        `event type "${event.type}" is not handled by this service; it serves: ${served}`,
      );
    }
    const { fn, handler } = found;
    if (handler.kind === 'event') return { event, fn, handler };
    const data = event.data;
    if (data === undefined || data === null) {
      throw new InvalidCommand(
        'invalid-data',
        `${event.type} needs JSON data such as {"name": "my-vm"}; the event has none`,
      );
    }
    if (typeof data !== 'object' || Buffer.isBuffer(data)) {
      throw new InvalidCommand(
        'invalid-data',
        `${event.type} data must be a JSON object (datacontenttype application/json), got ${Buffer.isBuffer(data) ? 'binary data' : typeof data} with datacontenttype ${event.datacontenttype ?? '(none)'}`,
      );
    }
    const errors = validateData(handler.schema, data);
    if (errors.length)
      throw new InvalidCommand('invalid-data', `data does not match schemas/${event.type}.json`, errors);
    const command = data as VmCommand;
    const namespace = command.namespace ?? config.namespace;
    checkNamespace(config, namespace);
    const access: SourceRequest = {
      source: event.source,
      actions: requiredActions(fn, data as Record<string, unknown>),
      namespace,
    };
    checkSource(config, access);
    return { event, fn, handler, command, namespace, access };
  }

  async function runOne(p: Prepared, scope: RequestScope, name: string, listed?: VirtualMachine): Promise<Outcome> {
    if (p.handler.kind !== 'vm' || !p.command || !p.namespace) throw new Error('not a VM command');
    stopIfGone(scope);
    const { fn } = p.handler;
    const namespace = p.namespace;
    const command = p.command;
    const waitSeconds = command.wait?.timeoutSeconds;
    const waitUntil = waitSeconds && !command.dryRun ? Date.now() + waitSeconds * 1000 : undefined;
    const deliveryId = randomUUID();
    const budgetUntil = Date.now() + rt.config.retry.budgetMs;
    // Shutdown and a client that hung up both end a wait; the abort's reason says which.
    const signal = scope.signal ? AbortSignal.any([rt.signal, scope.signal]) : rt.signal;
    return withRetries(
      rt.config.retry,
      `${p.event.type} ${namespace}/${name}`,
      async (attempt) => {
        if (attempt > 1) stopIfGone(scope);
        let vm: VirtualMachine | undefined;
        try {
          vm = attempt === 1 && listed ? listed : await rt.kubevirt.getVM(namespace, name);
          if (!vm)
            return failed('NotFound', `virtualmachines.kubevirt.io "${name}" not found in namespace "${namespace}"`);
          checkVmOptIn(config, vm);
          if (p.access) checkVmForSource(config, p.access, vm);
          const ctx: VmContext = {
            command,
            namespace,
            name,
            vm,
            event: p.event,
            requestKey: requestKey(p.event),
            deliveryId,
            kubevirt: rt.kubevirt,
            now: rt.now,
            waitUntil,
            budgetUntil,
            signal,
            metrics: rt.metrics,
            events: rt.events,
          };
          if (command.dryRun) return await fn.run(ctx).catch(refusedWait(ctx));
          const { outcome, vm: last } = await guarded(ctx, p.fn, fn);
          if (rt.recordActivity) await rt.recordActivity(last ?? outcome.vm ?? vm);
          return outcome;
        } catch (e) {
          if (!(e instanceof KubeApiError)) throw e;
          return apiAnswer(e, vm);
        }
      },
      waitUntil,
    );
  }

  async function runSelector(p: Prepared, scope: RequestScope): Promise<BulkEntry[]> {
    const namespace = p.namespace as string;
    const reqs = [...fromMatchLabels(p.command?.selector?.matchLabels ?? {}), ...config.vmSelector];
    const labelSelector = format(reqs);
    const results: BulkEntry[] = [];
    let handBack: HandBack | undefined;
    let overBudget = false;
    await eachPage(
      (continueToken) =>
        // The request's VM budget is spent: the VMs not yet listed would only be refused, so they are not listed.
        overBudget
          ? Promise.resolve<ObjectList<VirtualMachine>>({ items: [] })
          : withRetries(config.retry, `list VMs in ${namespace}`, () =>
              rt.kubevirt
                .list<VirtualMachine>('virtualmachines', namespace, { labelSelector, limit: BULK_PAGE, continueToken })
                .catch((e: unknown) => {
                  // Not a per-VM outcome: whatever the API answered, hand the command back to Knative
                  // (an expired continue token excepted: eachPage lists again).
                  // (The hand-back names the status: retry.ts.)
                  throw e instanceof KubeApiError && !isGone(e) ? new Transient(e) : e;
                }),
            ),
      (vms) =>
        inPool(vms, config.bulkConcurrency, async (vm) => {
          const name = vm.metadata.name;
          if (scope.vmsLeft <= 0) {
            overBudget = true;
            results.push({
              name,
              outcome: 'failed',
              reason: 'LimitExceeded',
              message: `not acted on: this request already acted on ${config.maxVmsPerRequest} VMs (VIRTWAKE_MAX_VMS_PER_REQUEST); send a narrower selector or another request`,
            });
            return;
          }
          scope.vmsLeft--;
          try {
            const o = await runOne(p, scope, name, vm);
            results.push({ name, outcome: o.outcome, reason: o.reason, message: o.message });
          } catch (e) {
            if (e instanceof HandBack) handBack = e;
            else if (e instanceof Denied)
              results.push({ name, outcome: 'failed', reason: 'Forbidden', message: e.message });
            else if (e instanceof InvalidName)
              results.push({ name, outcome: 'failed', reason: 'Invalid', message: e.message });
            else throw e;
          }
        }),
    ).catch((e: unknown) => {
      if (!isGone(e)) throw e;
      throw new HandBack(`listing VMs in ${namespace}: the continue token expired twice; redeliver`, 1);
    });
    // Something could not be done yet: hand the whole command back; what was done is idempotent.
    if (handBack) throw handBack;
    results.sort((a, b) => a.name.localeCompare(b.name));
    return results;
  }

  async function execute(p: Prepared, scope: RequestScope = { vmsLeft: config.maxVmsPerRequest }): Promise<Result> {
    stopIfGone(scope);
    const now = rt.now();
    if (p.handler.kind === 'event') {
      const r = await p.handler.fn.handle(p.event, rt);
      if (!r) return { outcome: 'processed' };
      if (r.event) return { reply: r.event, target: r.event.subject, outcome: r.event.type };
      const reply = buildReply(
        p.event,
        {
          type: r.type,
          fn: p.fn,
          subject: r.subject ?? '',
          reason: r.reason,
          extensions: r.extensions ?? {},
          data: r.data,
        },
        now,
      );
      return { reply, target: r.subject, outcome: r.type };
    }
    const command = p.command as VmCommand;
    const namespace = p.namespace as string;
    if (command.name) {
      const o = await runOne(p, scope, command.name);
      rt.metrics.action(p.event.type, o.outcome, o.reason);
      return {
        reply: vmReply(p.event, p.fn, namespace, command.name, o, rt.now()),
        target: `${namespace}/${command.name}`,
        outcome: o.outcome,
      };
    }
    const results = await runSelector(p, scope);
    for (const r of results) rt.metrics.action(p.event.type, r.outcome, r.reason);
    const reply = bulkReply(p.event, p.fn, namespace, command.selector, results, rt.now());
    return {
      reply,
      target: `${namespace}/{${format(fromMatchLabels(command.selector?.matchLabels ?? {}))}}`,
      outcome: String((reply.data as { outcome: string }).outcome),
    };
  }

  /**
   * contract §6: the request ledger decides whether this delivery may act
   * (requests.ts); the function claims right before its KubeVirt call, and
   * what it came to is recorded after. Returns the VM as last written.
   */
  async function guarded(
    ctx: VmContext,
    action: string,
    fn: VmFunction,
  ): Promise<{ outcome: Outcome; vm?: VirtualMachine }> {
    const g = guard(ctx, { action, resultTimeoutMs: config.resultTimeoutMs });
    const d = g.decision;
    if (g.answer && !(d.kind === 'recorded' && fn.adopts)) {
      const final = d.kind === 'recorded' ? await settleRecorded(ctx, d.entry) : undefined;
      if (final) return final;
      const outcome =
        d.kind === 'recorded' ? await awaitRecorded(ctx, g.answer, d.entry).catch(refusedWait(ctx)) : g.answer;
      return record(ctx, g, outcome);
    }
    const recorded = d.kind === 'recorded' || d.kind === 'retake' ? d.entry : undefined;
    const outcome = await fn.run({ ...ctx, claim: g.claim, recorded }).catch(refusedWait(ctx));
    return record(ctx, g, outcome);
  }

  /**
   * What the function did goes into the ledger. When the API server refuses that write for good (KubeVirt's
   * VM webhook once the spec stopped validating, L7), what KubeVirt did still happened: the outcome stands,
   * and its message says that it is not recorded and what that means (contract §2, §6).
   */
  async function record(
    ctx: VmContext,
    g: ReturnType<typeof guard>,
    outcome: Outcome,
  ): Promise<{ outcome: Outcome; vm?: VirtualMachine }> {
    try {
      return { outcome, vm: await g.settle(outcome) };
    } catch (e) {
      const why = e instanceof KubeApiError ? refusal(e, ctx.vm) : undefined;
      if (!why) throw e;
      const note = `KubeVirt took the request, but virtwake could not record it on the VM: ${why}; a redelivery of this command is not recognised as done from the record (it runs again and finds what KubeVirt already did), and no later result can be recorded for it until the VM can be updated again`;
      rt.log.warn(
        { vm: `${ctx.namespace}/${ctx.name}`, request: ctx.event.id, outcome: outcome.outcome, why },
        'outcome not recorded in the request ledger',
      );
      return {
        outcome: { ...outcome, message: outcome.message ? `${outcome.message}. ${note}` : note },
        vm: outcome.vm,
      };
    }
  }

  return { prepare, execute };
}

/** Nothing new starts for a client that has gone: its answer would never be read. */
function stopIfGone(scope: RequestScope): void {
  if (scope.signal?.aborted) throw scope.signal.reason instanceof Abandoned ? scope.signal.reason : new Abandoned();
}

/**
 * An API error a function did not handle itself (a plain read or write, not a
 * lifecycle call, which kubevirt-answers.ts judges). Read the way that table
 * reads the same status: 404 NotFound, 400/403/422 Refused with the API's
 * message verbatim; anything else is handed back to Knative (503 once the
 * retries run out) rather than answered 500.
 */
function apiAnswer(e: KubeApiError, vm: VirtualMachine | undefined): Outcome {
  if (e.status === 404) return failed('NotFound', e.message, { vm });
  // KubeVirt's VM webhook refusing virtwake's own annotation write (ledger, claims): the VM is the problem.
  const invalid = vmSpecInvalid(e);
  if (invalid && vm)
    return failed('VmInvalid', vmSpecInvalidMessage(`${vm.metadata.namespace}/${vm.metadata.name}`, invalid), { vm });
  if (e.status === 400 || e.status === 403 || e.status === 422) return failed('Refused', e.message, { vm });
  throw new Transient(e);
}

/**
 * A wait whose watch the API server refuses (RBAC's 403 without `watch`) is the request's outcome, recorded
 * like any other: `failed`/`Refused` with the API server's message, which names the missing grant. Retrying
 * cannot change it, so it is neither a broken stream retried nor a 503 (contract §2).
 */
function refusedWait(ctx: VmContext): (e: unknown) => Outcome {
  return (e) => {
    if (!(e instanceof WatchRefused)) throw e;
    const note = e.status === 403 ? `; virtwake waits by watching ${e.resource}, which its Role must allow` : '';
    return failed('Refused', `${e.message}${note}`, { vm: ctx.vm });
  };
}

/** A write the API server refuses for good (read as apiAnswer reads it), in words; undefined for any other error. */
function refusal(e: KubeApiError, vm: VirtualMachine): string | undefined {
  const invalid = vmSpecInvalid(e);
  if (invalid) return vmSpecInvalidMessage(`${vm.metadata.namespace}/${vm.metadata.name}`, invalid);
  if (e.status === 400 || e.status === 403 || e.status === 422)
    return `the API server answered ${e.status}: ${e.message}`;
  return undefined;
}
