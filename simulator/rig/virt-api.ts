// virt-api's subresources.kubevirt.io/v1 as an aggregated API server: kube-apiserver
// authenticates and authorizes the caller (RBAC on virtualmachines/start, ...), then proxies
// the PUT here over TLS with its front-proxy client certificate. The handlers follow
// pkg/virt-api/rest/lifecycle.go through the same runStrategy table the in-memory simulator
// uses (../kubevirt-lifecycle.ts) and write with JSON patches carrying a `test`, as virt-api
// does (getRunningPatch, getChangeRequestJson), so a concurrent change is a 409 from the
// real apiserver.

import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, errors } from '../errors';
import { isFinal, runStrategyOf } from '../kubevirt';
import { decideCell, decidePrecheck, vmiStateOf, type Facts, type Outcome } from '../kubevirt-lifecycle';
import { hasConditionTrue } from '../objects';
import { decodeOptions } from '../subresources';
import type { StateChangeRequest, VirtualMachine, VirtualMachineInstance } from '../types';
import {
  MANUAL_RECOVERY_MESSAGE,
  VM_GR,
  VMI_GR,
  type DryRunOptions,
  type RestartOptions,
  type StartOptions,
  type StopOptions,
} from '../vm-actions';
import type { RigControllers } from './controllers';
import { Kube, KubeError } from './kube';

const GROUP = 'subresources.kubevirt.io';
const KV = '/apis/kubevirt.io/v1';
const VM_ACTIONS = ['start', 'stop', 'restart'];
const VMI_ACTIONS = ['pause', 'unpause'];

export interface VirtApiTls {
  cert: Buffer;
  key: Buffer;
  /** The front-proxy CA: only kube-apiserver's aggregator may call (requestheader authentication). */
  clientCA: Buffer;
  /** Common names the aggregator's client certificate may carry (--requestheader-allowed-names). */
  allowedNames: string[];
}

const RESOURCE_LIST = {
  kind: 'APIResourceList',
  apiVersion: 'v1',
  groupVersion: `${GROUP}/v1`,
  resources: [
    ...VM_ACTIONS.map((a) => ({
      name: `virtualmachines/${a}`,
      singularName: '',
      namespaced: true,
      kind: 'VirtualMachine',
      verbs: ['update'],
    })),
    ...VMI_ACTIONS.map((a) => ({
      name: `virtualmachineinstances/${a}`,
      singularName: '',
      namespaced: true,
      kind: 'VirtualMachineInstance',
      verbs: ['update'],
    })),
  ],
};

function isDryRun(o: DryRunOptions): boolean {
  return Array.isArray(o.dryRun) && o.dryRun.length > 0;
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export class RigVirtApi {
  readonly server: https.Server;
  /** Every request the aggregator forwarded: who it said the caller was, and what was asked. */
  readonly forwarded: Array<{ user: string; method: string; path: string; status: number }> = [];

  constructor(
    private readonly kube: Kube,
    private readonly controllers: RigControllers,
    private readonly tls: VirtApiTls,
  ) {
    this.server = https.createServer(
      { cert: tls.cert, key: tls.key, ca: tls.clientCA, requestCert: true, rejectUnauthorized: false },
      (req, res) => void this.handle(req, res),
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://virt-api');
    const path = url.pathname.replace(/\/+$/, '');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    if (path === '/healthz' || path === '/readyz') return send(res, 200, 'ok');
    const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate?.();
    const authorized = (req.socket as import('node:tls').TLSSocket).authorized;
    if (!authorized || !this.tls.allowedNames.includes(peer?.subject?.CN as string)) {
      return send(res, 401, errors.unauthorized().status);
    }
    const user = String(req.headers['x-remote-user'] ?? '');
    let status = 200;
    try {
      if (path === `/apis/${GROUP}/v1` && req.method === 'GET') return send(res, 200, RESOURCE_LIST);
      if (path === `/apis/${GROUP}` && req.method === 'GET')
        return send(res, 200, {
          kind: 'APIGroup',
          apiVersion: 'v1',
          name: GROUP,
          versions: [{ groupVersion: `${GROUP}/v1`, version: 'v1' }],
          preferredVersion: { groupVersion: `${GROUP}/v1`, version: 'v1' },
        });
      const m =
        /^\/apis\/subresources\.kubevirt\.io\/v1\/namespaces\/([^/]+)\/(virtualmachines|virtualmachineinstances)\/([^/]+)\/([^/]+)$/.exec(
          path,
        );
      if (!m) throw errors.pathNotFound();
      const [, ns, resource, name, action] = m;
      const known = resource === 'virtualmachines' ? VM_ACTIONS : VMI_ACTIONS;
      if (!known.includes(action)) throw errors.pathNotFound();
      if (req.method !== 'PUT') throw errors.methodNotAllowed();
      status = resource === 'virtualmachines' ? 202 : 200;
      await this.act(action, ns, decodeURIComponent(name), body);
      send(res, status);
    } catch (e) {
      const err = toApiError(e);
      status = err.code;
      send(res, err.code, err.status);
    } finally {
      this.forwarded.push({ user, method: req.method ?? '', path, status });
    }
  }

  private async act(action: string, ns: string, name: string, body: string): Promise<void> {
    switch (action) {
      case 'start':
        return this.start(ns, name, () => decodeOptions<StartOptions>('start', body));
      case 'stop':
        return this.stop(ns, name, decodeOptions<StopOptions>('stop', body));
      case 'restart':
        return this.restart(ns, name, decodeOptions<RestartOptions>('restart', body));
      case 'pause':
      case 'unpause':
        return this.pause(ns, name, action === 'pause', decodeOptions<DryRunOptions>(action, body));
    }
  }

  private async fetchVM(ns: string, name: string): Promise<VirtualMachine> {
    const vm = await this.kube.get<VirtualMachine>(
      `${KV}/namespaces/${ns}/virtualmachines/${encodeURIComponent(name)}`,
    );
    if (!vm) throw errors.notFound(VM_GR, name);
    return vm;
  }

  private getVMI(ns: string, name: string): Promise<VirtualMachineInstance | undefined> {
    return this.kube.get<VirtualMachineInstance>(
      `${KV}/namespaces/${ns}/virtualmachineinstances/${encodeURIComponent(name)}`,
    );
  }

  private strategy(vm: VirtualMachine) {
    const rs = runStrategyOf(vm);
    if ('error' in rs) throw errors.internal(rs.error);
    return rs.strategy;
  }

  private async start(ns: string, name: string, body: () => StartOptions): Promise<void> {
    const vm = await this.fetchVM(ns, name);
    const vmi = await this.getVMI(ns, name);
    const facts: Facts = { vmi: vmiStateOf(vmi), paused: false, shorterGrace: false };
    refuse(name, decidePrecheck('start', facts));
    if (hasConditionTrue(vm.status?.conditions, 'ManualRecoveryRequired'))
      throw errors.conflict(VM_GR, name, MANUAL_RECOVERY_MESSAGE);
    const opts = body();
    facts.paused = opts.paused === true;
    const outcome = decideCell(this.strategy(vm), 'start', facts);
    refuse(name, outcome);
    await this.apply(vm, vmi, outcome, facts.paused, isDryRun(opts));
  }

  private async stop(ns: string, name: string, opts: StopOptions): Promise<void> {
    const vm = await this.fetchVM(ns, name);
    const strategy = this.strategy(vm);
    const vmi = await this.getVMI(ns, name);
    let shorterGrace = false;
    if (vmi && !isFinal(vmi) && opts.gracePeriod !== undefined) {
      const old = vmi.spec?.terminationGracePeriodSeconds as number | undefined;
      shorterGrace = old === undefined || old === null || opts.gracePeriod < old;
      await this.patchGrace(vmi, opts.gracePeriod, isDryRun(opts));
    }
    const outcome = decideCell(strategy, 'stop', { vmi: vmiStateOf(vmi), paused: false, shorterGrace });
    refuse(name, outcome);
    await this.apply(vm, vmi, outcome, false, isDryRun(opts));
  }

  private async restart(ns: string, name: string, opts: RestartOptions): Promise<void> {
    if (opts.gracePeriodSeconds !== undefined) {
      if (opts.gracePeriodSeconds > 0)
        throw errors.badRequest('For force restart, only gracePeriod=0 is supported for now');
      if (opts.gracePeriodSeconds < 0) throw errors.badRequest('gracePeriod has to be greater or equal to 0');
    }
    const vm = await this.fetchVM(ns, name);
    if (hasConditionTrue(vm.status?.conditions, 'VolumesChange'))
      throw errors.conflict(VM_GR, name, MANUAL_RECOVERY_MESSAGE);
    const strategy = this.strategy(vm);
    const vmi = await this.getVMI(ns, name);
    const outcome = decideCell(strategy, 'restart', { vmi: vmiStateOf(vmi), paused: false, shorterGrace: false });
    refuse(name, outcome);
    if (vmi && opts.gracePeriodSeconds === 0) await this.patchGrace(vmi, 1, isDryRun(opts));
    await this.apply(vm, vmi, outcome, false, isDryRun(opts));
  }

  private async pause(ns: string, name: string, pause: boolean, opts: DryRunOptions): Promise<void> {
    if (!pause) {
      const vm = await this.kube.get<VirtualMachine>(
        `${KV}/namespaces/${ns}/virtualmachines/${encodeURIComponent(name)}`,
      );
      if (vm?.status?.snapshotInProgress) throw errors.conflict(VM_GR, name, 'VM snapshot is in progress');
    }
    const vmi = await this.getVMI(ns, name);
    if (!vmi) throw errors.notFound(VMI_GR, name);
    if (vmi.status?.phase !== 'Running')
      throw errors.conflict(VMI_GR, name, pause ? 'VM is not running' : 'VMI is not running');
    const paused = vmi.status.conditions?.some((c) => c.type === 'Paused');
    if (pause && paused) throw errors.conflict(VMI_GR, name, 'VMI is already paused');
    if (!pause && !paused) throw errors.conflict(VMI_GR, name, 'VMI is not paused');
    if (opts.dryRun?.[0] === 'All') return;
    this.controllers.requestPause(vmi, pause);
  }

  private async patchGrace(vmi: VirtualMachineInstance, seconds: number, dryRun: boolean): Promise<void> {
    await this.patch(
      `${KV}/namespaces/${vmi.metadata.namespace}/virtualmachineinstances/${encodeURIComponent(vmi.metadata.name!)}`,
      [{ op: 'replace', path: '/spec/terminationGracePeriodSeconds', value: seconds }],
      dryRun,
    );
  }

  private async apply(
    vm: VirtualMachine,
    vmi: VirtualMachineInstance | undefined,
    outcome: Outcome,
    paused: boolean,
    dryRun: boolean,
  ) {
    if (outcome.code !== 202) return;
    const effect = outcome.effect;
    const path = `${KV}/namespaces/${vm.metadata.namespace}/virtualmachines/${encodeURIComponent(vm.metadata.name!)}`;
    if (effect.kind === 'spec') {
      const field = vm.spec.runStrategy !== undefined && vm.spec.runStrategy !== null ? 'runStrategy' : 'running';
      const value = field === 'runStrategy' ? (effect.running ? 'Always' : 'Halted') : effect.running;
      await this.patch(
        path,
        [
          { op: 'test', path: `/spec/${field}`, value: vm.spec[field] },
          { op: 'replace', path: `/spec/${field}`, value },
        ],
        dryRun,
      );
    } else if (effect.kind === 'requests') {
      const changes: StateChangeRequest[] = effect.requests.map((r) =>
        r === 'StopCurrent'
          ? { action: 'Stop', uid: vmi?.metadata.uid }
          : paused
            ? { action: 'Start', data: { paused: 'true' } }
            : { action: 'Start' },
      );
      const queued = vm.status?.stateChangeRequests ?? [];
      const status = vm.status ?? {};
      if (
        Object.keys(status).length > 0 &&
        queued.length > 0 &&
        !(changes.length === 1 && changes[0].action === 'Stop')
      )
        throw errors.internal('unable to complete request: stop/start already underway');
      // getChangeRequestJson: add to an empty queue (the whole status when there is none), else test and replace.
      const ops: unknown[] = [];
      if (Object.keys(status).length === 0)
        ops.push({ op: 'add', path: '/status', value: { stateChangeRequests: changes } });
      else if (queued.length === 0) ops.push({ op: 'add', path: '/status/stateChangeRequests', value: changes });
      else
        ops.push(
          { op: 'test', path: '/status/stateChangeRequests', value: queued },
          { op: 'replace', path: '/status/stateChangeRequests', value: changes },
        );
      if (status.startFailure) ops.push({ op: 'remove', path: '/status/startFailure' });
      await this.patch(`${path}/status`, ops, dryRun);
    }
  }

  private async patch(path: string, ops: unknown[], dryRun: boolean): Promise<void> {
    await this.kube.request('PATCH', dryRun ? `${path}?dryRun=All` : path, ops, 'application/json-patch+json');
  }
}

function refuse(name: string, outcome: Outcome | undefined): void {
  if (outcome && outcome.code === 409) throw errors.conflict(VM_GR, name, outcome.message);
}

/** lifecycle.go: a failed `test` is a 409, any other patch failure a 500. */
function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof KubeError) {
    const text =
      typeof e.body === 'object' && e.body ? String((e.body as { message?: string }).message ?? '') : String(e.body);
    if (e.status === 404) return new ApiError(e.body as never);
    if (/test operation does not apply|testing value/i.test(text) || e.status === 409)
      return new ApiError({ ...errors.forCode(409).status, message: text });
    return errors.internal(text);
  }
  return errors.internal((e as Error).message);
}
