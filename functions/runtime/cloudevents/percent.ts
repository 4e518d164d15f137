/**
 * Binary-mode header values (HTTP binding §3.1.3.2).
 *
 * Receiving: first undo an RFC 7230 §3.2.6 quoted-string (older senders), then do exactly
 * one round of percent-decoding; lower-case hex and needlessly encoded characters are
 * accepted, and bytes that are not valid UTF-8 are rejected.
 *
 * Node hands header bytes over as latin-1 characters, so a raw non-ASCII byte (a sender that
 * forgot to percent-encode, as sdk-go and sdk-javascript do) arrives as one U+0080–U+00FF
 * character. Those are taken back as the bytes they were and must form valid UTF-8 too,
 * which is what such a sender meant.
 *
 * Sending: space, `"`, `%` and everything outside printable ASCII is written as `%XY`
 * (upper-case hex) of its UTF-8 bytes.
 */

import { decodeUtf8 } from './utf8';

/** Why a header value could not be decoded; the caller adds the header name. */
export class HeaderValueError extends Error {
  override name = 'HeaderValueError';
}

/** Anything but printable ASCII other than `%`: the value needs the slow path. */
const NEEDS_DECODING = /[^\x20-\x24\x26-\x7E]/;
/** Printable ASCII other than space, `"` and `%`: the value can be sent as it is. */
const SENDABLE = /^[\x21\x23\x24\x26-\x7E]*$/;
const HEX = '0123456789ABCDEF';

/** Decode one received header value. Throws HeaderValueError. */
export function decodeHeaderValue(raw: string): string {
  const value = isQuoted(raw) ? unquote(raw) : raw;
  if (!NEEDS_DECODING.test(value)) return value;
  return percentDecode(value);
}

/** Encode one header value for sending. */
export function encodeHeaderValue(value: string): string {
  if (SENDABLE.test(value)) return value;
  const bytes = Buffer.from(value, 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    out += b > 0x20 && b < 0x7f && b !== 0x22 && b !== 0x25 ? String.fromCharCode(b) : `%${HEX[b >> 4]}${HEX[b & 15]}`;
  }
  return out;
}

function isQuoted(value: string): boolean {
  return value.length >= 2 && value.charCodeAt(0) === 0x22 && value.charCodeAt(value.length - 1) === 0x22;
}

/** RFC 7230 quoted-string → its content: `\x` stands for `x`; a bare `"` inside is an error. */
function unquote(value: string): string {
  const end = value.length - 1;
  const inner = value.slice(1, end);
  if (inner.indexOf('\\') < 0 && inner.indexOf('"') < 0) return inner;
  let out = '';
  for (let i = 1; i < end; i++) {
    const c = value[i];
    if (c === '"') throw new HeaderValueError(`malformed quoted-string: unescaped '"' at index ${i}`);
    if (c === '\\') {
      if (++i === end) throw new HeaderValueError('malformed quoted-string: it ends with a lone backslash');
      out += value[i];
    } else {
      out += c;
    }
  }
  return out;
}

function percentDecode(value: string): string {
  const bytes = Buffer.allocUnsafe(value.length);
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25) {
      const hi = hexValue(value.charCodeAt(i + 1));
      const lo = hexValue(value.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) {
        throw new HeaderValueError(
          `invalid percent-encoding at index ${i}: "%" must be followed by two hex digits (send "%" itself as %25)`,
        );
      }
      bytes[n++] = (hi << 4) | lo;
      i += 2;
    } else if (c <= 0xff) {
      bytes[n++] = c;
    } else {
      // Cannot have come off the wire: HTTP header values are bytes, read as latin-1.
      throw new HeaderValueError(
        `character U+${c.toString(16).toUpperCase().padStart(4, '0')} at index ${i} cannot travel in an HTTP header; percent-encode its UTF-8 bytes`,
      );
    }
  }
  const text = decodeUtf8(bytes.subarray(0, n));
  if (text === undefined) {
    throw new HeaderValueError(
      'the percent-decoded bytes are not valid UTF-8 (an overlong form such as %C0%A0 is invalid)',
    );
  }
  return text;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10; // a-f, A-F
  return -1; // also NaN past the end of the string
}
