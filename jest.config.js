// Two tiers. `unit`: pure modules, no simulator and no server of ours (a loopback socket at
// most), seconds in all. `integration`: the servers over HTTP against the simulator.
// `npm test` runs both; `npx jest --selectProjects unit` runs the fast tier alone.

const base = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.(t|j)sx?$': [
      '@swc/jest',
      { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } },
    ],
  },
  // client-node 1.x ships ESM only; swc turns it into CommonJS for the tests.
  transformIgnorePatterns: ['/node_modules/(?!(@kubernetes/client-node|openid-client|oauth4webapi|jose)/)'],
};

const UNIT = [
  '<rootDir>/test/unit/**/*.test.ts',
  '<rootDir>/test/architecture/**/*.test.ts',
  '<rootDir>/test/repo/**/*.test.ts',
  '<rootDir>/test/cloudevents/{event,media-type,percent,runtime-imports}.test.ts',
  '<rootDir>/test/core/{answers,config,readme-commands,schemas}.test.ts',
  '<rootDir>/test/knative/{rbac,schemas,semantics}.test.ts',
  '<rootDir>/test/scale-to-zero/{activity-throttle,proxy-parts,reaper-rules}.test.ts',
  '<rootDir>/test/security/source-policy.test.ts',
  '<rootDir>/test/snapshot/{names,schemas,restore-unit,snapshot-unit}.test.ts',
];

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 30000,
  projects: [
    { ...base, displayName: 'unit', roots: ['<rootDir>/test'], testMatch: UNIT },
    {
      ...base,
      displayName: 'integration',
      roots: ['<rootDir>/test'],
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      // test/cluster/ needs the control-plane rig: `npm run test:cluster` (jest.cluster.config.js).
      testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/cluster/', ...UNIT.map(globToPattern)],
    },
  ],
};

/** The unit globs as path patterns, so the integration tier is everything else. */
function globToPattern(glob) {
  return glob
    .replace('<rootDir>', '')
    .replace(/[.]/g, '\\.')
    .replace(/\{([^}]+)\}/g, (_, alts) => `(${alts.split(',').join('|')})`)
    .replace('/**/*', '/.*')
    .replace(/\*/g, '[^/]*');
}
