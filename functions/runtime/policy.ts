import type { Config } from './config';
import type { VirtualMachine } from './kubevirt-types';
import { explainMismatch, matches } from './labels';
import { Problem } from './problems';

// SPEC §4: which namespaces and which VMs virtwake may touch. Checked before
// any write; a denial is a 403 that says what to change.

export function checkNamespace(config: Config, namespace: string): void {
  if (config.namespaces && !config.namespaces.has(namespace)) {
    throw new Problem(
      'forbidden',
      `namespace "${namespace}" is not in the allowlist (VIRTWAKE_NAMESPACES=${[...config.namespaces].join(',')})`,
    );
  }
}

export function checkVmOptIn(config: Config, vm: VirtualMachine): void {
  if (config.vmSelector.length === 0 || matches(config.vmSelector, vm.metadata.labels)) return;
  const missing = explainMismatch(config.vmSelector, vm.metadata.labels);
  throw new Problem(
    'forbidden',
    `VM ${vm.metadata.namespace}/${vm.metadata.name} has not opted in to virtwake: ${missing.join('; ')} (VIRTWAKE_VM_SELECTOR=${config.vmSelectorText})`,
    missing,
  );
}
