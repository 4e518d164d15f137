import type { VmFunction } from './runtime/function';
import { lifecycleAction } from './runtime/lifecycle';
import { isPaused } from './runtime/vm-state';

// io.virtwake.vm.pause: PUT …/virtualmachineinstances/{name}/pause (there is no
// VM-level pause; the VMI shares the VM's name). Wait for Paused.

export const pause: VmFunction = {
  run: (ctx) => lifecycleAction(ctx, 'pause', {}, isPaused),
};
