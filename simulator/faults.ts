// Fault injection: rules matched against each API request (method and a regular
// expression over path+query), applied after authentication, counted down by `times`.

export interface FaultRule {
  method?: string;
  path?: RegExp | string;
  times?: number;
  status?: number;
  message?: string;
  /**
   * Answer `status` with this text instead of a Status object: what a proxy or
   * load balancer between the client and kube-apiserver sends (an HTML error
   * page), which the API server itself never does (staging/src/k8s.io/apiserver
   * pkg/endpoints/handlers/responsewriters/status.go always writes a Status).
   */
  rawBody?: string;
  rawContentType?: string;
  retryAfterSeconds?: number;
  delayMs?: number;
  /** Destroy the socket without answering. */
  drop?: boolean;
  /** Never answer. */
  hang?: boolean;
  /** For watch requests: end the stream after N events. */
  watchEndAfterEvents?: number;
}

interface ActiveRule {
  id: number;
  rule: FaultRule;
  pattern?: RegExp;
  remaining: number;
}

export interface FaultDescription {
  id: number;
  method?: string;
  path?: string;
  remaining: number | null;
  status?: number;
  delayMs?: number;
  drop?: boolean;
  hang?: boolean;
  watchEndAfterEvents?: number;
}

export class Faults {
  private rules: ActiveRule[] = [];
  private nextId = 1;

  add(rule: FaultRule): number {
    const id = this.nextId++;
    const pattern =
      rule.path === undefined ? undefined : typeof rule.path === 'string' ? new RegExp(rule.path) : rule.path;
    this.rules.push({ id, rule, pattern, remaining: rule.times ?? Infinity });
    return id;
  }

  remove(id: number): boolean {
    const before = this.rules.length;
    this.rules = this.rules.filter((r) => r.id !== id);
    return this.rules.length !== before;
  }

  clear(): void {
    this.rules = [];
  }

  list(): FaultDescription[] {
    return this.rules.map((r) => ({
      id: r.id,
      method: r.rule.method,
      path: r.pattern?.source,
      remaining: Number.isFinite(r.remaining) ? r.remaining : null,
      status: r.rule.status,
      delayMs: r.rule.delayMs,
      drop: r.rule.drop,
      hang: r.rule.hang,
      watchEndAfterEvents: r.rule.watchEndAfterEvents,
    }));
  }

  /** The first matching rule, consuming one of its uses. */
  take(method: string, pathAndQuery: string): FaultRule | undefined {
    for (const r of this.rules) {
      if (r.rule.method && r.rule.method.toUpperCase() !== method.toUpperCase()) continue;
      if (r.pattern) {
        r.pattern.lastIndex = 0;
        if (!r.pattern.test(pathAndQuery)) continue;
      }
      r.remaining--;
      if (r.remaining <= 0) this.rules = this.rules.filter((x) => x !== r);
      return r.rule;
    }
    return undefined;
  }
}

/** Parse a rule posted over HTTP, where `path` is a regular expression source. */
export function ruleFromJson(body: unknown): FaultRule {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('fault rule must be a JSON object');
  const b = body as Record<string, unknown>;
  const rule: FaultRule = {};
  if (typeof b.method === 'string') rule.method = b.method;
  if (typeof b.path === 'string') rule.path = new RegExp(b.path);
  for (const k of ['times', 'status', 'retryAfterSeconds', 'delayMs', 'watchEndAfterEvents'] as const) {
    if (b[k] !== undefined && b[k] !== null) {
      if (typeof b[k] !== 'number') throw new Error(`${k} must be a number`);
      rule[k] = b[k] as number;
    }
  }
  if (typeof b.message === 'string') rule.message = b.message;
  if (typeof b.rawBody === 'string') rule.rawBody = b.rawBody;
  if (typeof b.rawContentType === 'string') rule.rawContentType = b.rawContentType;
  if (b.drop === true) rule.drop = true;
  if (b.hang === true) rule.hang = true;
  return rule;
}
