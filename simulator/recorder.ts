// Every API request served after authentication, described the way an RBAC check sees
// it (verb, group, resource, subresource), so tests can assert least privilege.

export interface RecordedCall {
  method: string;
  path: string;
  verb: string;
  group: string;
  version: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  status: number;
  dryRun: boolean;
  /** Query parameters as sent. */
  query?: Record<string, string>;
  contentType?: string;
  /** Parsed JSON request body, when there was one. */
  body?: unknown;
}

export function rbacVerb(method: string, hasName: boolean, watch: boolean): string {
  switch (method.toUpperCase()) {
    case 'GET':
    case 'HEAD':
      if (watch) return 'watch';
      return hasName ? 'get' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return hasName ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

export class Recorder {
  readonly calls: RecordedCall[] = [];

  record(c: RecordedCall): void {
    this.calls.push(c);
  }

  reset(): void {
    this.calls.length = 0;
  }
}
