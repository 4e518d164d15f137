// The pod network of the rig's node stand-in: one Linux bridge on the host, and a network
// namespace joined to it by a veth pair for each pod (a real cluster gives each pod its own
// IP the same way, through its CNI plugin). Service ClusterIPs are added to the bridge as
// host addresses, so a pod reaches a ClusterIP through its default route and kube-apiserver
// (a host process) reaches it directly; the kube-proxy stand-in listens on them (proxy.ts).
// Cluster DNS is stood in by /etc/netns/<pod>/hosts, which `ip netns exec` mounts over
// /etc/hosts for the pod's process (ip-netns(8)).

import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

export interface NetworkSpec {
  /** Short id that makes names unique per rig (interface names have at most 15 characters). */
  id: string;
  /** The /24's first three octets, e.g. "10.214.7". */
  prefix: string;
}

export const bridgeName = (n: NetworkSpec) => `vwkb${n.id}`;
export const hostIP = (n: NetworkSpec) => `${n.prefix}.1`;

/** The rig's id and /24, from the pid of the process that starts it (several checkouts' rigs do not collide). */
export function networkFor(pid: number): NetworkSpec {
  return { id: String(pid % 100000), prefix: `10.214.${(pid >> 4) % 250}` };
}

export function createBridge(n: NetworkSpec): void {
  try {
    ip('link', 'add', bridgeName(n), 'type', 'bridge');
    ip('addr', 'add', `${hostIP(n)}/24`, 'dev', bridgeName(n));
    ip('link', 'set', bridgeName(n), 'up');
  } catch (e) {
    removeNetwork(n, []);
    const why = (e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message;
    throw new Error(`rig: cannot make the pod network bridge (ip link, as root): ${why}`, { cause: e });
  }
}

export interface PodNet {
  netns: string;
  ip: string;
}

/** A pod's namespace and address; `slot` 10..250 picks the address within the /24. */
export function createPodNet(n: NetworkSpec, slot: number): PodNet {
  const netns = `vwkp${n.id}-${slot}`;
  const host = `vk${n.id}h${slot}`;
  const peer = `vk${n.id}p${slot}`;
  const podIP = `${n.prefix}.${slot}`;
  removePodNet(netns);
  ip('netns', 'add', netns);
  ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
  ip('link', 'set', peer, 'netns', netns);
  ip('link', 'set', host, 'master', bridgeName(n), 'up');
  ip('netns', 'exec', netns, 'ip', 'addr', 'add', `${podIP}/24`, 'dev', peer);
  ip('netns', 'exec', netns, 'ip', 'link', 'set', peer, 'up');
  ip('netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up');
  ip('netns', 'exec', netns, 'ip', 'route', 'add', 'default', 'via', hostIP(n));
  return { netns, ip: podIP };
}

export function removePodNet(netns: string): void {
  try {
    // Deleting the namespace deletes its end of the veth pair, and the pair with it.
    ip('netns', 'del', netns);
  } catch {
    // already gone
  }
  rmSync(path.join('/etc/netns', netns), { recursive: true, force: true });
}

/** A Service's ClusterIP as an address of the bridge, so that connections to it end on this host. */
export function addClusterIP(n: NetworkSpec, clusterIP: string): void {
  try {
    ip('addr', 'add', `${clusterIP}/32`, 'dev', bridgeName(n));
  } catch (e) {
    if (!String((e as { stderr?: Buffer }).stderr ?? '').includes('File exists')) throw e;
  }
}

/**
 * The pod's view of cluster DNS: /etc/hosts with every Service name it can resolve, and a
 * resolv.conf whose search path names the cluster domain (Knative reads the domain from it).
 * Written in place, so a pod already running sees the new names through its bind mount.
 */
export function writeDns(netns: string, namespace: string, hosts: string, nameserver: string): void {
  const dir = path.join('/etc/netns', netns);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'hosts'), `127.0.0.1 localhost\n${hosts}`);
  writeFileSync(
    path.join(dir, 'resolv.conf'),
    `search ${namespace}.svc.cluster.local svc.cluster.local cluster.local\nnameserver ${nameserver}\noptions ndots:5\n`,
  );
}

export function removeNetwork(n: NetworkSpec, netnses: string[]): void {
  for (const ns of netnses) removePodNet(ns);
  try {
    ip('link', 'del', bridgeName(n));
  } catch {
    // already gone
  }
}
