import type { VirtualMachine } from './kubevirt-types';

// contract §6: the request ledger. One annotation on the VM holds the recent
// requests virtwake acted on for it: which request (key = hash of source and
// id), what it asked, when, how far it got and how it ended, and for a request
// whose outcome comes later (contract §2) what it waits for and until when.
// It lives on the VM, not in any process, so every replica, after any restart
// or scale to zero, decides the same way; every write carries the VM's
// resourceVersion, so two deliveries cannot both think they are first.
//
// Bounded: at most LEDGER_MAX_ENTRIES entries, none older than LEDGER_MAX_AGE_MS
// (a request still pending is kept until its deadline has been reported).
// Beyond that a redelivery is not recognised: README "Guarantees" says so.
//
// This module is the model only (parse, decide, change, serialise); the writes
// are in requests.ts.

export const LEDGER = 'virtwake.io/requests';
export const LEDGER_MAX_ENTRIES = 32;
export const LEDGER_MAX_AGE_MS = 24 * 3600_000;
/** How long a claim by another delivery is trusted to be followed by its KubeVirt call. */
export const CLAIM_TTL_MS = 30_000;

/**
 * Commands whose second call would be a second effect: a fresh claim of another
 * delivery holds them off. The others are safe to repeat (KubeVirt answers a
 * repeated start, stop, pause or unpause as already done; snapshot and restore
 * find their object by its derived name), so they simply act again.
 */
export const EXCLUSIVE_ACTIONS: ReadonlySet<string> = new Set(['restart']);

/** Commands that set the VM's power state: a newer one makes an older one stale. */
export const POWER_ACTIONS: ReadonlySet<string> = new Set(['start', 'stop', 'restart', 'pause', 'unpause']);

export type Target = 'running' | 'paused' | 'stopped' | 'unpaused' | 'new-vmi' | 'snapshot-ready' | 'restore-complete';

export interface Pending {
  target: Target;
  /** Epoch ms: past it the request is reported `<type>.failed` / Timeout. */
  deadline: number;
  /** restart: the VMI that must be replaced. */
  vmi?: string;
  /** snapshot, restore: the object virtwake created. */
  object?: string;
}

export interface Entry {
  key: string;
  action: string;
  /** Epoch ms when this entry was claimed (server clock): the ledger's order. */
  at: number;
  /** The request's ce-time (epoch ms), when it had one. */
  time?: number;
  state: 'claimed' | 'applied' | 'done';
  /** The delivery that claimed it (unique per delivery, stable across its internal retries). */
  delivery: string;
  /** The command, for the result events that come later (causationid, reply id). */
  request: { id: string; source: string; type: string };
  outcome?: 'accepted' | 'completed' | 'failed';
  reason?: string;
  pending?: Pending;
  /** snapshot, restore: the object it created (kept after it settled: retention asks which are newer). */
  object?: string;
  /** The change event (its ce id) that settled it: a redelivery of that event yields the same result. */
  by?: string;
  /**
   * Settled failed/Timeout by a reaper tick whose event has not reached K_SINK yet: the next tick sends it
   * again (same id). Kept past the age limit, like a pending entry, until it is delivered.
   */
  unreported?: true;
}

export interface Ledger {
  entries: Entry[];
  /** The VM's printableStatus as last published in io.virtwake.vm.state.changed. */
  seen?: { status: string; from?: string; by?: string };
}

export interface Ask {
  key: string;
  action: string;
  time?: number;
  delivery: string;
}

export type Decision =
  /** Nothing recorded: act, claiming first. */
  | { kind: 'new' }
  /** Our own claim, or another delivery's that expired: act again (restart checks its VMI first). */
  | { kind: 'retake'; entry: Entry }
  /** Acted on already: no second effect; answer what it came to. */
  | { kind: 'recorded'; entry: Entry }
  /** Another delivery claimed it (a restart) moments ago and may be calling KubeVirt now: hand the event back. */
  | { kind: 'busy'; entry: Entry }
  /** A newer power command was applied since: this one would undo it. */
  | { kind: 'superseded'; entry?: Entry; by: Entry };

export function readLedger(vm: VirtualMachine | undefined): Ledger {
  return parseLedger(vm?.metadata.annotations?.[LEDGER]);
}

/** A ledger that cannot be read (a hand edit) counts as empty: the next write replaces it. */
export function parseLedger(text: string | undefined): Ledger {
  if (!text) return { entries: [] };
  try {
    const v = JSON.parse(text) as Partial<Ledger>;
    const entries = Array.isArray(v.entries) ? v.entries.filter(isEntry) : [];
    const seen = v.seen && typeof v.seen.status === 'string' ? v.seen : undefined;
    return { entries, seen };
  } catch {
    return { entries: [] };
  }
}

function isEntry(e: unknown): e is Entry {
  const x = e as Entry;
  return (
    !!x &&
    typeof x.key === 'string' &&
    typeof x.action === 'string' &&
    typeof x.at === 'number' &&
    typeof x.delivery === 'string' &&
    ['claimed', 'applied', 'done'].includes(x.state) &&
    !!x.request &&
    typeof x.request.id === 'string'
  );
}

export function serialiseLedger(l: Ledger, now: number): string {
  return JSON.stringify(trim(l, now));
}

/**
 * Oldest first, by age and then by count. A pending entry outlives the age
 * limit until it is settled (a timeout until it is reported); when the count
 * is exceeded, settled entries go before pending ones.
 */
export function trim(l: Ledger, now: number): Ledger {
  const keep = (e: Entry) => !!e.pending || !!e.unreported;
  let entries = l.entries.filter((e) => keep(e) || now - e.at <= LEDGER_MAX_AGE_MS);
  while (entries.length > LEDGER_MAX_ENTRIES) {
    const i = entries.findIndex((e) => !keep(e));
    entries = entries.filter((_, j) => j !== (i >= 0 ? i : 0));
  }
  return { ...l, entries };
}

/** What a delivery of `ask` should do, given what the VM records. */
export function decide(l: Ledger, ask: Ask, now: number): Decision {
  const i = l.entries.findIndex((e) => e.key === ask.key);
  const entry = i >= 0 ? l.entries[i] : undefined;
  if (entry && entry.state !== 'claimed') return { kind: 'recorded', entry };
  if (entry) {
    // A claim that never got its outcome: the PUT may or may not have happened.
    const by = POWER_ACTIONS.has(ask.action) ? newestApplied(l.entries.slice(i + 1), ask.key) : undefined;
    if (by) return { kind: 'superseded', entry, by };
    if (EXCLUSIVE_ACTIONS.has(ask.action) && entry.delivery !== ask.delivery && now - entry.at < CLAIM_TTL_MS)
      return { kind: 'busy', entry };
    return { kind: 'retake', entry };
  }
  if (ask.time !== undefined && POWER_ACTIONS.has(ask.action)) {
    const newer = l.entries.filter((e) => e.time !== undefined && e.time > (ask.time as number));
    const by = newestApplied(newer, ask.key);
    if (by) return { kind: 'superseded', by };
  }
  return { kind: 'new' };
}

function newestApplied(entries: Entry[], key: string): Entry | undefined {
  return entries.filter((e) => e.key !== key && e.state !== 'claimed' && POWER_ACTIONS.has(e.action)).pop();
}

/** Replace (or append) the entry with `e.key`, keeping the ledger's order. */
export function upsert(l: Ledger, e: Entry): Ledger {
  const i = l.entries.findIndex((x) => x.key === e.key);
  if (i < 0) return { ...l, entries: [...l.entries, e] };
  const entries = [...l.entries];
  entries[i] = e;
  return { ...l, entries };
}

export function find(l: Ledger, key: string): Entry | undefined {
  return l.entries.find((e) => e.key === key);
}

export function pendingEntries(l: Ledger): Entry[] {
  return l.entries.filter((e) => e.state !== 'done' && e.pending);
}
