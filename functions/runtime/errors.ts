// The runtime's own failures, said in its own words. None of them knows HTTP:
// each server maps them to its answer in one place (the event server in
// problems.ts problemOf, the wake proxy in wake-proxy/wake.ts).

/** Give the event back to Knative to be delivered again later (the work so far is idempotent). */
export class HandBack extends Error {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
    this.name = 'HandBack';
  }
}

/** The KubeVirt API stayed unavailable through the retry budget: also a hand back. */
export class RetriesExhausted extends HandBack {
  constructor(message: string, retryAfterSeconds: number) {
    super(message, retryAfterSeconds);
    this.name = 'RetriesExhausted';
  }
}

/** A name or namespace that must never reach a URL path. */
export class InvalidName extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidName';
  }
}

/** Refused by policy (namespace allowlist, VM opt-in, per-source rules); says what to change. */
export class Denied extends Error {
  constructor(
    message: string,
    readonly errors: string[] = [],
  ) {
    super(message);
    this.name = 'Denied';
  }
}

/** The event is not a command this service can run: an unknown type, or data that does not fit its schema. */
export class InvalidCommand extends Error {
  constructor(
    readonly why: 'unknown-type' | 'invalid-data',
    message: string,
    readonly errors: string[] = [],
  ) {
    super(message);
    this.name = 'InvalidCommand';
  }
}

/** The client hung up before its answer: work not yet started is not started (nobody would read the result). */
export class Abandoned extends Error {
  constructor(message = 'the client closed the connection before the answer') {
    super(message);
    this.name = 'Abandoned';
  }
}

/**
 * The API server refuses a watch for good (RBAC's 403 when the Role lacks `watch`): waiting by watching cannot
 * work, and trying again cannot change that. The message is the API server's own, verbatim.
 */
export class WatchRefused extends Error {
  constructor(
    /** What was watched: the resource, and the namespace when there is one. */
    readonly resource: string,
    readonly namespace: string | undefined,
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'WatchRefused';
  }
}
