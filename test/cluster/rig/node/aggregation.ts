// kube-controller-manager's ClusterRole aggregation controller
// (pkg/controller/clusterroleaggregation): a ClusterRole with an aggregationRule gets the rules
// of every ClusterRole its selectors match. Knative's roles are built this way (addressable
// resolvers, channelable manipulators, podspecable bindings), and without the controller
// they stay empty.

import type { Kube } from '../../../../simulator/rig/kube';
import type { Informer } from '../../../../simulator/rig/informer';

const selects = (sel: any, labels: Record<string, string> = {}) =>
  Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v) &&
  (sel.matchExpressions ?? []).every((e: any) =>
    e.operator === 'In'
      ? e.values.includes(labels[e.key])
      : e.operator === 'Exists'
        ? e.key in labels
        : e.operator === 'DoesNotExist'
          ? !(e.key in labels)
          : !e.values.includes(labels[e.key]),
  );

export async function aggregate(kube: Kube, roles: Informer<any>): Promise<void> {
  const all = roles.list();
  for (const role of all) {
    const selectors = role.aggregationRule?.clusterRoleSelectors;
    if (!selectors?.length) continue;
    const rules: any[] = [];
    const seen = new Set<string>();
    for (const other of all) {
      if (other.metadata.name === role.metadata.name) continue;
      if (!selectors.some((s: any) => selects(s, other.metadata.labels))) continue;
      for (const r of other.rules ?? []) {
        const key = JSON.stringify(r);
        if (!seen.has(key)) rules.push(r);
        seen.add(key);
      }
    }
    if (JSON.stringify(rules) === JSON.stringify(role.rules ?? [])) continue;
    await kube.request(
      'PATCH',
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/${role.metadata.name}`,
      { rules },
      'application/merge-patch+json',
    );
  }
}
