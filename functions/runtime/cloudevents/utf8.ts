/**
 * Strict UTF-8 decoding, shared by header values and bodies. One decoder, created on first
 * use (building a TextDecoder is the costly part, ~0.1 ms), kept for the process.
 */
let decoder: InstanceType<typeof TextDecoder> | undefined;

/** The text, or undefined when the bytes are not valid UTF-8 (overlong forms, surrogates, truncation). A BOM is kept. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  decoder ??= new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  try {
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** As decodeUtf8, dropping a leading byte order mark (RFC 8259 §8.1 lets a JSON parser ignore it). */
export function decodeUtf8Body(bytes: Uint8Array): string | undefined {
  const text = decodeUtf8(bytes);
  return text !== undefined && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
