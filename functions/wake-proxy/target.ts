import type http from 'node:http';

// What a request is for, read the way the upstream will read it, so that
// routing and the upstream cannot disagree:
//  - the path with dot segments resolved (RFC 3986 §5.2.4; %2E is a dot,
//    §2.3), so /reports/../admin is /admin and does not match /reports;
//  - an absolute-form target (GET http://erp.example.com/x) names its host in
//    the authority, which wins over Host (RFC 9112 §3.2.2);
//  - behind a Knative DomainMapping, Host is the ksvc's own host and the
//    domain the client asked for is in K-Original-Host, so that is tried first.

export interface RequestTarget {
  /** Candidate hosts, most trusted first (not yet normalised). */
  hosts: string[];
  /** Normalised path with the query. */
  path: string;
  /** The host the client addressed, to forward as Host; undefined = keep the request's. */
  forwardHost?: string;
}

export function requestTarget(url: string | undefined, headers: http.IncomingHttpHeaders): RequestTarget {
  const raw = url ?? '/';
  const absolute = /^[a-z][a-z0-9+.-]*:\/\//i.exec(raw);
  if (absolute) {
    const rest = raw.slice(absolute[0].length);
    const slash = rest.search(/[/?]/);
    const authority = (slash < 0 ? rest : rest.slice(0, slash)).replace(/^[^@]*@/, '');
    const path = slash < 0 ? '/' : rest.slice(slash);
    return { hosts: [authority], path: normalisePath(path), forwardHost: authority };
  }
  const original = header(headers['k-original-host']);
  const hosts = [original, headers.host].filter((h): h is string => !!h);
  return { hosts, path: normalisePath(raw), forwardHost: original };
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** Dot segments resolved; the query kept as it is. "*" (OPTIONS *) stays "*". */
export function normalisePath(target: string): string {
  if (target === '*') return target;
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? '' : target.slice(q);
  const input = (path.startsWith('/') ? path : `/${path}`).replace(/%2e/gi, '.').split('/').slice(1);
  const out: string[] = [];
  input.forEach((seg, i) => {
    const last = i === input.length - 1;
    if (seg === '..') {
      out.pop();
      if (last) out.push('');
    } else if (seg === '.') {
      if (last) out.push('');
    } else {
      out.push(seg);
    }
  });
  return `/${out.join('/')}${query}`;
}
