// Generic REST verbs over the store, with kube-apiserver's rules for custom resources:
// status ignored on the main endpoint, resourceVersion as an optimistic-concurrency
// precondition, merge/JSON patch only (415 for strategic merge), server-side dry run,
// admission before persistence.

import { randomBytes } from 'node:crypto';
import { admissionFor, type AdmissionSettings } from './admission';
import { crdSchemaCauses } from './crd-schema';
import { errors } from './errors';
import { clone, isDns1123Subdomain } from './objects';
import { listPage, validateListOptions } from './paging';
import { applyJsonPatch, decodeJsonPatch, JSON_PATCH, MERGE_PATCH, mergePatch, APPLY_PATCH } from './patch';
import { apiVersionOf, type ResourceDef, type Verb } from './resources';
import { parseFieldSelector, parseLabelSelector } from './selectors';
import type { ObjectStore } from './store';
import type { KubeObject } from './types';
import { asVersion, parseWatchStart, type WatchParams } from './watch';

export type Reply =
  | { kind: 'json'; status: number; body?: unknown; headers?: Record<string, string> }
  | { kind: 'watch'; params: WatchParams };

export interface RestRequest {
  method: string;
  resource: ResourceDef;
  version: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  query: URLSearchParams;
  contentType: string;
  body: unknown;
  rawBody: string;
  watch: boolean;
  bookmarkIntervalMs: number;
}

const json = (status: number, body?: unknown): Reply => ({ kind: 'json', status, body });

function gr(r: ResourceDef) {
  return { group: r.group, resource: r.plural };
}

function dryRunOf(q: URLSearchParams): boolean {
  const values = q.getAll('dryRun');
  for (const v of values)
    if (v !== 'All') throw errors.badRequest(`Invalid dry run argument: "${v}", supported values: "All"`);
  return values.length > 0;
}

function requireVerb(r: ResourceDef, verb: Verb): void {
  if (!r.verbs.includes(verb)) throw errors.methodNotAllowed();
}

function requireObject(body: unknown, rawBody: string): KubeObject {
  if (!rawBody.trim()) throw errors.badRequest('the body of the request was empty');
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw errors.badRequest(`Object 'Kind' is missing in '${rawBody.slice(0, 200)}'`);
  }
  const o = body as KubeObject;
  if (!o.metadata || typeof o.metadata !== 'object') o.metadata = {};
  return o;
}

/** Present an object (or list item) in the version the client asked for. */
function present(o: KubeObject, r: ResourceDef, version: string): KubeObject {
  return asVersion(o, r, version);
}

export class Rest {
  constructor(
    private readonly store: ObjectStore,
    private readonly settings?: AdmissionSettings,
  ) {}

  handle(req: RestRequest): Reply {
    const { method, resource: r } = req;
    if (req.subresource && req.subresource !== 'status') throw errors.pathNotFound();
    switch (method) {
      case 'GET':
        if (req.watch) {
          requireVerb(r, 'watch');
          return this.watch(req);
        }
        if (req.name) {
          requireVerb(r, 'get');
          return json(200, present(this.mustGet(req), r, req.version));
        }
        requireVerb(r, 'list');
        return this.list(req);
      case 'POST':
        requireVerb(r, 'create');
        if (req.name || req.namespace === undefined) throw errors.methodNotAllowed();
        return this.create(req);
      case 'PUT':
        requireVerb(r, 'update');
        if (!req.name) throw errors.methodNotAllowed();
        return this.update(req);
      case 'PATCH':
        requireVerb(r, 'patch');
        if (!req.name) throw errors.methodNotAllowed();
        return this.patch(req);
      case 'DELETE':
        requireVerb(r, 'delete');
        if (!req.name) throw errors.methodNotAllowed();
        return this.delete(req);
      default:
        throw errors.methodNotAllowed();
    }
  }

  private mustGet(req: RestRequest): KubeObject {
    const o = this.store.get(req.resource, req.namespace, req.name!);
    if (!o) throw errors.notFound(gr(req.resource), req.name!);
    return o;
  }

  private filter(req: RestRequest) {
    const fields = parseFieldSelector(req.query.get('fieldSelector'));
    if (req.name) fields.push({ field: 'metadata.name', value: req.name, negate: false });
    return { labels: parseLabelSelector(req.query.get('labelSelector')), fields };
  }

  private list(req: RestRequest): Reply {
    const r = req.resource;
    const limitText = req.query.get('limit');
    const limit = limitText ? parseInt(limitText, 10) : undefined;
    // Query decoding (selectors, 400) comes before ListOptions validation (422), as in handlers/get.go.
    const filter = this.filter(req);
    const options = {
      continueToken: req.query.get('continue') || undefined,
      resourceVersion: req.query.get('resourceVersion') || undefined,
      resourceVersionMatch: req.query.get('resourceVersionMatch') || undefined,
    };
    validateListOptions(options);
    const page = listPage(this.store, r, {
      namespace: req.namespace,
      filter,
      limit: Number.isFinite(limit) ? limit : undefined,
      ...options,
    });
    const metadata: Record<string, unknown> = { resourceVersion: page.resourceVersion };
    // A custom resource list is unstructured there: its continue is written even when empty.
    if (page.continue || !r.builtIn) metadata.continue = page.continue ?? '';
    if (page.remainingItemCount !== undefined) metadata.remainingItemCount = page.remainingItemCount;
    const items = page.items.map((o) => {
      if (!r.builtIn) return present(o, r, req.version);
      const { apiVersion: _a, kind: _k, ...rest } = o;
      return rest;
    });
    return json(200, { apiVersion: apiVersionOf(r, req.version), kind: `${r.kind}List`, metadata, items });
  }

  private watch(req: RestRequest): Reply {
    const q = req.query;
    parseWatchStart(q.get('resourceVersion') ?? undefined);
    const timeout = q.get('timeoutSeconds');
    return {
      kind: 'watch',
      params: {
        resource: req.resource,
        version: req.version,
        namespace: req.namespace,
        filter: this.filter(req),
        resourceVersion: q.get('resourceVersion') ?? undefined,
        allowBookmarks: q.get('allowWatchBookmarks') === 'true' || q.get('allowWatchBookmarks') === '1',
        sendInitialEvents: q.get('sendInitialEvents') === 'true',
        timeoutSeconds: timeout ? parseInt(timeout, 10) : undefined,
        bookmarkIntervalMs: req.bookmarkIntervalMs,
      },
    };
  }

  private checkName(r: ResourceDef, name: string): void {
    if (!isDns1123Subdomain(name)) {
      throw errors.invalid(r.kind, r.group, name, [
        {
          field: 'metadata.name',
          type: 'FieldValueInvalid',
          detail: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
        },
      ]);
    }
  }

  /** The CRD's structural schema, checked before any webhook (apiextensions-apiserver validation.go). */
  private checkSchema(r: ResourceDef, obj: KubeObject, old?: KubeObject): void {
    if (r.builtIn) return;
    const causes = crdSchemaCauses(r.kind, obj, old);
    if (causes.length) throw errors.invalid(r.kind, r.group, obj.metadata.name ?? '', causes);
  }

  private create(req: RestRequest): Reply {
    const r = req.resource;
    const dryRun = dryRunOf(req.query);
    const input = clone(requireObject(req.body, req.rawBody));
    if (input.metadata.namespace && input.metadata.namespace !== req.namespace) {
      throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    input.metadata.namespace = req.namespace;
    if (!input.metadata.name && input.metadata.generateName) {
      input.metadata.name = `${input.metadata.generateName}${randomBytes(4).toString('hex').slice(0, 5)}`;
    }
    const name = input.metadata.name ?? '';
    if (!name) {
      throw errors.invalid(r.kind, r.group, '', [
        {
          field: 'metadata.name',
          type: 'FieldValueRequired',
          detail: 'Required value: name or generateName is required',
        },
      ]);
    }
    this.checkName(r, name);
    for (const k of ['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'generation'] as const)
      delete input.metadata[k];
    if (r.statusSubresource && !r.builtIn) delete input.status;
    if (this.store.get(r, req.namespace, name)) throw errors.alreadyExists(gr(r), name);
    this.checkSchema(r, input);
    admissionFor(this.store, r, this.settings).create?.(input);
    const created = this.store.create(r, input, { dryRun });
    return json(201, present(created, r, req.version));
  }

  /** Fold a client's full object onto the stored one, honouring the status subresource split. */
  private merge(
    r: ResourceDef,
    current: KubeObject,
    incoming: KubeObject,
    subresource: string | undefined,
  ): KubeObject {
    if (subresource === 'status') {
      return {
        ...current,
        status: incoming.status,
        metadata: { ...current.metadata, resourceVersion: incoming.metadata.resourceVersion },
      };
    }
    const next: KubeObject = { ...incoming, metadata: { ...incoming.metadata } };
    if (r.statusSubresource && !r.builtIn) {
      if (current.status !== undefined) next.status = current.status;
      else delete next.status;
    }
    // System-owned metadata cannot be changed by clients.
    next.metadata.uid = current.metadata.uid;
    next.metadata.creationTimestamp = current.metadata.creationTimestamp;
    next.metadata.generation = current.metadata.generation;
    next.metadata.namespace = current.metadata.namespace;
    if (current.metadata.deletionTimestamp) next.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
    else delete next.metadata.deletionTimestamp;
    return next;
  }

  private commit(req: RestRequest, current: KubeObject, next: KubeObject, dryRun: boolean): Reply {
    const r = req.resource;
    if (next.metadata.name !== current.metadata.name) {
      throw errors.badRequest(
        `the name of the object (${String(next.metadata.name)}) does not match the name on the URL (${String(current.metadata.name)})`,
      );
    }
    const rv = next.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== current.metadata.resourceVersion)
      throw errors.modified(gr(r), current.metadata.name ?? '');
    if (req.subresource !== 'status') {
      this.checkSchema(r, next, current);
      admissionFor(this.store, r, this.settings).update?.(current, { ...next, status: current.status });
    }
    const stored = this.store.update(
      r,
      { ...next, metadata: { ...next.metadata, resourceVersion: current.metadata.resourceVersion } },
      { dryRun },
    );
    return json(200, present(stored, r, req.version));
  }

  private update(req: RestRequest): Reply {
    const r = req.resource;
    const dryRun = dryRunOf(req.query);
    const current = this.mustGet(req);
    const incoming = clone(requireObject(req.body, req.rawBody));
    if (incoming.metadata.namespace && incoming.metadata.namespace !== req.namespace) {
      throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    if (incoming.metadata.name !== undefined && incoming.metadata.name !== req.name) {
      throw errors.badRequest(
        `the name of the object (${incoming.metadata.name}) does not match the name on the URL (${req.name})`,
      );
    }
    incoming.metadata.name = req.name;
    if (!r.builtIn && !incoming.metadata.resourceVersion) {
      throw errors.invalid(r.kind, r.group, req.name!, [
        {
          field: 'metadata.resourceVersion',
          type: 'FieldValueInvalid',
          detail: 'Invalid value: 0x0: must be specified for an update',
        },
      ]);
    }
    return this.commit(req, current, this.merge(r, current, incoming, req.subresource), dryRun);
  }

  private patch(req: RestRequest): Reply {
    const r = req.resource;
    const type = req.contentType;
    const accepted = r.builtIn
      ? [JSON_PATCH, MERGE_PATCH, 'application/strategic-merge-patch+json', APPLY_PATCH]
      : [JSON_PATCH, MERGE_PATCH, APPLY_PATCH];
    if (type !== JSON_PATCH && type !== MERGE_PATCH) throw errors.unsupportedMediaType(accepted);
    const dryRun = dryRunOf(req.query);
    const current = this.mustGet(req);
    let patched: unknown;
    if (type === MERGE_PATCH) {
      if (req.body === undefined || req.body === null || typeof req.body !== 'object' || Array.isArray(req.body)) {
        throw errors.badRequest(
          'error decoding patch: json: cannot unmarshal into Go value of type map[string]interface {}',
        );
      }
      patched = mergePatch(current, req.body);
    } else {
      patched = applyJsonPatch(current, decodeJsonPatch(req.body));
    }
    if (!patched || typeof patched !== 'object' || Array.isArray(patched)) throw errors.unprocessable();
    const obj = patched as KubeObject;
    obj.metadata = obj.metadata ?? {};
    return this.commit(req, current, this.merge(r, current, obj, req.subresource), dryRun);
  }

  private delete(req: RestRequest): Reply {
    const r = req.resource;
    const dryRun = dryRunOf(req.query);
    const current = this.mustGet(req);
    const opts = (req.body && typeof req.body === 'object' ? req.body : {}) as {
      preconditions?: { uid?: string; resourceVersion?: string };
      dryRun?: string[];
    };
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== current.metadata.uid) {
      throw errors.conflict(
        gr(r),
        req.name!,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${current.metadata.uid}`,
      );
    }
    if (pre?.resourceVersion && pre.resourceVersion !== current.metadata.resourceVersion) {
      throw errors.conflict(
        gr(r),
        req.name!,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`,
      );
    }
    const { object } = this.store.delete(r, req.namespace, req.name!, {
      dryRun: dryRun || (Array.isArray(opts.dryRun) && opts.dryRun.length > 0),
    });
    return json(200, present(object, r, req.version));
  }
}
