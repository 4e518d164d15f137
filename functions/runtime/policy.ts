import type { Config } from './config';
import type { VirtualMachine } from './kubevirt-types';
import { explainMismatch, matches } from './labels';
import { Denied } from './errors';
import { checkRequest, checkVm, SourceRequest } from './source-policy';

// contract §4: which namespaces and which VMs virtwake may touch, and per source
// when a policy file is configured. Checked before any write; a denial is a
// 403 that says what to change.

export function checkNamespace(config: Config, namespace: string): void {
  if (config.namespaces && !config.namespaces.has(namespace)) {
    throw new Denied(
      `namespace "${namespace}" is not in the allowlist (VIRTWAKE_NAMESPACES=${[...config.namespaces].join(',')})`,
    );
  }
}

export function checkVmOptIn(config: Config, vm: VirtualMachine): void {
  if (config.vmSelector.length === 0 || matches(config.vmSelector, vm.metadata.labels)) return;
  const missing = explainMismatch(config.vmSelector, vm.metadata.labels);
  throw new Denied(
    `VM ${vm.metadata.namespace}/${vm.metadata.name} has not opted in to virtwake: ${missing.join('; ')} (VIRTWAKE_VM_SELECTOR=${config.vmSelectorText})`,
    missing,
  );
}

/**
 * Per-source policy (docs/policy.md), when VIRTWAKE_POLICY_FILE is set: before
 * any API call, some rule must allow the event's source every action the
 * command may cause in its namespace. Without a policy file: nothing to check.
 */
export function checkSource(config: Config, req: SourceRequest): void {
  if (config.policy) checkRequest(config.policy, req);
}

/** Per-source policy, once the VM has been read: an allowing rule must also select its labels. */
export function checkVmForSource(config: Config, req: SourceRequest, vm: VirtualMachine): void {
  if (config.policy) checkVm(config.policy, req, vm);
}
