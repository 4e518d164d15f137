// Baseline: the least a Node process can do for an event: read the body, answer 202.
'use strict';
const http = require('node:http');

const server = http.createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(202, { 'content-length': 0 });
    res.end();
  });
});
server.listen(Number(process.env.PORT || 8080));
process.once('SIGTERM', () => server.close(() => process.exit(0)));
