// The subresources.kubevirt.io API (virt-api behind the aggregator): PUT start/stop/restart
// on VMs, pause/unpause/freeze/unfreeze/softreboot on VMIs. Success is 202 with an empty
// body for VM actions and 200 with an empty body for VMI actions.

import { load } from 'js-yaml';
import { errors } from './errors';
import type { Reply } from './rest';
import type { ResourceRequestInfo } from './router';
import { SUBRESOURCE_VERSIONS } from './resources';
import type { Commit, VmActions } from './vm-actions';

type FieldType = 'bool' | 'int' | 'strings' | 'string';

const OPTION_FIELDS: Record<string, { goType: string; fields: Record<string, FieldType> }> = {
  start: { goType: 'v1.StartOptions', fields: { paused: 'bool', dryRun: 'strings' } },
  stop: { goType: 'v1.StopOptions', fields: { gracePeriod: 'int', dryRun: 'strings' } },
  restart: { goType: 'v1.RestartOptions', fields: { gracePeriodSeconds: 'int', dryRun: 'strings' } },
  pause: { goType: 'v1.PauseOptions', fields: { dryRun: 'strings' } },
  unpause: { goType: 'v1.UnpauseOptions', fields: { dryRun: 'strings' } },
};

const GO_TYPE_NAMES: Record<FieldType, string> = { bool: 'bool', int: 'int64', strings: '[]string', string: 'string' };

function jsType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return 'number';
  return typeof v;
}

function fieldOk(t: FieldType, v: unknown): boolean {
  if (v === null || v === undefined) return true;
  switch (t) {
    case 'bool':
      return typeof v === 'boolean';
    case 'int':
      return typeof v === 'number' && Number.isInteger(v);
    case 'strings':
      return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'string':
      return typeof v === 'string';
  }
}

/** yaml.NewYAMLOrJSONDecoder semantics: empty body = no options; anything undecodable = 400. */
export function decodeOptions<T>(action: string, raw: string): T {
  const spec = OPTION_FIELDS[action] ?? { goType: 'struct', fields: {} };
  const fail = (detail: string): never => {
    throw errors.badRequest(`Can not unmarshal Request body to struct, error: ${detail}`);
  };
  const text = raw.trim();
  if (!text) return {} as T;
  let value: unknown;
  if (text.startsWith('{') || text.startsWith('[')) {
    try {
      value = JSON.parse(text);
    } catch (e) {
      fail((e as Error).message);
    }
  } else {
    try {
      value = load(text);
    } catch (e) {
      fail(`error converting YAML to JSON: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  if (value === null || value === undefined) return {} as T;
  if (typeof value !== 'object' || Array.isArray(value)) {
    fail(`json: cannot unmarshal ${jsType(value)} into Go value of type ${spec.goType}`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const t = spec.fields[k];
    if (!t) continue; // unknown fields are ignored by encoding/json
    if (!fieldOk(t, v)) {
      fail(
        `json: cannot unmarshal ${jsType(v)} into Go struct field ${spec.goType.replace('v1.', '')}.${k} of type ${GO_TYPE_NAMES[t]}`,
      );
    }
    if (v !== null) out[k] = v;
  }
  return out as T;
}

const empty = (status: number): Reply => ({ kind: 'json', status });

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run a lifecycle handler's decision, then commit its patch after virt-api's read-to-write window. */
async function lifecycle(decide: () => Commit, windowMs: number): Promise<Reply> {
  const commit = decide();
  if (windowMs > 0) await pause(windowMs);
  commit();
  return empty(202);
}

export async function handleSubresource(
  actions: VmActions,
  method: string,
  info: ResourceRequestInfo,
  rawBody: string,
  windowMs = 0,
): Promise<Reply> {
  if (!SUBRESOURCE_VERSIONS.includes(info.version) || !info.namespace || !info.name || !info.subresource)
    throw errors.pathNotFound();
  const { namespace, name, subresource } = info;
  const key = `${info.resource}/${subresource}`;
  const handlers: Record<string, () => Reply | Promise<Reply>> = {
    'virtualmachines/start': () =>
      lifecycle(() => actions.start(namespace, name, () => decodeOptions('start', rawBody)), windowMs),
    'virtualmachines/stop': () =>
      lifecycle(() => actions.stop(namespace, name, () => decodeOptions('stop', rawBody)), windowMs),
    'virtualmachines/restart': () =>
      lifecycle(() => actions.restart(namespace, name, () => decodeOptions('restart', rawBody)), windowMs),
    'virtualmachineinstances/pause': () => (
      actions.pause(namespace, name, () => decodeOptions('pause', rawBody)),
      empty(200)
    ),
    'virtualmachineinstances/unpause': () => (
      actions.unpause(namespace, name, () => decodeOptions('unpause', rawBody)),
      empty(200)
    ),
    'virtualmachineinstances/freeze': () => (actions.freeze(namespace, name, true), empty(200)),
    'virtualmachineinstances/unfreeze': () => (actions.freeze(namespace, name, false), empty(200)),
    'virtualmachineinstances/softreboot': () => (actions.softReboot(namespace, name), empty(200)),
  };
  const h = handlers[key];
  if (!h) throw errors.pathNotFound();
  if (method !== 'PUT') throw errors.methodNotAllowed();
  return h();
}
