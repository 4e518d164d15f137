import type { FunctionName } from './commands';
import type { VmFunction } from './runtime/function';
import type { EventFunction } from './runtime/runtime';
import { start } from './start';
import { stop } from './stop';
import { restart } from './restart';
import { pause } from './pause';
import { unpause } from './unpause';
import startSchema from '../schemas/io.virtwake.vm.start.json';
import stopSchema from '../schemas/io.virtwake.vm.stop.json';
import restartSchema from '../schemas/io.virtwake.vm.restart.json';
import pauseSchema from '../schemas/io.virtwake.vm.pause.json';
import unpauseSchema from '../schemas/io.virtwake.vm.unpause.json';

// Which code serves which function name (names and types: commands.ts).

export type Handler =
  | { kind: 'vm'; fn: VmFunction<any>; schema: object }
  | { kind: 'event'; fn: EventFunction };

export const HANDLERS: Partial<Record<FunctionName, Handler>> = {
  start: { kind: 'vm', fn: start, schema: startSchema },
  stop: { kind: 'vm', fn: stop, schema: stopSchema },
  restart: { kind: 'vm', fn: restart, schema: restartSchema },
  pause: { kind: 'vm', fn: pause, schema: pauseSchema },
  unpause: { kind: 'vm', fn: unpause, schema: unpauseSchema },
};
