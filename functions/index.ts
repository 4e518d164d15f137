import type { FunctionName } from './commands';
import type { Handler } from './runtime/dispatch';
import { start } from './start';
import { stop } from './stop';
import { restart } from './restart';
import { pause } from './pause';
import { unpause } from './unpause';
import { deadletter } from './deadletter';
import { snapshot } from './snapshot';
import { restore } from './restore';
import startSchema from '../schemas/io.virtwake.vm.start.json';
import stopSchema from '../schemas/io.virtwake.vm.stop.json';
import restartSchema from '../schemas/io.virtwake.vm.restart.json';
import pauseSchema from '../schemas/io.virtwake.vm.pause.json';
import unpauseSchema from '../schemas/io.virtwake.vm.unpause.json';
import { activity } from './activity';
import { reaper } from './reaper';
import { results } from './results';
import activitySchema from '../schemas/io.virtwake.vm.activity.json';
import snapshotSchema from '../schemas/io.virtwake.vm.snapshot.json';
import restoreSchema from '../schemas/io.virtwake.vm.restore.json';

// Which code serves which function name (names and types: commands.ts). Complete
// by type: a name added to FunctionName does not compile until it has code here.

export const HANDLERS: Record<FunctionName, Handler> = {
  start: { kind: 'vm', fn: start, schema: startSchema },
  stop: { kind: 'vm', fn: stop, schema: stopSchema },
  restart: { kind: 'vm', fn: restart, schema: restartSchema },
  pause: { kind: 'vm', fn: pause, schema: pauseSchema },
  unpause: { kind: 'vm', fn: unpause, schema: unpauseSchema },
  deadletter: { kind: 'event', fn: deadletter },
  activity: { kind: 'vm', fn: activity, schema: activitySchema },
  reaper: { kind: 'event', fn: reaper },
  results: { kind: 'event', fn: results },
  snapshot: { kind: 'vm', fn: snapshot, schema: snapshotSchema },
  restore: { kind: 'vm', fn: restore, schema: restoreSchema },
};
