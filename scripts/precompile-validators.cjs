// Ahead-of-time schema validators for the production bundle (scripts/build.mjs).
// CommonJS so the build (ESM) and a jest test can both load it.
'use strict';
const standaloneCode = require('ajv/dist/standalone').default;

/**
 * The source of a CommonJS module that stands in for functions/runtime/validate-compile.ts:
 * `compileValidator(schema)` returns the validator ajv generated at build time for
 * that schema, the very code ajv.compile() would generate at run time with the same
 * options (`ajv` must come from createAjv({ code: { source: true } })).
 * A schema that is not byte-for-byte one of `schemas` is refused: rebuild.
 */
function precompiledValidators(ajv, schemas) {
  const names = {};
  schemas.forEach((s, i) => {
    if (typeof s.$id !== 'string') throw new Error(`schema ${s.title ?? i} has no $id`);
    if (Object.values(names).includes(s.$id)) throw new Error(`two schemas share the $id ${s.$id}`);
    ajv.addSchema(s);
    names[`v${i}`] = s.$id;
  });
  const table = schemas
    .map((s, i) => `  ${JSON.stringify(s.$id)}: [exports.v${i}, ${JSON.stringify(JSON.stringify(s))}],`)
    .join('\n');
  return `${standaloneCode(ajv, names)}
const PRECOMPILED = {
${table}
};
exports.compileValidator = function compileValidator(schema) {
  const hit = Object.prototype.hasOwnProperty.call(PRECOMPILED, schema.$id) ? PRECOMPILED[schema.$id] : undefined;
  if (!hit || JSON.stringify(schema) !== hit[1]) {
    throw new Error('no validator was compiled ahead of time for schema ' + schema.$id + '; rebuild with npm run build');
  }
  return hit[0];
};
`;
}

module.exports = { precompiledValidators };
