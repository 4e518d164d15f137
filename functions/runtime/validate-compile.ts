import Ajv2020, { Options, ValidateFunction } from 'ajv/dist/2020';

// How command schemas become validators. From source (tests, `npm run dev`)
// ajv compiles each schema on first use; the production bundle replaces this
// module with validators compiled ahead of time by scripts/build.mjs from the
// same createAjv(), so start-up loads neither ajv's compiler nor the schemas'
// code generation (docs/performance.md).

/** The validation options, in one place for both ways of compiling. */
export function createAjv(extra: Options = {}): Ajv2020 {
  return new Ajv2020({ allErrors: true, strict: true, strictRequired: false, verbose: true, ...extra });
}

let ajv: Ajv2020 | undefined;

export function compileValidator(schema: object): ValidateFunction {
  ajv ??= createAjv();
  return ajv.compile(schema);
}
