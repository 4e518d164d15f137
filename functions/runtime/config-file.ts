import fs from 'node:fs';
import { loadYaml } from '@kubernetes/client-node';

// Reading a configuration file (the policy file, the wake proxy's routes): YAML
// or JSON (JSON is YAML), through the one YAML parser the production bundle
// already carries (client-node's). The caller checks the document against its
// schema in schemas/config/ and names its variable in the message.

export class ConfigFileError extends Error {}

/**
 * The file's document; null when it holds none (empty, only comments, or a lone
 * null, false, 0 or ""). Throws ConfigFileError when it cannot be read or parsed.
 */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigFileError(`cannot read ${file}: ${(e as Error).message}`);
  }
  return parseConfigText(text, file);
}

export function parseConfigText(text: string, file: string): unknown {
  try {
    return loadYaml(text);
  } catch (e) {
    const message = (e as Error).message;
    // client-node refuses a document that parsed to nothing (or to a falsy scalar) with this sentence.
    if (message === 'Failed to load YAML') return null;
    // The commonest slip in these files: `actions: [*]`, where YAML reads * as an alias.
    const hint = /alias/.test(message) ? ' (a bare * starts a YAML alias: write "*")' : '';
    throw new ConfigFileError(`${file} is neither YAML nor JSON: ${message.split('\n')[0]}${hint}`);
  }
}

/** An ajv instance path as a person reads it: /rules/1/sources/0 → rules[1].sources[0]. */
export function jsonPath(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p, i) => (/^\d+$/.test(p) && i > 0 ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join('');
}
