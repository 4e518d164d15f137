// The "guest" of the TCP bench: echoes every byte back, ends when the client ends.
// Its own process, so it shares an event loop with neither the proxy nor the load.
'use strict';
const net = require('node:net');

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
  s.on('error', () => {});
  s.pipe(s);
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
process.on('SIGTERM', () => process.exit(0));
