// Baseline: the trivial handler faas-js-runtime (what `kn func` runs for Node)
// serves: it receives the parsed CloudEvent and answers 202 with nothing to say.
'use strict';

module.exports = function handle(_context, _event) {
  return { statusCode: 202, body: '' };
};
