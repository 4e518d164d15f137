import pino, { Logger } from 'pino';
import type { KubeConfig } from '@kubernetes/client-node';
import { Config, ConfigError, loadConfig } from './runtime/config';
import { connect, KubeConnection } from './runtime/kube/connection';
import { kubevirtClient } from './runtime/kubevirt';
import { createMetrics } from './runtime/metrics';
import { dispatcher } from './runtime/dispatch';
import { createServer, VirtwakeServer } from './runtime/server';
import type { Runtime } from './runtime/runtime';
import { COMMANDS } from './commands';
import { HANDLERS } from './index';
import { activityRecorder } from './runtime/activity';
import { eventSink, sinkFrom } from './runtime/sink';

// The composition root: the one place that knows every layer. It wires config,
// logger, metrics, the KubeVirt client, the command table and its handlers, the
// dispatcher and the HTTP server (or the wake proxy) together. main.ts runs it;
// tests build it in-process. Everything under runtime/ is given what it needs
// from here and never imports upward.

export interface App extends VirtwakeServer {
  config: Config;
  runtime: Runtime;
  connection: KubeConnection;
  /** Shut down and release the API connection. */
  close(): Promise<void>;
}

export interface AppOptions {
  env?: NodeJS.ProcessEnv;
  kubeConfig?: KubeConfig;
  logger?: Logger;
  now?: () => Date;
}

export async function createApp(opts: AppOptions = {}): Promise<App> {
  const config = loadConfig(opts.env ?? process.env);
  // Synchronous writes to stdout: pino's default hands each line to libuv's thread
  // pool, which at one event at a time costs more CPU than the write itself
  // (docs/performance.md).
  const log =
    opts.logger ??
    pino(
      { level: config.logLevel, base: { service: process.env.K_SERVICE ?? 'virtwake' } },
      pino.destination({ sync: true }),
    );
  const metrics = createMetrics();
  const connection = await connect({
    kubeConfig: opts.kubeConfig,
    env: opts.env ?? process.env,
    timeoutMs: config.kubeTimeoutMs,
  });
  const kubevirt = kubevirtClient(connection, { call: metrics.kubeCall, wait: metrics.wait });
  const closing = new AbortController();
  const runtime: Runtime = {
    config,
    kubevirt,
    log,
    metrics,
    now: opts.now ?? (() => new Date()),
    signal: closing.signal,
  };
  runtime.recordActivity = activityRecorder(runtime).record;
  runtime.events = eventSink(sinkFrom(config.sink), log);
  // The wake proxy forwards every path on PORT, so it replaces the event server (config.ts lets it run only alone).
  if (config.functions?.has('wake-proxy')) {
    // Loaded only here: an event-serving instance never parses or runs the proxy (or what it pulls in).
    const [{ createWakeProxy }, { loadRoutes }] = await Promise.all([
      import('./wake-proxy/server'),
      import('./wake-proxy/routes'),
    ]);
    const kService = (opts.env ?? process.env).K_SERVICE;
    let proxy: Awaited<ReturnType<typeof createWakeProxy>>;
    try {
      const routes = loadRoutes(config.proxyRoutesFile as string, config.namespace, { httpPort: config.port });
      // Knative Serving delivers HTTP to one container port only: a TCP listener there would never be reached.
      if (routes.tcp.length && kService)
        throw new ConfigError(
          `VIRTWAKE_PROXY_ROUTES: ${routes.tcp[0].label}: TCP routes cannot be served by a Knative Service (K_SERVICE=${kService}); run them in the plain Deployment of knative/tcp-proxy/`,
        );
      proxy = createWakeProxy({ runtime, connection, routes });
      // Bound now, so a port in use stops the process at start (exit 2) naming its route.
      await proxy.tcp.listen();
    } catch (e) {
      connection.close();
      throw e;
    }
    return {
      ...proxy,
      config,
      runtime,
      connection,
      async close() {
        closing.abort();
        await proxy.shutdown();
        connection.close();
      },
    };
  }
  const server = createServer({
    config,
    dispatcher: dispatcher(runtime, COMMANDS, HANDLERS),
    log,
    metrics,
    onClosing: () => closing.abort(),
    problem: connection.problem,
    refusals: connection.refusals,
  });
  return {
    ...server,
    config,
    runtime,
    connection,
    async close() {
      await server.shutdown();
      connection.close();
    },
  };
}
