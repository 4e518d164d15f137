// A minimal client for a real kube-apiserver, authenticated with the cluster admin's client
// certificate, as KubeVirt's controllers run with their own privileged ServiceAccount.
// JSON in, JSON out; a non-2xx answer throws KubeError carrying the Status.

import https from 'node:https';
import { readFileSync } from 'node:fs';

export interface KubeAccess {
  server: string;
  ca: string;
  cert: string;
  key: string;
}

export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`kube-apiserver answered ${status}: ${JSON.stringify(body).slice(0, 400)}`);
  }
}

export interface WatchEvent {
  type: string;
  object: unknown;
}

export class Kube {
  private readonly agent: https.Agent;
  private readonly base: URL;

  constructor(access: KubeAccess) {
    this.base = new URL(access.server);
    this.agent = new https.Agent({
      ca: readFileSync(access.ca),
      cert: readFileSync(access.cert),
      key: readFileSync(access.key),
      keepAlive: true,
      maxSockets: 16,
    });
  }

  request<T = unknown>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: this.base.hostname,
          port: this.base.port,
          path,
          method,
          agent: this.agent,
          headers: {
            Accept: 'application/json',
            ...(text === undefined ? {} : { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text) }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const raw = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = raw;
            try {
              parsed = raw ? JSON.parse(raw) : {};
            } catch {
              // not JSON: keep the text
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(parsed as T);
            else reject(new KubeError(status, parsed));
          });
        },
      );
      req.on('error', reject);
      if (text !== undefined) req.write(text);
      req.end();
    });
  }

  get<T = unknown>(path: string): Promise<T | undefined> {
    return this.request<T>('GET', path).catch((e) => {
      if (e instanceof KubeError && e.status === 404) return undefined;
      throw e;
    });
  }

  /**
   * One watch stream from `resourceVersion`; resolves when the server ends it. Events arrive in
   * order through onEvent; an ERROR event (410 after compaction) is passed on like the others.
   */
  watch(path: string, resourceVersion: string, onEvent: (e: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    const sep = path.includes('?') ? '&' : '?';
    const full = `${path}${sep}watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(resourceVersion)}`;
    return new Promise((resolve, reject) => {
      const req = https.request(
        { host: this.base.hostname, port: this.base.port, path: full, method: 'GET', agent: this.agent, signal },
        (res) => {
          if ((res.statusCode ?? 0) >= 300) {
            res.resume();
            reject(new KubeError(res.statusCode ?? 0, `watch ${path}`));
            return;
          }
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buf += chunk;
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl).trim();
              buf = buf.slice(nl + 1);
              if (line) onEvent(JSON.parse(line) as WatchEvent);
            }
          });
          res.on('end', () => resolve());
          res.on('error', () => resolve());
        },
      );
      req.on('error', (e) => (signal.aborted ? resolve() : reject(e)));
      req.end();
    });
  }
}
