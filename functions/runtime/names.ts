import { InvalidName } from './errors';

// Checked again right before a URL is built, whatever validated the input
// earlier: a name with "/" or ".." must never reach a path.

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isName(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

export function isNamespace(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 63 && DNS1123_LABEL.test(s);
}

export function pathSegment(kind: 'name' | 'namespace', s: string): string {
  if (kind === 'name' ? !isName(s) : !isNamespace(s)) {
    throw new InvalidName(
      `invalid ${kind} ${JSON.stringify(s).slice(0, 80)}: must be a lowercase DNS-1123 ${kind === 'name' ? 'subdomain (at most 253 characters)' : 'label (at most 63 characters)'}`,
    );
  }
  return s;
}
