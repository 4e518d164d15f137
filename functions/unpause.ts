import type { VmFunction } from './runtime/function';
import { lifecycleAction } from './runtime/lifecycle';
import { isUnpaused } from './runtime/vm-state';

// io.virtwake.vm.unpause: PUT …/virtualmachineinstances/{name}/unpause; wait for Running.

export const unpause: VmFunction = {
  run: (ctx) => lifecycleAction(ctx, 'unpause', {}, isUnpaused),
};
