import type { Logger } from 'pino';
import type { CloudEvent } from './cloudevents/event';
import type { Config } from './config';
import type { KubeVirt } from './kubevirt';
import type { VirtualMachine } from './kubevirt-types';
import type { Metrics } from './metrics';

/** What the runtime hands to functions that are not about one VM (reaper, dead-letter sink). */
export interface Runtime {
  config: Config;
  kubevirt: KubeVirt;
  log: Logger;
  metrics: Metrics;
  now(): Date;
  /** Aborted when the server begins to shut down. */
  signal: AbortSignal;
  /** contract §5: note that a VM was used; throttled, never fails the command. */
  recordActivity?(vm: VirtualMachine): Promise<void>;
}

export interface EventReply {
  type: string;
  subject?: string;
  reason?: string;
  extensions?: Record<string, string>;
  data: unknown;
  /**
   * The reply as the function built it, sent as is: a result of another request
   * (contract §2) carries that request's causationid and id, not the trigger's.
   */
  event?: CloudEvent;
}

export interface EventFunction {
  /** Answer with a reply event, or undefined for "processed, nothing to say" (202). */
  handle(event: CloudEvent, rt: Runtime): Promise<EventReply | undefined>;
}
