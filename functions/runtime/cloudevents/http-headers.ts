/**
 * Binary content mode: which HTTP header carries which attribute (HTTP binding §3.1.3).
 * Shared by the parser and the encoder so the two directions cannot drift apart.
 */
import type { Labeler } from './attributes';

export const CE_PREFIX = 'ce-';
export const CONTENT_TYPE = 'content-type';

/**
 * attribute → header (lower-case). Every attribute not listed, extensions included, travels
 * as `ce-<name>` with a percent-encoded value; `datacontenttype` is the exception: it is the
 * ordinary Content-Type header, sent verbatim.
 */
export const ATTRIBUTE_HEADERS: ReadonlyMap<string, { readonly header: string; readonly percentEncoded: boolean }> =
  new Map([
    ['specversion', { header: 'ce-specversion', percentEncoded: true }],
    ['id', { header: 'ce-id', percentEncoded: true }],
    ['source', { header: 'ce-source', percentEncoded: true }],
    ['type', { header: 'ce-type', percentEncoded: true }],
    ['datacontenttype', { header: CONTENT_TYPE, percentEncoded: false }],
    ['dataschema', { header: 'ce-dataschema', percentEncoded: true }],
    ['subject', { header: 'ce-subject', percentEncoded: true }],
    ['time', { header: 'ce-time', percentEncoded: true }],
  ]);

/** The header an attribute or extension travels in. */
export function headerFor(attribute: string): string {
  return ATTRIBUTE_HEADERS.get(attribute)?.header ?? CE_PREFIX + attribute;
}

/** `ce-id header`, `Content-Type header`: how binary-mode messages name an attribute. */
export const binaryLabel: Labeler = (attribute) =>
  attribute === 'datacontenttype' ? 'Content-Type header' : `${CE_PREFIX}${attribute} header`;
