// Bundle the production server into one file: Node resolves and loads a single
// module at start-up instead of hundreds, which is most of a cold start.
import { build } from 'esbuild';

const result = await build({
  entryPoints: { virtwake: 'functions/main.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: 'linked',
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'linked',
  // Optional native speed-ups that ws and node-fetch probe for; absent is fine.
  external: ['bufferutil', 'utf-8-validate', 'encoding'],
  metafile: true,
  logLevel: 'warning',
});
const out = result.metafile.outputs['dist/virtwake.js'];
console.log(`dist/virtwake.js: ${(out.bytes / 1024).toFixed(0)} KiB`);
