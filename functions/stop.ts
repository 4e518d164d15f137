import { completed, VmCommand, VmFunction } from './runtime/function';
import { lifecycleAction } from './runtime/lifecycle';
import { Transient } from './runtime/retry';
import { isFinal, isStopped } from './runtime/vm-state';

// io.virtwake.vm.stop: PUT …/virtualmachines/{name}/stop (KubeVirt names the
// field gracePeriod here); wait for no VMI and none asked for (not for
// printableStatus Stopped, which a VM with a DataVolume problem never shows).
//
// KubeVirt answers "VM is not running" when there is no VMI, when the VMI is
// final (a Manual VM whose guest powered off keeps it: stopped, so completed),
// and for RerunOnFailure between deleting its failed VMI and the rerun it
// queued itself: the stop is then asked again once the new VMI is there.

export interface StopCommand extends VmCommand {
  gracePeriodSeconds?: number;
}

export const stop: VmFunction<StopCommand> = {
  run(ctx) {
    const grace = ctx.command.gracePeriodSeconds;
    return lifecycleAction(
      ctx,
      'stop',
      grace === undefined ? {} : { gracePeriod: grace },
      isStopped,
      async (answer) => {
        const { kubevirt, namespace, name } = ctx;
        const [vm, vmi] = await Promise.all([kubevirt.getVM(namespace, name), kubevirt.getVMI(namespace, name)]);
        if (vm?.status?.stateChangeRequests?.some((r) => r.action === 'Start') && !ctx.command.dryRun)
          throw new Transient(
            new Error(`KubeVirt is about to start VM ${namespace}/${name} again (a queued Start); stop it once it has`),
          );
        const message = isFinal(vmi)
          ? `${answer.message}; its VMI is ${vmi?.status?.phase} (the guest powered off) and stays until the VM is started or it is deleted`
          : answer.message;
        return completed('AlreadyInState', { message, vm: vm ?? ctx.vm });
      },
    );
  },
};
