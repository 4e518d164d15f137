/**
 * Test helper: send a request over loopback, byte for byte, and capture what a Node HTTP
 * server sees (`req.headers`, `req.headersDistinct`, body), so tests go through Node's own
 * header handling (lower-casing, latin-1 decoding, joining of repeated headers).
 *
 * The request is written on a raw socket: header names keep their case, a name may repeat,
 * and each header value character is sent as one byte (latin-1), so a test can send raw
 * non-ASCII bytes with `Buffer.from(text).toString('latin1')`.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface Captured {
  headers: http.IncomingHttpHeaders;
  headersDistinct: NodeJS.Dict<string[]>;
  body: Buffer;
}

export async function sendOverLoopback(
  headers: Record<string, string> | Array<[string, string]>,
  body: Buffer | string = '',
): Promise<Captured> {
  const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  let captured: Captured | undefined;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      captured = { headers: req.headers, headersDistinct: req.headersDistinct, body: Buffer.concat(chunks) };
      res.writeHead(204, { connection: 'close' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const lines = [
      'POST / HTTP/1.1',
      `Host: 127.0.0.1:${port}`,
      `Content-Length: ${payload.length}`,
      'Connection: close',
    ];
    for (const [name, value] of Array.isArray(headers) ? headers : Object.entries(headers))
      lines.push(`${name}: ${value}`);
    const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    await new Promise<void>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.end(Buffer.concat([head, payload])));
      socket.on('error', reject);
      socket.on('close', () => resolve());
      socket.resume();
    });
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  if (captured === undefined) throw new Error('the server did not receive the request');
  return captured;
}
