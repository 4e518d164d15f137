// dist/virtwake.js, the production entry (`npm start`, the image's CMD), copied
// here by scripts/build.mjs. It runs the bundle dist/virtwake.app.js with the
// V8 code cache the build made for it, so a cold start deserialises bytecode
// instead of parsing and compiling the bundle (docs/performance.md).
//
// The cache is named after a hash of the bundle the build stamped into its
// first line, so a bundle only ever meets its own cache. When there is none,
// or V8 refuses it (another Node version, other V8 flags), the bundle is
// compiled as usual: slower, same behaviour. Nothing is written at run time.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const Module = require('node:module');

const BUNDLE = path.join(__dirname, 'virtwake.app.js');
const STAMP = /^\/\*virtwake-build:([0-9a-f]{16})\*\//;

/** Compile and evaluate the bundle as a CommonJS module; returns its exports and the compiled script. */
function load(bundle = BUNDLE) {
  // The build makes the bundle pure ASCII, where latin1 decodes as UTF-8 would, only faster.
  const source = fs.readFileSync(bundle, 'latin1');
  const stamp = STAMP.exec(source);
  const cacheFile = stamp ? `${bundle}.${stamp[1]}.cache` : undefined;
  let cachedData;
  try {
    if (cacheFile) cachedData = fs.readFileSync(cacheFile);
  } catch {
    // no cache: compile
  }
  const dynamicImport = vm.constants && vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER;
  const script = new vm.Script(Module.wrap(source), {
    filename: bundle,
    cachedData,
    ...(dynamicImport ? { importModuleDynamically: dynamicImport } : {}),
  });
  const mod = new Module(bundle, module);
  mod.filename = bundle;
  mod.paths = Module._nodeModulePaths(path.dirname(bundle));
  script
    .runInThisContext()
    .call(mod.exports, mod.exports, Module.createRequire(bundle), mod, bundle, path.dirname(bundle));
  mod.loaded = true;
  return {
    exports: mod.exports,
    script,
    cacheFile,
    cacheRejected: cachedData !== undefined && script.cachedDataRejected === true,
  };
}

module.exports = { load };

if (require.main === module) load().exports.run();
