import { ConfigError, loadConfig } from '../../functions/runtime/config';
import { parseDuration } from '../../functions/runtime/duration';
import { explainMismatch, matches, parseSelector } from '../../functions/runtime/labels';

describe('configuration from the environment (contract §7)', () => {
  test('defaults', () => {
    const c = loadConfig({ VIRTWAKE_NAMESPACE: 'vms' });
    expect(c.port).toBe(8080);
    expect(c.namespace).toBe('vms');
    expect([...(c.namespaces ?? [])]).toEqual(['vms']);
    expect(c.vmSelectorText).toBe('virtwake.io/enabled=true');
    expect(c.functions).toBeUndefined();
    expect(c.reply).toBe(true);
    expect(c.idleTimeoutMs).toBeUndefined();
    expect(c.maxBodyBytes).toBe(1024 * 1024);
    expect(c.sink).toBeUndefined();
    expect(c.resultTimeoutMs).toBe(600_000);
  });

  test("'*' allows any namespace; an empty selector requires nothing", () => {
    const c = loadConfig({ VIRTWAKE_NAMESPACE: 'a', VIRTWAKE_NAMESPACES: '*', VIRTWAKE_VM_SELECTOR: '' });
    expect(c.namespaces).toBeUndefined();
    expect(c.vmSelector).toEqual([]);
  });

  test.each([
    [{ PORT: 'eighty' }, /PORT must be an integer/],
    [{ VIRTWAKE_NAMESPACE: 'Bad_NS' }, /VIRTWAKE_NAMESPACE "Bad_NS" is not a valid namespace/],
    [{ VIRTWAKE_NAMESPACES: 'ok,../etc' }, /VIRTWAKE_NAMESPACES: "..\/etc" is not a valid namespace/],
    [{ VIRTWAKE_VM_SELECTOR: 'a=b c' }, /VIRTWAKE_VM_SELECTOR: invalid label value/],
    [{ VIRTWAKE_REPLY: 'maybe' }, /VIRTWAKE_REPLY must be true or false/],
    [{ VIRTWAKE_IDLE_TIMEOUT: 'soon' }, /VIRTWAKE_IDLE_TIMEOUT "soon" is not a positive duration/],
    [{ K_SINK: 'broker-ingress/virtwake' }, /K_SINK "broker-ingress\/virtwake" is not an absolute URL/],
    [{ K_SINK: 'ftp://broker/x' }, /K_SINK must be an http or https URL/],
    [{ VIRTWAKE_RESULT_TIMEOUT: '0s' }, /VIRTWAKE_RESULT_TIMEOUT "0s" is not a duration from 1ms to 24h/],
    [{ VIRTWAKE_RESULT_TIMEOUT: 'later' }, /VIRTWAKE_RESULT_TIMEOUT "later" is not a duration/],
  ])('%o is refused with a message naming the variable', (env, message) => {
    expect(() => loadConfig({ VIRTWAKE_NAMESPACE: 'default', ...env })).toThrow(ConfigError);
    expect(() => loadConfig({ VIRTWAKE_NAMESPACE: 'default', ...env })).toThrow(message);
  });
});

describe('every time setting takes a Go duration; the _MS spellings keep working', () => {
  const load = (env: NodeJS.ProcessEnv) => loadConfig({ VIRTWAKE_NAMESPACE: 'default', ...env });
  test('durations and milliseconds give the same setting', () => {
    const c = load({
      VIRTWAKE_BODY_TIMEOUT: '15s',
      VIRTWAKE_RETRY_BUDGET: '2s',
      VIRTWAKE_SHUTDOWN_TIMEOUT: '1m',
      VIRTWAKE_KUBE_TIMEOUT: '1500ms',
      VIRTWAKE_PROXY_RETRY_AFTER: '2m',
    });
    expect([c.bodyTimeoutMs, c.retry.budgetMs, c.shutdownTimeoutMs, c.kubeTimeoutMs]).toEqual([
      15_000, 2_000, 60_000, 1_500,
    ]);
    expect(c.proxyRetryAfterSeconds).toBe(120);
    const old = load({
      VIRTWAKE_BODY_TIMEOUT_MS: '15000',
      VIRTWAKE_RETRY_BUDGET_MS: '2000',
      VIRTWAKE_SHUTDOWN_TIMEOUT_MS: '60000',
      VIRTWAKE_KUBE_TIMEOUT_MS: '1500',
      VIRTWAKE_PROXY_RETRY_AFTER: '120',
    });
    expect([old.bodyTimeoutMs, old.retry.budgetMs, old.shutdownTimeoutMs, old.kubeTimeoutMs]).toEqual([
      15_000, 2_000, 60_000, 1_500,
    ]);
    expect(old.proxyRetryAfterSeconds).toBe(120);
    expect(load({ VIRTWAKE_KUBE_TIMEOUT_MS: '2s' }).kubeTimeoutMs).toBe(2_000);
  });
  test.each([
    [
      { VIRTWAKE_KUBE_TIMEOUT: '5' },
      /VIRTWAKE_KUBE_TIMEOUT must be a duration from 100ms to 120s such as 10s, got "5"/,
    ],
    [{ VIRTWAKE_KUBE_TIMEOUT: '10 s' }, /VIRTWAKE_KUBE_TIMEOUT must be a duration/],
    [{ VIRTWAKE_SHUTDOWN_TIMEOUT: '2h' }, /VIRTWAKE_SHUTDOWN_TIMEOUT must be a duration from 0ms to 600s/],
    [
      { VIRTWAKE_BODY_TIMEOUT_MS: 'ten' },
      /VIRTWAKE_BODY_TIMEOUT_MS must be a duration .* \(or a number of milliseconds\)/,
    ],
    [
      { VIRTWAKE_RETRY_BUDGET: '1s', VIRTWAKE_RETRY_BUDGET_MS: '1000' },
      /set VIRTWAKE_RETRY_BUDGET or VIRTWAKE_RETRY_BUDGET_MS, not both/,
    ],
    [{ VIRTWAKE_PROXY_RETRY_AFTER: '1500ms' }, /VIRTWAKE_PROXY_RETRY_AFTER must be whole seconds from 1 to 3600/],
  ])('%o is refused with a message naming the variable', (env, message) => {
    expect(() => load(env)).toThrow(ConfigError);
    expect(() => load(env)).toThrow(message);
  });
});

test('Go durations', () => {
  expect(parseDuration('30m')).toBe(1_800_000);
  expect(parseDuration('1h30m')).toBe(5_400_000);
  expect(parseDuration('250ms')).toBe(250);
  expect(parseDuration('0')).toBe(0);
  expect(parseDuration('5 minutes')).toBeUndefined();
  expect(parseDuration('')).toBeUndefined();
});

test('label selectors match and explain', () => {
  const reqs = parseSelector('virtwake.io/enabled=true,tier!=db,!legacy');
  expect(matches(reqs, { 'virtwake.io/enabled': 'true' })).toBe(true);
  expect(matches(reqs, { 'virtwake.io/enabled': 'true', tier: 'db' })).toBe(false);
  expect(matches(reqs, { 'virtwake.io/enabled': 'true', legacy: '' })).toBe(false);
  expect(explainMismatch(reqs, {})).toEqual(['label virtwake.io/enabled=true is missing']);
  // A key named like an Object.prototype member is an ordinary label, not an inherited property.
  expect(matches(parseSelector('constructor'), {})).toBe(false);
});
