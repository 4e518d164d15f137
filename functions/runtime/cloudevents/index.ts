/** The CloudEvents-over-HTTP layer: what the server imports. */
export { CloudEventError } from './errors';
export { validateEvent, type CloudEvent, type ExtensionValue } from './event';
export { parseHttpMessage, type HttpHeaders, type ParsedMessage } from './http-parse';
export { encodeBatch, encodeBinary, encodeStructured, toJsonFormat, type HttpMessage } from './http-encode';
