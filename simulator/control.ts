// The simulator's own HTTP endpoints under /_sim/, for tests and tools running in another
// process: fault rules, the call log, settling and compaction. Not authenticated, not
// recorded.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { ruleFromJson, type Faults } from './faults';
import type { Recorder } from './recorder';
import type { ObjectStore } from './store';

export interface ControlDeps {
  faults: Faults;
  recorder: Recorder;
  store: ObjectStore;
  settle(timeoutMs?: number): Promise<void>;
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
    const one = /^\/_sim\/faults\/(\d+)$/.exec(path);
    if (one && method === 'DELETE') return send(res, deps.faults.remove(Number(one[1])) ? 200 : 404, {});
    if (path === '/_sim/settle' && (method === 'POST' || method === 'GET')) {
      const t = url.searchParams.get('timeoutMs');
      await deps.settle(t ? Number(t) : undefined);
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
