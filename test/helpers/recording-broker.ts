import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A loopback server that plays a Broker's ingress: it records each request (headers and body)
 * and answers with the next status in `answers`, 202 once they are used up.
 */
export async function recordingBroker(answers: number[] = [], pathname = '/') {
  const seen: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ headers: req.headers, body });
      res.writeHead(answers.shift() ?? 202).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${pathname}`, seen, answers, server };
}
