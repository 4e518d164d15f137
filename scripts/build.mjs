// Bundle the production server into one file: Node resolves and loads a single
// module at start-up instead of hundreds, which is most of a cold start.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { analyzeMetafile, build } from 'esbuild';

const require = createRequire(import.meta.url);
const { precompiledValidators } = require('./precompile-validators.cjs');

/**
 * Keep what start-up loads small (docs/performance.md has the numbers). None
 * of this changes what the code does; it changes what is bundled and when it
 * is evaluated.
 *
 * NARROW: a package's index is replaced by the few names virtwake imports from
 * it, each from the file that defines it. An import of any other name fails
 * the build ("No matching export"): add it here.
 *  - @kubernetes/client-node's index re-exports its whole generated API;
 *  - prom-client's index also loads default metrics, the Pushgateway, the
 *    cluster aggregator and OpenTelemetry's API.
 */
const NARROW = {
  '@kubernetes/client-node': [
    ['KubeConfig', '@kubernetes/client-node/dist/config.js'],
    ['Watch', '@kubernetes/client-node/dist/watch.js'],
    ['loadYaml', '@kubernetes/client-node/dist/yaml.js'],
  ],
  'prom-client': [
    ['Counter', 'prom-client/lib/counter', 'default'],
    ['Gauge', 'prom-client/lib/gauge', 'default'],
    ['Histogram', 'prom-client/lib/histogram', 'default'],
    ['Registry', 'prom-client/lib/registry', 'default'],
  ],
};

/**
 * LAZY: classes client-node imports for configurations virtwake rarely meets,
 * loaded on first `new` instead of at start-up (socks-proxy-agent brings
 * socks, ip-address and dns with it: ~4 ms of every cold start, for a
 * kubeconfig `proxy-url: socks5://…`).
 */
const LAZY = {
  'socks-proxy-agent': ['SocksProxyAgent'],
};

/** The names `file` imports from `pkg` with `import { a, b as c } from 'pkg'`; undefined when it imports otherwise (then all of NARROW). */
function importedNames(file, pkg) {
  const names = new Set();
  let other = false;
  for (const m of fs.readFileSync(file, 'utf8').matchAll(/\b(?:import|export)\s+([^;]*?)\s+from\s+['"]([^'"]+)['"]/g)) {
    if (m[2] !== pkg) continue;
    const braces = /^(?:type\s+)?\{([^}]*)\}$/.exec(m[1].trim());
    if (!braces) other = true;
    else
      for (const part of braces[1].split(',')) {
        const name = part
          .trim()
          .replace(/^type\s+/, '')
          .split(/\s+as\s+/)[0]
          .trim();
        if (name) names.add(name);
      }
  }
  return other || names.size === 0 ? undefined : names;
}

const CLIENT_NODE_DIST = /[\\/]@kubernetes[\\/]client-node[\\/]dist[\\/]/;

const lean = {
  name: 'virtwake-lean',
  setup(b) {
    // node-fetch v2 falls back to whatwg-url (and its 260 KB Unicode table)
    // only where `require('url').URL` is missing, which it never is on Node.
    b.onResolve({ filter: /^whatwg-url$/ }, () => ({ path: 'whatwg-url', namespace: 'virtwake-lean' }));
    b.onLoad({ filter: /^whatwg-url$/, namespace: 'virtwake-lean' }, () => ({
      contents: "module.exports = { URL: require('node:url').URL };",
      loader: 'js',
    }));

    const narrow = new RegExp(
      `^(${Object.keys(NARROW)
        .map((k) => k.replace(/[/.]/g, '\\$&'))
        .join('|')})$`,
    );
    // One stand-in per importing file with just the names that file imports:
    // a file evaluates (at start-up, or when it is itself loaded lazily) only
    // the package files it needs.
    b.onResolve({ filter: narrow }, (args) => ({
      path: `${args.path}|${args.importer}`,
      namespace: 'virtwake-narrow',
    }));
    b.onLoad({ filter: /.*/, namespace: 'virtwake-narrow' }, (args) => {
      const [pkg, importer] = args.path.split('|');
      const wanted = importedNames(importer, pkg);
      const known = NARROW[pkg];
      for (const name of wanted ?? []) {
        if (!known.some(([n]) => n === name))
          throw new Error(`${importer} imports ${name} from ${pkg}: add it to NARROW in scripts/build.mjs`);
      }
      return {
        contents: known
          .filter(([name]) => !wanted || wanted.has(name))
          .map(([name, file, kind]) => `export { ${kind === 'default' ? 'default as ' : ''}${name} } from '${file}';`)
          .join('\n'),
        loader: 'js',
        resolveDir: process.cwd(),
      };
    });

    const lazy = new RegExp(`^(${Object.keys(LAZY).join('|')})$`);
    b.onResolve({ filter: lazy }, (args) =>
      args.namespace === 'virtwake-lazy'
        ? undefined
        : { path: args.path, namespace: 'virtwake-lazy', pluginData: { resolveDir: args.resolveDir } },
    );
    b.onLoad({ filter: /.*/, namespace: 'virtwake-lazy' }, (args) => ({
      contents: [
        'let real;',
        ...LAZY[args.path].map(
          (name) =>
            `export function ${name}(...args) { real ??= require(${JSON.stringify(args.path)}); return new real.${name}(...args); }`,
        ),
      ].join('\n'),
      loader: 'js',
      resolveDir: args.pluginData.resolveDir,
    }));

    // client-node's modules only declare things, though its package.json does
    // not say `sideEffects: false`: with it, the generated API and models that
    // KubeConfig and Watch never reach are left out.
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData?.lean || args.kind === 'entry-point' || args.namespace !== 'file') return undefined;
      if (!CLIENT_NODE_DIST.test(args.importer) && !args.path.startsWith('@kubernetes/client-node/')) return undefined;
      const r = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: { lean: true },
      });
      if (r.errors.length || !CLIENT_NODE_DIST.test(r.path)) return r;
      return { ...r, sideEffects: false };
    });
  },
};

/** Load a TypeScript module of ours (transpiled by esbuild, packages from node_modules). */
async function loadTs(file) {
  const out = await build({
    entryPoints: [file],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    packages: 'external',
    write: false,
    logLevel: 'warning',
  });
  const mod = { exports: {} };
  new Function('module', 'exports', 'require', out.outputFiles[0].text)(
    mod,
    mod.exports,
    createRequire(path.resolve(file)),
  );
  return mod.exports;
}

/**
 * Command schemas compiled at build time (ajv standalone code, same options as
 * at run time): the bundle carries neither ajv's compiler nor the first
 * event's compile.
 */
async function validatorsPlugin() {
  const { createAjv } = await loadTs('functions/runtime/validate-compile.ts');
  // Command schemas, then the configuration files' (the policy file, the wake proxy's routes).
  const read = (dir) =>
    fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort()
      .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')));
  const schemas = [...read('schemas'), ...read('schemas/config')];
  const contents = precompiledValidators(createAjv({ code: { source: true } }), schemas);
  return {
    name: 'virtwake-precompiled-validators',
    setup(b) {
      // Every importer in functions/ (commands, the policy file, the routes file): it
      // may import only compileValidator, which the stand-in exports.
      b.onResolve({ filter: /^\.\.?\/(runtime\/)?validate-compile$/ }, (args) =>
        /[\\/]functions[\\/]/.test(args.importer)
          ? { path: 'validate-compile', namespace: 'virtwake-precompiled' }
          : undefined,
      );
      b.onLoad({ filter: /.*/, namespace: 'virtwake-precompiled' }, () => ({
        contents,
        loader: 'js',
        resolveDir: process.cwd(),
      }));
    },
  };
}

// The loader (dist/virtwake.js) finds the bundle's code cache by this stamp.
const STAMP = '/*virtwake-build:0000000000000000*/';

const result = await build({
  entryPoints: { 'virtwake.app': 'functions/main.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  banner: { js: STAMP },
  // Non-ASCII characters escaped: the loader reads the bundle as latin1 (checked below).
  charset: 'ascii',
  sourcemap: 'linked',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'linked',
  // Optional native speed-ups that ws and node-fetch probe for; absent is fine.
  external: ['bufferutil', 'utf-8-validate', 'encoding'],
  plugins: [lean, await validatorsPlugin()],
  metafile: true,
  write: false,
  logLevel: 'warning',
});

fs.mkdirSync('dist', { recursive: true });
for (const f of fs.readdirSync('dist')) if (f.endsWith('.cache')) fs.rmSync(path.join('dist', f));
const bundleFile = path.resolve('dist/virtwake.app.js');
for (const file of result.outputFiles) {
  let contents = file.contents;
  if (file.path === bundleFile) {
    if (file.contents.some((byte) => byte > 0x7f))
      throw new Error('dist/virtwake.app.js is not pure ASCII; dist/virtwake.js reads it as latin1');
    const id = createHash('sha256').update(file.contents).digest('hex').slice(0, 16);
    contents = Buffer.from(file.text.replace(STAMP, `/*virtwake-build:${id}*/`));
  }
  fs.writeFileSync(file.path, contents);
}
fs.copyFileSync('scripts/bundle-loader.cjs', 'dist/virtwake.js');

// The code cache: V8 bytecode for everything the bundle compiles while it
// loads. V8 takes it only from the same Node version with the same V8 flags
// (NODE_OPTIONS=--max-old-space-size=… counts): the image builds and runs on
// one Node image without flags; build with the production NODE_OPTIONS if it
// sets any. Checked by loading again: a refused cache only costs speed.
// (Also serving a few events before taking it, to include the first event's
// functions, made the cache 30% larger and the cold start no faster.)
const node = (code) => execFileSync(process.execPath, ['-e', code], { encoding: 'utf8' }).trim();
node(
  "const l = require('./dist/virtwake.js').load(); require('node:fs').writeFileSync(l.cacheFile, l.script.createCachedData());",
);
const check = JSON.parse(
  node(
    "const l = require('./dist/virtwake.js').load(); console.log(JSON.stringify({ file: l.cacheFile, rejected: l.cacheRejected }))",
  ),
);
if (check.rejected) throw new Error(`V8 refused the code cache it just made (${check.file})`);

const out = result.metafile.outputs['dist/virtwake.app.js'];
console.log(
  `dist/virtwake.app.js: ${(out.bytes / 1024).toFixed(0)} KiB, code cache ${(fs.statSync(check.file).size / 1024).toFixed(0)} KiB; entry dist/virtwake.js`,
);
// `node scripts/build.mjs --analyze`: what the bundle is made of, largest first.
if (process.argv.includes('--analyze')) console.log(await analyzeMetafile(result.metafile, { verbose: false }));
