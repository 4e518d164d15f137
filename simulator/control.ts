// The simulator's own HTTP endpoints under /_sim/, for tests and tools running in another
// process: fault rules, RBAC denials, the call log, settling and compaction, per-VM cluster facts (volumes,
// migration, spec validity) and settings (virt-api window, snapshot API). Not authenticated,
// not recorded.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { denialFromJson, type Authorizer } from './authorizer';
import { ruleFromJson, type Faults } from './faults';
import type { Recorder } from './recorder';
import { VOLUME_STATES, type GuestUser, type SnapshotApi, type VolumeState } from './context';
import type { SimStore } from './sim-store';
import type { ObjectStore } from './store';

export interface ControlDeps {
  faults: Faults;
  authorizer: Authorizer;
  recorder: Recorder;
  store: ObjectStore;
  sim: SimStore;
  settle(timeoutMs?: number): Promise<void>;
  /** The bearer token the API server accepts from now on (POST /_sim/token). */
  setToken(token: string): void;
}

function objectBody(rawBody: string): Record<string, unknown> {
  const b: unknown = rawBody.trim() ? JSON.parse(rawBody) : {};
  if (!b || typeof b !== 'object' || Array.isArray(b)) throw new Error('body must be a JSON object');
  return b as Record<string, unknown>;
}

/** POST /_sim/vms/{ns}/{name}: {volumes: state|null, migrating: bool, specInvalid: message|null, guestUsers: [...]|null}. */
function vmKnobs(sim: SimStore, namespace: string, name: string, b: Record<string, unknown>): void {
  if (!sim.getVM(namespace, name)) throw new Error(`VirtualMachine ${namespace}/${name} does not exist`);
  if ('volumes' in b) {
    if (b.volumes !== null && !VOLUME_STATES.includes(b.volumes as VolumeState))
      throw new Error(`volumes must be null or one of ${VOLUME_STATES.join(', ')}`);
    sim.setVolumeState(namespace, name, (b.volumes ?? undefined) as VolumeState | undefined);
  }
  if ('migrating' in b) {
    if (typeof b.migrating !== 'boolean') throw new Error('migrating must be true or false');
    sim.setMigrating(namespace, name, b.migrating);
  }
  if ('specInvalid' in b) {
    if (b.specInvalid !== null && typeof b.specInvalid !== 'string')
      throw new Error('specInvalid must be null or the webhook message');
    sim.setSpecInvalid(namespace, name, (b.specInvalid ?? undefined) as string | undefined);
  }
  if ('guestUsers' in b) {
    const users = b.guestUsers;
    const ok =
      users === null ||
      (Array.isArray(users) &&
        users.every((u) => u && typeof u === 'object' && typeof (u as GuestUser).userName === 'string'));
    if (!ok) throw new Error('guestUsers must be null or a list of {"userName": string, "domain"?, "loginTime"?}');
    sim.setGuestUsers(namespace, name, (users ?? undefined) as GuestUser[] | undefined);
  }
}

/** POST /_sim/settings: {virtApiWindowMs: n, snapshotApi: served|absent|gateOff, readinessGateDelayMs: n}. */
function settings(sim: SimStore, b: Record<string, unknown>): void {
  if ('readinessGateDelayMs' in b) {
    if (typeof b.readinessGateDelayMs !== 'number' || b.readinessGateDelayMs < 0)
      throw new Error('readinessGateDelayMs must be a non-negative number');
    sim.setReadinessGateDelay(b.readinessGateDelayMs);
  }
  if ('virtApiWindowMs' in b) {
    if (typeof b.virtApiWindowMs !== 'number' || b.virtApiWindowMs < 0)
      throw new Error('virtApiWindowMs must be a non-negative number');
    sim.setVirtApiWindow(b.virtApiWindowMs);
  }
  if ('snapshotApi' in b) {
    if (!['served', 'absent', 'gateOff'].includes(b.snapshotApi as string))
      throw new Error('snapshotApi must be served, absent or gateOff');
    sim.setSnapshotApi(b.snapshotApi as SnapshotApi);
  }
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export async function handleControl(
  deps: ControlDeps,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  rawBody: string,
): Promise<void> {
  const method = req.method ?? 'GET';
  const path = url.pathname.replace(/\/+$/, '');
  try {
    if (path === '/_sim/calls' && method === 'GET') return send(res, 200, deps.recorder.calls);
    if (path === '/_sim/calls' && method === 'DELETE') {
      deps.recorder.reset();
      return send(res, 200, {});
    }
    if (path === '/_sim/faults' && method === 'GET') return send(res, 200, deps.faults.list());
    if (path === '/_sim/faults' && method === 'POST') {
      const rule = ruleFromJson(rawBody.trim() ? JSON.parse(rawBody) : {});
      return send(res, 201, { id: deps.faults.add(rule) });
    }
    if (path === '/_sim/faults' && method === 'DELETE') {
      deps.faults.clear();
      return send(res, 200, {});
    }
    if (path === '/_sim/rbac/denials' && method === 'GET') return send(res, 200, deps.authorizer.list());
    if (path === '/_sim/rbac/denials' && method === 'POST')
      return send(res, 201, { id: deps.authorizer.deny(denialFromJson(objectBody(rawBody))) });
    if (path === '/_sim/rbac/denials' && method === 'DELETE') {
      deps.authorizer.clear();
      return send(res, 200, {});
    }
    const one = /^\/_sim\/faults\/(\d+)$/.exec(path);
    if (one && method === 'DELETE') return send(res, deps.faults.remove(Number(one[1])) ? 200 : 404, {});
    if (path === '/_sim/settle' && (method === 'POST' || method === 'GET')) {
      const t = url.searchParams.get('timeoutMs');
      await deps.settle(t ? Number(t) : undefined);
      return send(res, 200, {});
    }
    const vm = /^\/_sim\/vms\/([^/]+)\/([^/]+)$/.exec(path);
    if (vm && method === 'POST') {
      vmKnobs(deps.sim, decodeURIComponent(vm[1]), decodeURIComponent(vm[2]), objectBody(rawBody));
      return send(res, 200, {});
    }
    if (path === '/_sim/settings' && method === 'POST') {
      settings(deps.sim, objectBody(rawBody));
      return send(res, 200, {});
    }
    // A rotated credential (kube-apiserver behaviour, not KubeVirt's): a service-account token re-issued or a
    // static token replaced; from now on only the new token is accepted, the old one gets 401 like any unknown
    // bearer token (k8s.io/apiserver pkg/authentication/request/bearertoken: a token no authenticator accepts
    // is 401 Unauthorized). Only on a simulator started with a token.
    if (path === '/_sim/token' && method === 'POST') {
      const token = objectBody(rawBody).token;
      if (typeof token !== 'string' || token === '') throw new Error('token must be a non-empty string');
      deps.setToken(token);
      return send(res, 200, {});
    }
    if (path === '/_sim/compact' && method === 'POST') {
      deps.store.compact();
      return send(res, 200, { resourceVersion: String(deps.store.currentRv()) });
    }
    return send(res, 404, { error: `no such simulator endpoint: ${method} ${path}` });
  } catch (e) {
    return send(res, 400, { error: (e as Error).message });
  }
}
