import fs from 'node:fs';
import { parseSelector, Requirement } from './labels';
import { isNamespace } from './names';
import { DEFAULT_RETRY, RetryPolicy } from './retry';
import { parseDuration } from './duration';
import { loadSourcePolicy, PolicyFileError, SourcePolicy } from './source-policy';

// contract §7: configuration comes from the environment, is checked once at start,
// and a bad value stops the process with a message that names the variable.

export interface Config {
  port: number;
  namespace: string;
  /** undefined = any namespace ('*'). */
  namespaces?: Set<string>;
  vmSelector: Requirement[];
  vmSelectorText: string;
  /** undefined = every function. */
  functions?: Set<string>;
  reply: boolean;
  idleTimeoutMs?: number;
  logLevel: string;
  maxBodyBytes: number;
  bodyTimeoutMs: number;
  retry: RetryPolicy;
  bulkConcurrency: number;
  /** Events one batch may hold (413 beyond it), how many of them run at once, and how many VMs one request may act on. */
  maxBatch: number;
  batchConcurrency: number;
  maxVmsPerRequest: number;
  shutdownTimeoutMs: number;
  kubeTimeoutMs: number;
  policyFile?: string;
  /** Per-source policy read from policyFile (docs/policy.md); undefined = contract §4 limits only. */
  policy?: SourcePolicy;
  /** Scale to zero (docs/scale-to-zero.md). Only pings from this source are reaped; undefined = every ping. */
  reaperSource?: string;
  reaperPageSize: number;
  reaperConcurrency: number;
  /** Longest list of VM names in the reaper's summary event; counts are always complete. */
  reaperReportMax: number;
  /** contract §2: where events that are no delivery's reply go (K_SINK, set by a SinkBinding); undefined = nowhere. */
  sink?: string;
  /** contract §2: how long an accepted command waits for its target before it is reported failed/Timeout. */
  resultTimeoutMs: number;
  /** Wake proxy: routes file (YAML or JSON), requests held per VM while it wakes, and how long they are held. */
  proxyRoutesFile?: string;
  proxyQueueSize: number;
  proxyWakeTimeoutMs: number;
  proxyRetryAfterSeconds: number;
  /** How often an open TCP connection stamps its VM's activity (the stamp itself is throttled to once a minute). */
  proxyActivityIntervalMs: number;
}

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const namespace = env.VIRTWAKE_NAMESPACE || podNamespace() || 'default';
  if (!isNamespace(namespace))
    throw new ConfigError(`VIRTWAKE_NAMESPACE ${JSON.stringify(namespace)} is not a valid namespace name`);

  const nsList =
    env.VIRTWAKE_NAMESPACES === undefined || env.VIRTWAKE_NAMESPACES.trim() === ''
      ? namespace
      : env.VIRTWAKE_NAMESPACES;
  let namespaces: Set<string> | undefined;
  if (nsList.trim() !== '*') {
    namespaces = new Set(
      nsList
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
    for (const ns of namespaces) {
      if (!isNamespace(ns))
        throw new ConfigError(
          `VIRTWAKE_NAMESPACES: ${JSON.stringify(ns)} is not a valid namespace name (use '*' for any)`,
        );
    }
  }

  const vmSelectorText = env.VIRTWAKE_VM_SELECTOR ?? 'virtwake.io/enabled=true';
  let vmSelector: Requirement[];
  try {
    vmSelector = parseSelector(vmSelectorText);
  } catch (e) {
    throw new ConfigError(`VIRTWAKE_VM_SELECTOR: ${(e as Error).message}`);
  }

  const fnList = (env.VIRTWAKE_FUNCTIONS ?? 'all').trim();
  const functions =
    fnList === '' || fnList === 'all'
      ? undefined
      : new Set(
          fnList
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
        );

  let idleTimeoutMs: number | undefined;
  if (env.VIRTWAKE_IDLE_TIMEOUT && env.VIRTWAKE_IDLE_TIMEOUT !== 'none') {
    idleTimeoutMs = parseDuration(env.VIRTWAKE_IDLE_TIMEOUT);
    if (idleTimeoutMs === undefined || idleTimeoutMs <= 0) {
      throw new ConfigError(
        `VIRTWAKE_IDLE_TIMEOUT ${JSON.stringify(env.VIRTWAKE_IDLE_TIMEOUT)} is not a positive duration such as 30m or 2h`,
      );
    }
  }

  const proxyWakeTimeoutMs = parseDuration(env.VIRTWAKE_PROXY_WAKE_TIMEOUT || '120s');
  if (proxyWakeTimeoutMs === undefined || proxyWakeTimeoutMs <= 0 || proxyWakeTimeoutMs > 3_600_000) {
    throw new ConfigError(
      `VIRTWAKE_PROXY_WAKE_TIMEOUT ${JSON.stringify(env.VIRTWAKE_PROXY_WAKE_TIMEOUT)} is not a duration from 1ms to 1h such as 90s or 3m`,
    );
  }
  const proxyActivityIntervalMs = parseDuration(env.VIRTWAKE_PROXY_ACTIVITY_INTERVAL || '30s');
  if (proxyActivityIntervalMs === undefined || proxyActivityIntervalMs < 10 || proxyActivityIntervalMs > 3_600_000) {
    throw new ConfigError(
      `VIRTWAKE_PROXY_ACTIVITY_INTERVAL ${JSON.stringify(env.VIRTWAKE_PROXY_ACTIVITY_INTERVAL)} is not a duration from 10ms to 1h such as 30s`,
    );
  }
  // The proxy owns the HTTP port (it forwards every path), so it cannot share an instance with the event handlers.
  if (functions?.has('wake-proxy')) {
    if (functions.size > 1)
      throw new ConfigError(
        `VIRTWAKE_FUNCTIONS: wake-proxy serves arbitrary HTTP on PORT and must run alone, got ${JSON.stringify(fnList)}`,
      );
    if (!env.VIRTWAKE_PROXY_ROUTES)
      throw new ConfigError('VIRTWAKE_PROXY_ROUTES must name the routes file when VIRTWAKE_FUNCTIONS=wake-proxy');
  }

  // Read and checked now, so a bad policy stops the process at start, not on the first event.
  let policy: SourcePolicy | undefined;
  if (env.VIRTWAKE_POLICY_FILE) {
    try {
      policy = loadSourcePolicy(env.VIRTWAKE_POLICY_FILE);
    } catch (e) {
      if (e instanceof PolicyFileError) throw new ConfigError(`VIRTWAKE_POLICY_FILE: ${e.message}`);
      throw e;
    }
  }

  return {
    port: int(env, 'PORT', 8080, 0, 65535),
    namespace,
    namespaces,
    vmSelector,
    vmSelectorText,
    functions,
    reply: bool(env, 'VIRTWAKE_REPLY', true),
    idleTimeoutMs,
    logLevel: env.LOG_LEVEL || 'info',
    maxBodyBytes: int(env, 'VIRTWAKE_MAX_BODY_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    bodyTimeoutMs: duration(env, 'VIRTWAKE_BODY_TIMEOUT', 10_000, 100, 300_000),
    retry: { ...DEFAULT_RETRY, budgetMs: duration(env, 'VIRTWAKE_RETRY_BUDGET', DEFAULT_RETRY.budgetMs, 0, 60_000) },
    bulkConcurrency: int(env, 'VIRTWAKE_BULK_CONCURRENCY', 4, 1, 64),
    maxBatch: int(env, 'VIRTWAKE_MAX_BATCH', 100, 1, 10_000),
    batchConcurrency: int(env, 'VIRTWAKE_BATCH_CONCURRENCY', 8, 1, 64),
    maxVmsPerRequest: int(env, 'VIRTWAKE_MAX_VMS_PER_REQUEST', 200, 1, 100_000),
    shutdownTimeoutMs: duration(env, 'VIRTWAKE_SHUTDOWN_TIMEOUT', 20_000, 0, 600_000),
    kubeTimeoutMs: duration(env, 'VIRTWAKE_KUBE_TIMEOUT', 10_000, 100, 120_000),
    policyFile: env.VIRTWAKE_POLICY_FILE || undefined,
    policy,
    reaperSource: env.VIRTWAKE_REAPER_SOURCE || undefined,
    reaperPageSize: int(env, 'VIRTWAKE_REAPER_PAGE_SIZE', 500, 1, 5000),
    reaperConcurrency: int(env, 'VIRTWAKE_REAPER_CONCURRENCY', 8, 1, 64),
    reaperReportMax: int(env, 'VIRTWAKE_REAPER_REPORT_MAX', 1000, 0, 100_000),
    sink: sinkUrl(env.K_SINK),
    resultTimeoutMs: positiveDuration(env, 'VIRTWAKE_RESULT_TIMEOUT', '10m', 24 * 3600_000),
    proxyRoutesFile: env.VIRTWAKE_PROXY_ROUTES || undefined,
    proxyQueueSize: int(env, 'VIRTWAKE_PROXY_QUEUE_SIZE', 100, 1, 100_000),
    proxyWakeTimeoutMs,
    proxyRetryAfterSeconds: seconds(env, 'VIRTWAKE_PROXY_RETRY_AFTER', 10, 1, 3600),
    proxyActivityIntervalMs,
  };
}

/** K_SINK as a SinkBinding sets it: an absolute http(s) URL. */
function sinkUrl(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(
      `K_SINK ${JSON.stringify(raw)} is not an absolute URL such as http://broker-ingress/ns/broker`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ConfigError(`K_SINK must be an http or https URL, got ${JSON.stringify(raw)}`);
  return raw;
}

function positiveDuration(env: NodeJS.ProcessEnv, key: string, dflt: string, maxMs: number): number {
  const raw = env[key] || dflt;
  const ms = parseDuration(raw);
  if (ms === undefined || ms <= 0 || ms > maxMs)
    throw new ConfigError(
      `${key} ${JSON.stringify(raw)} is not a duration from 1ms to ${maxMs / 3600_000}h such as 10m`,
    );
  return ms;
}

function podNamespace(): string | undefined {
  try {
    return fs.readFileSync(SA_NAMESPACE_FILE, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function int(env: NodeJS.ProcessEnv, key: string, dflt: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new ConfigError(`${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

/**
 * A time setting: `<name>` takes a Go duration (10s, 1m30s); `<name>_MS`, the older spelling,
 * takes milliseconds (or a Go duration too). Setting both is refused: which one wins would be a guess.
 */
function duration(env: NodeJS.ProcessEnv, name: string, dflt: number, min: number, max: number): number {
  const key = env[name] !== undefined && env[name] !== '' ? name : `${name}_MS`;
  const raw = env[key];
  if (raw === undefined || raw === '') return dflt;
  if (key === name && env[`${name}_MS`]) throw new ConfigError(`set ${name} or ${name}_MS, not both`);
  const ms = key.endsWith('_MS') && /^\d+$/.test(raw.trim()) ? Number(raw) : parseDuration(raw);
  if (ms === undefined || !Number.isInteger(ms) || ms < min || ms > max)
    throw new ConfigError(
      `${key} must be a duration from ${min}ms to ${max / 1000}s such as ${dflt / 1000}s${key.endsWith('_MS') ? ' (or a number of milliseconds)' : ''}, got ${JSON.stringify(raw)}`,
    );
  return ms;
}

/** Seconds: a whole number, or a Go duration of whole seconds (10s, 2m). */
function seconds(env: NodeJS.ProcessEnv, key: string, dflt: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return dflt;
  const ms = /^\d+$/.test(raw.trim()) ? Number(raw) * 1000 : parseDuration(raw);
  if (ms === undefined || ms % 1000 !== 0 || ms / 1000 < min || ms / 1000 > max)
    throw new ConfigError(
      `${key} must be whole seconds from ${min} to ${max}, as a number or a duration such as 10s or 2m, got ${JSON.stringify(raw)}`,
    );
  return ms / 1000;
}

function bool(env: NodeJS.ProcessEnv, key: string, dflt: boolean): boolean {
  const raw = env[key];
  if (raw === undefined || raw === '') return dflt;
  if (/^(true|1|yes)$/i.test(raw)) return true;
  if (/^(false|0|no)$/i.test(raw)) return false;
  throw new ConfigError(`${key} must be true or false, got ${JSON.stringify(raw)}`);
}
