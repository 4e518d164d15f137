/**
 * The CloudEvent value (CloudEvents 1.0). Its rules are in attributes.ts, the JSON event
 * format in json-format.ts; the HTTP wire formats in http-parse.ts and http-encode.ts.
 */

export type ExtensionValue = string | number | boolean;

export interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  datacontenttype?: string;
  dataschema?: string;
  subject?: string;
  /** As received (validated RFC 3339), not reformatted. */
  time?: string;
  /** JSON value when the content type is JSON (or absent in structured mode); string for text; Buffer for other bytes. */
  data?: unknown;
  extensions: Record<string, ExtensionValue>;
}

export const SPEC_VERSION = '1.0';
