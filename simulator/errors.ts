// metav1.Status errors, shaped like apimachinery's helpers so a client sees exactly what
// kube-apiserver or virt-api would send for the same mistake.

import type { StatusObject } from './types';

export interface GroupResource {
  group: string;
  resource: string;
}

export class ApiError extends Error {
  readonly status: StatusObject;
  readonly headers: Record<string, string>;

  constructor(status: StatusObject, headers: Record<string, string> = {}) {
    super(status.message ?? status.reason ?? `HTTP ${status.code}`);
    this.status = status;
    this.headers = headers;
  }

  get code(): number {
    return this.status.code;
  }
}

export function qualified(gr: GroupResource): string {
  return gr.group ? `${gr.resource}.${gr.group}` : gr.resource;
}

function failure(code: number, reason: string, message: string, details?: StatusObject['details']): StatusObject {
  // apimachinery's field order (details before code) keeps bodies byte-comparable.
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

function resourceDetails(gr: GroupResource, name: string): NonNullable<StatusObject['details']> {
  return gr.group ? { name, group: gr.group, kind: gr.resource } : { name, kind: gr.resource };
}

export const errors = {
  notFound(gr: GroupResource, name: string): ApiError {
    return new ApiError(failure(404, 'NotFound', `${qualified(gr)} "${name}" not found`, resourceDetails(gr, name)));
  },
  conflict(gr: GroupResource, name: string, text: string): ApiError {
    return new ApiError(
      failure(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${qualified(gr)} "${name}": ${text}`,
        resourceDetails(gr, name),
      ),
    );
  },
  modified(gr: GroupResource, name: string): ApiError {
    return errors.conflict(
      gr,
      name,
      'the object has been modified; please apply your changes to the latest version and try again',
    );
  },
  alreadyExists(gr: GroupResource, name: string): ApiError {
    return new ApiError(
      failure(409, 'AlreadyExists', `${qualified(gr)} "${name}" already exists`, resourceDetails(gr, name)),
    );
  },
  forbidden(gr: GroupResource, name: string, text: string): ApiError {
    return new ApiError(
      failure(403, 'Forbidden', `${qualified(gr)} "${name}" is forbidden: ${text}`, resourceDetails(gr, name)),
    );
  },
  badRequest(message: string): ApiError {
    return new ApiError(failure(400, 'BadRequest', message));
  },
  internal(text: string): ApiError {
    return new ApiError(
      failure(500, 'InternalError', `Internal error occurred: ${text}`, { causes: [{ message: text }] }),
    );
  },
  /** apiserver-side field validation (NewInvalid): qualified by Kind, not resource. */
  invalid(
    kind: string,
    group: string,
    name: string,
    causes: Array<{ field: string; type: string; detail: string }>,
  ): ApiError {
    const qualifiedKind = group ? `${kind}.${group}` : kind;
    const text = causes.map((c) => `${c.field}: ${c.detail}`).join(', ');
    const list = causes.length > 1 ? `[${text}]` : text;
    return new ApiError(
      failure(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${list}`, {
        name: name || undefined,
        group: group || undefined,
        kind,
        causes: causes.map((c) => ({ reason: c.type, message: c.detail, field: c.field })),
      }),
    );
  },
  /** A validating webhook denial as kube-apiserver relays it. */
  webhookDenied(webhook: string, causes: Array<{ type: string; message: string; field: string }>): ApiError {
    const message = causes.map((c) => c.message).join(', ');
    return new ApiError(
      failure(422, 'Invalid', `admission webhook "${webhook}" denied the request: ${message}`, { causes }),
    );
  },
  /** A webhook answering with a 400 result (pkg/util/webhooks/webhooks.go ToAdmissionResponseError). */
  webhookBadRequest(webhook: string, message: string): ApiError {
    return new ApiError(failure(400, 'BadRequest', `admission webhook "${webhook}" denied the request: ${message}`));
  },
  /** Generic 422 as produced for a failing JSON-patch operation (NewGenericServerResponse). */
  unprocessable(): ApiError {
    return new ApiError(failure(422, 'Invalid', 'the server rejected our request due to an error in our request', {}));
  },
  unsupportedMediaType(accepted: string[]): ApiError {
    return new ApiError(
      failure(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`,
      ),
    );
  },
  methodNotAllowed(): ApiError {
    return new ApiError(
      failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {}),
    );
  },
  pathNotFound(): ApiError {
    return new ApiError(failure(404, 'NotFound', 'the server could not find the requested resource', {}));
  },
  /** NewResourceExpired; a paged list's 410 also offers a token to go on from (etcd3/errors.go). */
  expired(message: string, continueToken?: string): ApiError {
    const status = failure(410, 'Expired', message);
    if (continueToken) status.metadata = { continue: continueToken };
    return new ApiError(status);
  },
  /** storage/errors.go NewTooLargeResourceVersionError as etcd3/store.go raises it (no retry delay). */
  tooLargeResourceVersion(asked: number, current: number): ApiError {
    return new ApiError(
      failure(504, 'Timeout', `Timeout: Too large resource version: ${asked}, current: ${current}`, {
        causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
      }),
    );
  },
  unauthorized(): ApiError {
    return new ApiError(failure(401, 'Unauthorized', 'Unauthorized'));
  },
  /** Injected or synthetic failures keyed by HTTP code, with the reason apimachinery uses. */
  forCode(code: number, message?: string, retryAfterSeconds?: number): ApiError {
    const table: Record<number, [string, string]> = {
      400: ['BadRequest', 'the server rejected our request for an unknown reason'],
      401: ['Unauthorized', 'Unauthorized'],
      403: ['Forbidden', 'forbidden'],
      404: ['NotFound', 'the server could not find the requested resource'],
      405: ['MethodNotAllowed', 'the server does not allow this method on the requested resource'],
      409: ['Conflict', 'the server reported a conflict'],
      410: ['Expired', 'the resource version is too old'],
      422: ['Invalid', 'the server rejected our request due to an error in our request'],
      429: ['TooManyRequests', 'Too many requests, please try again later.'],
      500: ['InternalError', 'Internal error occurred: injected fault'],
      502: ['InternalError', 'Bad gateway'],
      503: ['ServiceUnavailable', 'the server is currently unable to handle the request'],
      504: [
        'Timeout',
        'the server was unable to return a response in the time allotted, but may still be processing the request',
      ],
    };
    const [reason, fallback] =
      table[code] ??
      (code >= 500
        ? ['InternalError', `an error on the server has prevented the request from succeeding`]
        : ['Unknown', `the server responded with the status code ${code}`]);
    const details = retryAfterSeconds !== undefined ? { retryAfterSeconds } : undefined;
    const headers: Record<string, string> =
      retryAfterSeconds !== undefined ? { 'Retry-After': String(retryAfterSeconds) } : {};
    return new ApiError(failure(code, reason, message ?? fallback, details), headers);
  },
};
