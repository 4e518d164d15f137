// The rig's programs, built from Go modules once per go.mod/go.sum/Go version and kept outside
// the repository, in $VIRTWAKE_RIG_CACHE or ~/.cache/virtwake-rig/<hash>/:
// - test/cluster/go.mod: kube-apiserver and etcd;
// - test/cluster/knative/go.mod: Knative Eventing's controllers, webhook and data plane.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const MODULE_DIR = path.join(__dirname, '..');
export const KNATIVE_MODULE_DIR = path.join(MODULE_DIR, 'knative');

/** The release go.mod requires; stamped into the binary so /version says it (Knative checks the minimum). */
export const KUBERNETES_VERSION = 'v1.36.3';
const LDFLAGS = [
  `-X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION}`,
  `-X k8s.io/component-base/version.gitMajor=1`,
  `-X k8s.io/component-base/version.gitMinor=36`,
  `-X k8s.io/component-base/version.gitTreeState=clean`,
].join(' ');

/** The Eventing release knative/go.mod pins (knative-v1.22.2, what scripts/cluster-up.sh installs). */
export const EVENTING_MODULE = 'knative.dev/eventing';
/** Serving is not run; the rig reads its Service CRD and aggregated roles (knative-v1.23.0, as cluster-up.sh). */
export const SERVING_MODULE = 'knative.dev/serving@v0.50.0';

/** The Eventing programs, by the `ko://` image name Eventing's own manifests give them. */
export const KNATIVE_PROGRAMS = [
  'controller',
  'webhook',
  'mtchannel_broker',
  'broker/ingress',
  'broker/filter',
  'in_memory/channel_controller',
  'in_memory/channel_dispatcher',
  'apiserver_receive_adapter',
  'mtping',
].map((cmd) => ({
  image: `ko://${EVENTING_MODULE}/cmd/${cmd}`,
  pkg: `${EVENTING_MODULE}/cmd/${cmd}`,
  file: cmd.replace('/', '-'),
}));

export interface Binaries {
  dir: string;
  kubeApiserver: string;
  etcd: string;
}

export interface KnativeBinaries {
  dir: string;
  /** `ko://…` image → program path. */
  byImage: Record<string, string>;
  /** Where the module cache holds Eventing's and Serving's sources (their config/ manifests). */
  eventingDir: string;
  servingDir: string;
}

function cacheDir(moduleDir: string, files: string[], extra: string): string {
  const h = createHash('sha256');
  for (const f of files) h.update(readFileSync(path.join(moduleDir, f)));
  h.update(execFileSync('go', ['version'], { encoding: 'utf8' }));
  h.update(extra);
  const root = process.env.VIRTWAKE_RIG_CACHE || path.join(os.homedir(), '.cache', 'virtwake-rig');
  return path.join(root, h.digest('hex').slice(0, 16));
}

export function binaries(): Binaries {
  const dir = cacheDir(MODULE_DIR, ['go.mod', 'go.sum', 'tools.go', 'cmd/etcd/main.go'], LDFLAGS);
  return { dir, kubeApiserver: path.join(dir, 'kube-apiserver'), etcd: path.join(dir, 'etcd') };
}

function buildMissing(cwd: string, targets: Array<[string, string, string[]]>, log: (m: string) => void): void {
  for (const [out, pkg, flags] of targets) {
    if (existsSync(out)) continue;
    const logFile = `${out}.build.log`;
    log(`building ${pkg} (log: ${logFile})`);
    const started = Date.now();
    const fd = openSync(logFile, 'w');
    const r = spawnSync('go', ['build', ...flags, '-o', `${out}.tmp`, pkg], {
      cwd,
      env: { ...process.env, GOFLAGS: '-mod=mod' },
      stdio: ['ignore', fd, fd],
    });
    if (r.status !== 0) throw new Error(`go build ${pkg} failed (exit ${r.status}); see ${logFile}`);
    renameSync(`${out}.tmp`, out);
    log(`built ${pkg} in ${Math.round((Date.now() - started) / 1000)} s`);
  }
}

/** Build what is missing; the Go build cache and module cache make a rebuild cheap. */
export function ensureBinaries(log: (m: string) => void = () => undefined): Binaries {
  const b = binaries();
  mkdirSync(b.dir, { recursive: true });
  buildMissing(
    MODULE_DIR,
    [
      [b.etcd, './cmd/etcd', [`-ldflags=${LDFLAGS}`]],
      [b.kubeApiserver, 'k8s.io/kubernetes/cmd/kube-apiserver', [`-ldflags=${LDFLAGS}`]],
    ],
    log,
  );
  return b;
}

function moduleDir(cwd: string, args: string[]): string {
  const out = execFileSync('go', args, { cwd, encoding: 'utf8', env: { ...process.env, GOFLAGS: '-mod=mod' } });
  const dir = (JSON.parse(out) as { Dir?: string }).Dir;
  if (!dir) throw new Error(`go ${args.join(' ')} named no directory`);
  return dir;
}

export function ensureKnativeBinaries(log: (m: string) => void = () => undefined): KnativeBinaries {
  const dir = cacheDir(KNATIVE_MODULE_DIR, ['go.mod', 'go.sum', 'tools.go'], '');
  mkdirSync(dir, { recursive: true });
  buildMissing(
    KNATIVE_MODULE_DIR,
    KNATIVE_PROGRAMS.map((p) => [path.join(dir, p.file), p.pkg, []]),
    log,
  );
  const byImage = Object.fromEntries(KNATIVE_PROGRAMS.map((p) => [p.image, path.join(dir, p.file)]));
  const eventingDir = moduleDir(KNATIVE_MODULE_DIR, ['list', '-m', '-json', EVENTING_MODULE]);
  // Outside any module, so the clone's go.sum is left alone.
  const servingDir = moduleDir(os.tmpdir(), ['mod', 'download', '-json', SERVING_MODULE]);
  return { dir, byImage, eventingDir, servingDir };
}
