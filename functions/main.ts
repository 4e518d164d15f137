import { ConfigError } from './runtime/config';
import { createApp } from './app';

// `npm start`: serve the functions on PORT against the cluster KUBECONFIG (or
// the in-cluster service account) points to.
//
// Bundled by scripts/build.mjs into dist/virtwake.app.js, which dist/virtwake.js
// loads with a V8 code cache and then calls run(). Run on its own (node
// dist/virtwake.app.js, tsx functions/main.ts) it starts by itself.

async function main(): Promise<void> {
  const app = await createApp();
  const log = app.runtime.log;
  app.server.listen(app.config.port, () => {
    const address = app.server.address();
    log.info(
      {
        // The bound port: PORT=0 asks the OS for a free one.
        port: typeof address === 'object' && address ? address.port : app.config.port,
        namespace: app.config.namespace,
        functions: app.config.functions ? [...app.config.functions] : 'all',
      },
      'virtwake listening',
    );
  });
  const stop = (signal: string) => {
    log.info({ signal, inFlight: app.inFlight() }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

export function run(): void {
  main().catch((err) => {
    // A bad configuration is the operator's to fix: say which variable, exit non-zero.
    console.error(err instanceof ConfigError ? `virtwake: configuration error: ${err.message}` : err);
    process.exit(err instanceof ConfigError ? 2 : 1);
  });
}

if (require.main === module) run();
