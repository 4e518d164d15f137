// The kubelet stand-in: a pod is one process in its own network namespace (network.ts),
// started from a pod template as the kubelet would: env resolved from the downward API,
// ConfigMaps and Secrets; the ServiceAccount volume (a token from the TokenRequest API) at the
// path in-cluster clients read, and KUBERNETES_SERVICE_HOST/PORT; restarted when it exits;
// Ready when its readinessProbe answers. Only what the rig's workloads use is supported,
// and a template asking for more is refused with a log line, not half run.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import type { Kube } from '../../../../simulator/rig/kube';
import type { PodNet } from './network';

const SA_DIR = '/run/secrets/kubernetes.io/serviceaccount';

export interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec: any;
}

export interface PodOptions {
  name: string;
  namespace: string;
  template: PodTemplate;
  /** Extra labels and env the owner adds (Serving adds PORT, K_SERVICE, …). */
  labels?: Record<string, string>;
  env?: Record<string, string>;
}

export interface NodeContext {
  kube: Kube;
  dir: string;
  /** https://<bridge address>:<port>: the API as a pod reaches it. */
  server: string;
  caData: string;
  /** container image → argv of the program that stands for it */
  programFor(image: string): string[] | undefined;
  log(m: string): void;
}

export class Pod {
  ready = false;
  private child?: ChildProcess;
  private stopped = false;
  private probeTimer?: NodeJS.Timeout;
  readonly labels: Record<string, string>;
  readonly container: any;

  constructor(
    private readonly ctx: NodeContext,
    readonly opts: PodOptions,
    readonly net: PodNet,
    private readonly onReady: () => void,
  ) {
    this.labels = { ...(opts.template.metadata?.labels ?? {}), ...(opts.labels ?? {}) };
    this.container = opts.template.spec.containers[0];
  }

  get name(): string {
    return this.opts.name;
  }

  get namespace(): string {
    return this.opts.namespace;
  }

  /** A container port by name or number, as a Service's targetPort names it. */
  port(target: number | string | undefined, fallback: number): number {
    if (typeof target === 'number') return target;
    const named = (this.container.ports ?? []).find((p: any) => p.name === target);
    if (named) return named.containerPort;
    return /^\d+$/.test(String(target ?? '')) ? Number(target) : fallback;
  }

  async start(): Promise<void> {
    const argv = this.ctx.programFor(this.container.image);
    if (!argv) throw new Error(`no program stands for image ${this.container.image}`);
    const env = await this.env();
    const saDir = await this.serviceAccount(this.opts.template.spec.serviceAccountName ?? 'default');
    const logFile = path.join(this.ctx.dir, 'pods', `${this.opts.namespace}_${this.opts.name}.log`);
    const run = () => {
      if (this.stopped) return;
      const fd = openSync(logFile, 'a');
      // In the pod's mount namespace (ip netns exec makes one), a fresh /run holds the
      // ServiceAccount volume at the path in-cluster clients read.
      const script = `mount -t tmpfs -o size=1m,mode=755 tmpfs /run && mkdir -p ${SA_DIR} && cp "$0"/* ${SA_DIR}/ && exec "$@"`;
      const command = [...argv, ...(this.container.args ?? [])];
      const child = spawn('ip', ['netns', 'exec', this.net.netns, 'sh', '-c', script, saDir, ...command], {
        env,
        stdio: ['ignore', fd, fd],
      });
      closeSync(fd);
      this.child = child;
      writeFileSync(path.join(this.ctx.dir, 'pods', `${this.opts.namespace}_${this.opts.name}.pid`), `${child.pid}\n`);
      child.once('exit', (code, signal) => {
        this.setReady(false);
        if (this.stopped) return;
        // restartPolicy Always, with a short fixed back-off instead of the kubelet's growing one.
        this.ctx.log(`pod ${this.opts.namespace}/${this.opts.name} exited (${code ?? signal}); restarting`);
        setTimeout(run, 1000);
      });
    };
    run();
    this.probe();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.probeTimer);
    this.setReady(false);
    // `ip netns exec` execs the program, so the pid is the program's own.
    this.child?.kill('SIGTERM');
    const child = this.child;
    setTimeout(() => child?.kill('SIGKILL'), 5000).unref();
  }

  private setReady(ready: boolean): void {
    if (this.ready === ready) return;
    this.ready = ready;
    this.onReady();
  }

  /** readinessProbe.httpGet, every second, from the node as the kubelet probes; no probe: Ready once started. */
  private probe(): void {
    const get = this.container.readinessProbe?.httpGet;
    // The kubelet puts the leading slash in front of a path that has none.
    const probePath = `/${String(get?.path ?? '').replace(/^\//, '')}`;
    if (!get) {
      this.setReady(true);
      return;
    }
    const port = this.port(get.port, 8080);
    const lib = get.scheme === 'HTTPS' ? https : http;
    const tick = () => {
      if (this.stopped) return;
      const req = lib.get(
        {
          host: this.net.ip,
          port,
          path: probePath,
          timeout: 1000,
          rejectUnauthorized: false,
          // The kubelet's own User-Agent: Knative's servers answer probes by it (or by K-Kubelet-Probe).
          headers: {
            'User-Agent': 'kube-probe/1.36',
            ...Object.fromEntries((get.httpHeaders ?? []).map((h: any) => [h.name, h.value])),
          },
        },
        (res) => {
          res.resume();
          this.setReady((res.statusCode ?? 500) < 400);
        },
      );
      req.on('error', () => this.setReady(false));
      req.on('timeout', () => req.destroy());
      this.probeTimer = setTimeout(tick, 1000);
    };
    tick();
  }

  private async env(): Promise<NodeJS.ProcessEnv> {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: '/tmp', HOSTNAME: this.opts.name };
    const mounts = await this.volumes();
    for (const e of this.container.env ?? []) {
      env[e.name] = await this.envValue(e);
      for (const [from, to] of mounts)
        if (env[e.name]?.startsWith(from)) env[e.name] = to + env[e.name]!.slice(from.length);
    }
    Object.assign(env, this.opts.env ?? {});
    // What the kubelet sets for the `kubernetes` Service; here the API's address on the bridge.
    const api = new URL(this.ctx.server);
    env.KUBERNETES_SERVICE_HOST = api.hostname;
    env.KUBERNETES_SERVICE_PORT = api.port;
    return env;
  }

  private async envValue(e: any): Promise<string> {
    if (e.value !== undefined || !e.valueFrom) return String(e.value ?? '');
    const from = e.valueFrom;
    if (from.fieldRef) {
      const f = from.fieldRef.fieldPath as string;
      const fields: Record<string, string> = {
        'metadata.name': this.opts.name,
        'metadata.namespace': this.opts.namespace,
        'status.podIP': this.net.ip,
        'spec.nodeName': 'rig-node-1',
        'spec.serviceAccountName': this.opts.template.spec.serviceAccountName ?? 'default',
      };
      if (!(f in fields)) throw new Error(`env ${e.name}: fieldRef ${f} is not stood in`);
      return fields[f]!;
    }
    const ref = from.configMapKeyRef ?? from.secretKeyRef;
    if (ref) {
      const kind = from.configMapKeyRef ? 'configmaps' : 'secrets';
      const obj: any = await this.ctx.kube.get(`/api/v1/namespaces/${this.opts.namespace}/${kind}/${ref.name}`);
      const raw = obj?.data?.[ref.key];
      if (raw === undefined) {
        if (ref.optional) return '';
        // The kubelet does not start such a container (CreateContainerConfigError).
        throw new Error(`env ${e.name}: ${kind} ${ref.name} has no key ${ref.key}`);
      }
      return kind === 'secrets' ? Buffer.from(raw, 'base64').toString('utf8') : raw;
    }
    if (from.resourceFieldRef) return '0';
    throw new Error(`env ${e.name}: this valueFrom is not stood in`);
  }

  /** ConfigMap volumes written to the pod's directory; paths under a mount are rewritten to it (no mount namespace). */
  private async volumes(): Promise<Array<[string, string]>> {
    const out: Array<[string, string]> = [];
    for (const m of this.container.volumeMounts ?? []) {
      const vol = (this.opts.template.spec.volumes ?? []).find((v: any) => v.name === m.name);
      if (!vol?.configMap) continue;
      const dir = path.join(this.ctx.dir, 'pods', `${this.opts.namespace}_${this.opts.name}`, m.name);
      mkdirSync(dir, { recursive: true });
      const cm: any = await this.ctx.kube.get(
        `/api/v1/namespaces/${this.opts.namespace}/configmaps/${vol.configMap.name}`,
      );
      if (!cm && !vol.configMap.optional)
        throw new Error(`volume ${m.name}: ConfigMap ${vol.configMap.name} not found`);
      for (const [k, v] of Object.entries(cm?.data ?? {})) writeFileSync(path.join(dir, k), String(v));
      out.push([m.mountPath, dir]);
    }
    return out;
  }

  /** The projected ServiceAccount volume's files: a token from the TokenRequest API, the cluster CA, the namespace. */
  private async serviceAccount(sa: string): Promise<string> {
    const tr: any = await this.ctx.kube.request(
      'POST',
      `/api/v1/namespaces/${this.opts.namespace}/serviceaccounts/${sa}/token`,
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 86400 } },
    );
    const dir = path.join(this.ctx.dir, 'pods', `${this.opts.namespace}_${this.opts.name}`, 'serviceaccount');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'token'), tr.status.token, { mode: 0o600 });
    writeFileSync(path.join(dir, 'ca.crt'), Buffer.from(this.ctx.caData, 'base64'));
    writeFileSync(path.join(dir, 'namespace'), this.opts.namespace);
    return dir;
  }
}
