// Rig mode: KubeVirt's controllers and virt-api's subresources against a real
// kube-apiserver. `tsx simulator/rig/main.ts CONFIG.json` where the file names the
// apiserver, the admin client certificate, virt-api's serving certificate and the
// front-proxy CA; prints one JSON line {"port":N} once virt-api listens.

import { readFileSync } from 'node:fs';
import { RigControllers } from './controllers';
import { RigEndpoints } from './endpoints';
import { Kube } from './kube';
import { RigRestores } from './restores';
import { RigSnapshots } from './snapshots';
import { RigVirtApi } from './virt-api';

export interface RigConfig {
  server: string;
  ca: string;
  adminCert: string;
  adminKey: string;
  servingCert: string;
  servingKey: string;
  frontProxyCA: string;
  allowedNames: string[];
  port: number;
  stepMs: number;
  /** The stand-in pod IP for EndpointSlices (an address in the rig's network namespace); none: no EndpointSlices. */
  podIP?: string;
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: simulator/rig/main.ts CONFIG.json');
    process.exit(2);
  }
  const cfg = JSON.parse(readFileSync(file, 'utf8')) as RigConfig;
  const kube = new Kube({ server: cfg.server, ca: cfg.ca, cert: cfg.adminCert, key: cfg.adminKey });
  const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`);
  const controllers = new RigControllers(kube, { stepMs: cfg.stepMs, log });
  await controllers.start();
  const endpoints = cfg.podIP ? new RigEndpoints(kube, controllers.vmis, cfg.podIP, cfg.stepMs, log) : undefined;
  const snapshots = new RigSnapshots(kube, cfg.stepMs, log);
  const restores = new RigRestores(kube, cfg.stepMs, log);
  controllers.onVmiChange = (k) => {
    endpoints?.vmiChanged(k);
    snapshots.sourceChanged(k);
    restores.targetChanged(k);
  };
  controllers.onVmChange = (k, deleted) => {
    snapshots.sourceChanged(k);
    restores.targetChanged(k, deleted);
  };
  snapshots.onChange = (k) => restores.snapshotChanged(k);
  await Promise.all([endpoints?.start(), snapshots.start(), restores.start()]);
  const api = new RigVirtApi(kube, controllers, {
    cert: readFileSync(cfg.servingCert),
    key: readFileSync(cfg.servingKey),
    clientCA: readFileSync(cfg.frontProxyCA),
    allowedNames: cfg.allowedNames,
  });
  api.server.listen(cfg.port, '127.0.0.1', () => {
    const addr = api.server.address();
    process.stdout.write(`${JSON.stringify({ port: typeof addr === 'object' && addr ? addr.port : 0 })}\n`);
  });
  const stop = () => {
    controllers.stop();
    endpoints?.stop();
    snapshots.stop();
    restores.stop();
    api.server.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
