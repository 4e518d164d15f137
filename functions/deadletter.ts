import type { EventFunction } from './runtime/runtime';

// The dead-letter sink: Knative sends here the original event it could not
// deliver, with knativeerrorcode (last HTTP status), knativeerrordest and
// knativeerrordata (base64 of the last response body, cut at 1024 characters).
// We log one line that says what failed and why; the event is never re-run.

export const deadletter: EventFunction = {
  async handle(event, rt) {
    const ext = event.extensions;
    const data =
      event.data && typeof event.data === 'object' && !Buffer.isBuffer(event.data)
        ? (event.data as Record<string, unknown>)
        : {};
    const replyUndeliverable = isBrokerIngress(ext.knativeerrordest);
    // Knative's dispatcher adds the knativeerror* extensions only from an answer it could read: a
    // delivery that timed out (a `wait` longer than the Trigger's timeout) arrives without them
    // (knative/eventing pkg/kncloudevents/event_dispatcher.go dispatchExecutionInfoTransformers;
    // seen on the rig, test/cluster/knative.rig.test.ts).
    const noAnswer = ext.knativeerrorcode === undefined && ext.knativeerrordest === undefined;
    rt.log.error(
      {
        deadLetter: true,
        ...(replyUndeliverable ? { replyUndeliverable } : {}),
        ...(noAnswer ? { noAnswer } : {}),
        type: event.type,
        id: event.id,
        source: event.source,
        subject: event.subject,
        // Only the target of a command, never the rest of its body.
        vm:
          typeof data.name === 'string'
            ? `${typeof data.namespace === 'string' ? data.namespace : '-'}/${data.name}`
            : undefined,
        knativeerrorcode: ext.knativeerrorcode,
        knativeerrordest: ext.knativeerrordest,
        knativeerrordata: decodeErrorData(ext.knativeerrordata),
      },
      // Knative dead-letters the original command also when the command ran and only its result
      // event could not be delivered back to the Broker; the destination tells the two apart.
      replyUndeliverable
        ? 'result undeliverable: the command ran, its result event could not be delivered to the Broker'
        : noAnswer
          ? 'event dead-lettered without an answer (the delivery timed out or its connection broke): the command may have run; its result event reports the outcome'
          : 'event dead-lettered',
    );
    rt.metrics.action(event.type, 'dead-lettered');
    return undefined;
  },
};

/** The ingress of an MT channel-based (broker-ingress) or Kafka (kafka-broker-ingress) Broker. */
function isBrokerIngress(dest: unknown): boolean {
  if (typeof dest !== 'string') return false;
  try {
    return /^([a-z0-9-]+-)?broker-ingress\./.test(new URL(dest).hostname);
  } catch {
    return false;
  }
}

/** Base64 → text; when it is one of our problem bodies, just its detail and errors. */
export function decodeErrorData(value: unknown): unknown {
  if (typeof value !== 'string' || value === '') return undefined;
  const text = Buffer.from(value, 'base64').toString('utf8');
  try {
    const body = JSON.parse(text) as { detail?: unknown; errors?: unknown; status?: unknown };
    if (body && typeof body === 'object' && 'detail' in body)
      return { status: body.status, detail: body.detail, errors: body.errors };
  } catch {
    // Knative cuts the body at 1024 characters, so JSON may be truncated: keep the text.
  }
  return text;
}
