import type { ErrorObject, ValidateFunction } from 'ajv/dist/2020';
import { compileValidator } from './validate-compile';

// Command data is checked against schemas/<type>.json (JSON Schema 2020-12).
// Each schema's validator is looked up (or, from source, compiled) once, on
// first use, so start-up pays only for the types an instance receives.

const compiled = new WeakMap<object, ValidateFunction>();

const DNS_HINT = ' (a lowercase DNS-1123 name: a-z, 0-9, "-" and ".")';
const HINTS: Record<string, string> = {
  name: DNS_HINT,
  snapshotName: DNS_HINT,
  namespace: ' (a lowercase DNS-1123 label: a-z, 0-9 and "-")',
  failureDeadline: ' (a Go duration such as 90s, 5m or 1h30m)',
};

export function validateData(schema: object, data: unknown): string[] {
  let fn = compiled.get(schema);
  if (!fn) {
    fn = compileValidator(schema);
    compiled.set(schema, fn);
  }
  if (fn(data)) return [];
  return describe(fn.errors ?? []);
}

/** Every failing JSON path, said the way a person fixing the event needs it. */
function describe(errors: ErrorObject[]): string[] {
  const out = new Set<string>();
  const oneOfFailed = errors.some((e) => e.keyword === 'oneOf' && e.instancePath === '');
  for (const e of errors) {
    const path = e.instancePath || '/';
    switch (e.keyword) {
      case 'additionalProperties':
        out.add(
          `${path === '/' ? '' : path}/${(e.params as { additionalProperty: string }).additionalProperty}: unknown field, not allowed`,
        );
        break;
      case 'required':
        // The oneOf branches report their missing fields; one sentence says it better.
        if (oneOfFailed && e.schemaPath.startsWith('#/oneOf')) break;
        out.add(`${path === '/' ? '' : path}/${(e.params as { missingProperty: string }).missingProperty}: required`);
        break;
      case 'oneOf':
        if (e.instancePath === '') out.add('/: exactly one of "name" or "selector" is required');
        else out.add(`${path}: ${e.message}`);
        break;
      case 'propertyNames':
        break; // reported by the nested pattern error with the offending name
      case 'pattern':
        if (e.propertyName !== undefined)
          out.add(`${path}: label key ${JSON.stringify(e.propertyName)} is not a valid Kubernetes label key`);
        else
          out.add(
            `${path}: ${JSON.stringify(String(e.data)).slice(0, 80)} does not match ${e.params.pattern}${HINTS[path.split('/').pop() ?? ''] ?? ''}`,
          );
        break;
      default:
        out.add(`${path}: ${e.message}`);
    }
  }
  return [...out];
}
