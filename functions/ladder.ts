import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { SLEPT_TYPE, WOKE_TYPE } from './commands';
import { rfc3339 } from './runtime/activity';
import type { KubeVirt } from './runtime/kubevirt';
import type { VirtualMachine } from './runtime/kubevirt-types';
import type { Metrics, Tier, WakePhase } from './runtime/metrics';
import type { EventSink } from './runtime/sink';

// The sleep ladder (contract §5): Running → Paused → Stopped and back. What the
// reaper, the wake proxy, activity and start share: the annotations that say
// virtwake put a VM to sleep and when, which wake call a sleeping VM needs,
// and what a wake or a sleep reports (metrics, the asleep ledger, K_SINK events).
//
// All of it lives on the VM, so any replica can wake what another put to sleep.

export const PAUSE_AFTER = 'virtwake.io/pause-after';
/** Set by the reaper when it pauses a VM: virtwake paused it (a wake unpauses it), and since when. */
export const PAUSED_AT = 'virtwake.io/paused-at';
/** Set by the reaper when it stops a VM: since when it has been asleep in the stopped tier. */
export const STOPPED_AT = 'virtwake.io/stopped-at';
/** io.virtwake.vm.activity holdFor: the reaper leaves the VM awake until then. */
export const HOLD_UNTIL = 'virtwake.io/hold-until';
/** `traffic`: only traffic counts, logged-in guest users do not keep the VM awake. */
export const IDLE_SIGNALS = 'virtwake.io/idle-signals';
/** The keep-warm window occurrence the reaper last woke the VM for. */
export const WARMED_FOR = 'virtwake.io/warmed-for';

const time = (text: string | undefined) => {
  const t = Date.parse(text ?? '');
  return Number.isNaN(t) ? undefined : t;
};

/** Whether virtwake paused this VM (it is Paused and carries the reaper's paused-at). */
export function pausedByVirtwake(vm: VirtualMachine): boolean {
  return vm.status?.printableStatus === 'Paused' && time(vm.metadata.annotations?.[PAUSED_AT]) !== undefined;
}

/** When the sleep in `tier` began, as virtwake recorded it; undefined if virtwake did not put it there. */
export function sleptAt(vm: VirtualMachine, tier: Tier): number | undefined {
  return time(vm.metadata.annotations?.[tier === 'paused' ? PAUSED_AT : STOPPED_AT]);
}

export interface LadderDeps {
  kubevirt: KubeVirt;
  now(): Date;
  log?: Logger;
  metrics?: Metrics;
  events?: EventSink;
}

export interface Wake {
  tier: Tier;
  trigger: 'proxy' | 'activity' | 'start' | 'keepWarm';
  /** Seconds from the start of the wake to each phase reached. */
  phases: Partial<Record<WakePhase, number>>;
}

/**
 * A wake call (unpause or start) was accepted by this process: clear the sleep
 * annotations, count how long the VM slept (the ledger), observe the phases and
 * send io.virtwake.vm.woke. Only the caller whose call KubeVirt accepted reports,
 * so concurrent wakers count a sleep once. Never throws.
 */
export async function reportWake(deps: LadderDeps, vm: VirtualMachine, wake: Wake): Promise<void> {
  const namespace = vm.metadata.namespace ?? '';
  const name = vm.metadata.name;
  const since = sleptAt(vm, wake.tier);
  const now = deps.now().getTime();
  const asleepSeconds = since === undefined ? undefined : Math.max(0, (now - since) / 1000);
  deps.metrics?.woke(wake.tier, wake.trigger);
  if (asleepSeconds !== undefined) deps.metrics?.asleep(wake.tier, namespace, name, asleepSeconds);
  for (const [phase, seconds] of Object.entries(wake.phases))
    deps.metrics?.wakePhase(wake.tier, phase as WakePhase, seconds);
  const data = {
    vm: `${namespace}/${name}`,
    namespace,
    name,
    tier: wake.tier,
    trigger: wake.trigger,
    ...(asleepSeconds === undefined ? {} : { asleepSeconds }),
    phases: wake.phases,
  };
  deps.log?.info(data, 'woke VM');
  void deps.events?.send({
    type: WOKE_TYPE,
    source: `/virtwake/${wake.trigger === 'proxy' ? 'wake-proxy' : wake.trigger === 'keepWarm' ? 'reaper' : 'vm'}`,
    subject: `${namespace}/${name}`,
    id: randomUUID(),
    time: rfc3339(now),
    data,
  });
  await forgetSleep(deps, vm);
}

/** Remove the sleep annotations (a merge patch naming only them); a failure is logged, the next wake or tick retries. */
export async function forgetSleep(deps: Pick<LadderDeps, 'kubevirt' | 'log'>, vm: VirtualMachine): Promise<void> {
  const a = vm.metadata.annotations ?? {};
  if (a[PAUSED_AT] === undefined && a[STOPPED_AT] === undefined) return;
  try {
    await deps.kubevirt.mergePatch('virtualmachines', vm.metadata.namespace ?? '', vm.metadata.name, {
      metadata: { annotations: { [PAUSED_AT]: null, [STOPPED_AT]: null } },
    });
  } catch (e) {
    deps.log?.warn(
      { vm: `${vm.metadata.namespace}/${vm.metadata.name}`, err: (e as Error).message },
      'could not clear sleep annotations',
    );
  }
}

/** io.virtwake.vm.slept: the reaper paused or stopped an idle VM. */
export function reportSleep(
  deps: LadderDeps,
  vm: { namespace: string; name: string },
  s: { tier: Tier; from: 'running' | 'paused'; idleMs: number; thresholdMs: number; pausedAt?: number },
): void {
  const now = deps.now().getTime();
  deps.metrics?.slept(s.tier);
  // Paused giving way to stopped ends the paused sleep: that is ledger time too.
  if (s.from === 'paused' && s.pausedAt !== undefined)
    deps.metrics?.asleep('paused', vm.namespace, vm.name, Math.max(0, (now - s.pausedAt) / 1000));
  void deps.events?.send({
    type: SLEPT_TYPE,
    source: '/virtwake/reaper',
    subject: `${vm.namespace}/${vm.name}`,
    id: randomUUID(),
    time: rfc3339(now),
    data: {
      vm: `${vm.namespace}/${vm.name}`,
      namespace: vm.namespace,
      name: vm.name,
      tier: s.tier,
      from: s.from,
      idleSeconds: Math.max(0, Math.round(s.idleMs / 1000)),
      thresholdSeconds: Math.round(s.thresholdMs / 1000),
    },
  });
}

/** Whether a start or activity wake should unpause this paused VM: virtwake paused it, or the command says so. */
export function shouldUnpause(vm: VirtualMachine, commandSaysSo: boolean | undefined): boolean {
  return vm.status?.printableStatus === 'Paused' && (pausedByVirtwake(vm) || commandSaysSo === true);
}
