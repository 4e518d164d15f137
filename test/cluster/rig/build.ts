// kube-apiserver and etcd built from their Go modules (test/cluster/go.mod), once per
// go.mod/go.sum/Go version: the binaries live outside the repository, in
// $VIRTWAKE_RIG_CACHE or ~/.cache/virtwake-rig/<hash>/.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, renameSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const MODULE_DIR = path.join(__dirname, '..');

/** The release go.mod requires; stamped into the binary so /version says it (Knative checks the minimum). */
export const KUBERNETES_VERSION = 'v1.36.3';
const LDFLAGS = [
  `-X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION}`,
  `-X k8s.io/component-base/version.gitMajor=1`,
  `-X k8s.io/component-base/version.gitMinor=36`,
  `-X k8s.io/component-base/version.gitTreeState=clean`,
].join(' ');

export interface Binaries {
  dir: string;
  kubeApiserver: string;
  etcd: string;
}

function cacheKey(): string {
  const h = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'tools.go', 'cmd/etcd/main.go'])
    h.update(readFileSync(path.join(MODULE_DIR, f)));
  h.update(execFileSync('go', ['version'], { encoding: 'utf8' }));
  h.update(LDFLAGS);
  return h.digest('hex').slice(0, 16);
}

export function binaries(): Binaries {
  const root = process.env.VIRTWAKE_RIG_CACHE || path.join(os.homedir(), '.cache', 'virtwake-rig');
  const dir = path.join(root, cacheKey());
  return { dir, kubeApiserver: path.join(dir, 'kube-apiserver'), etcd: path.join(dir, 'etcd') };
}

/** Build what is missing; the Go build cache and module cache make a rebuild cheap. */
export function ensureBinaries(log: (m: string) => void = () => undefined): Binaries {
  const b = binaries();
  mkdirSync(b.dir, { recursive: true });
  const targets: Array<[string, string]> = [
    [b.etcd, './cmd/etcd'],
    [b.kubeApiserver, 'k8s.io/kubernetes/cmd/kube-apiserver'],
  ];
  for (const [out, pkg] of targets) {
    if (existsSync(out)) continue;
    const logFile = `${out}.build.log`;
    log(`building ${pkg} (log: ${logFile})`);
    const started = Date.now();
    const fd = openSync(logFile, 'w');
    const r = spawnSync('go', ['build', `-ldflags=${LDFLAGS}`, '-o', `${out}.tmp`, pkg], {
      cwd: MODULE_DIR,
      env: { ...process.env, GOFLAGS: '-mod=mod' },
      stdio: ['ignore', fd, fd],
    });
    if (r.status !== 0) throw new Error(`go build ${pkg} failed (exit ${r.status}); see ${logFile}`);
    renameSync(`${out}.tmp`, out);
    log(`built ${pkg} in ${Math.round((Date.now() - started) / 1000)} s`);
  }
  return b;
}
