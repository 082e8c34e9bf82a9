// api.js — the page's only way to relmd: POST /api (one JSON-RPC call per
// request) and GET /events (relmd's events as Server-Sent Events), both
// served by relm-web (proto/web.md).  The access token travels in an
// HttpOnly cookie; this file never sees it.

let nextId = 1;

// An error from relmd (its JSON-RPC error) or from relm-web (a refusal, or
// relmd unreachable), in one shape: message, code, name (data.code).
export class ApiError extends Error {
  constructor(method, err) {
    super(err && err.message ? err.message : 'unknown error');
    this.method = method;
    this.code = err && typeof err.code === 'number' ? err.code : 0;
    this.name_ = err && err.data && err.data.code ? err.data.code : '';
    this.field = err && err.data && err.data.field ? err.data.field : '';
  }
  // "device.pair.begin: not implemented yet (not_implemented)"
  describe() {
    return `${this.method}: ${this.message}${this.name_ ? ` (${this.name_})` : ''}`;
  }
}

// Call method with params; resolves to the result object or rejects with
// an ApiError.
export async function call(method, params) {
  const body = JSON.stringify({ jsonrpc: '2.0', id: nextId++, method, params: params || {} });
  let res;
  try {
    res = await fetch('/api', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body,
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(method, { message: 'relm-web is not reachable (was it stopped?)', data: { code: 'unreachable' } });
  }
  let reply;
  try {
    reply = await res.json();
  } catch (e) {
    throw new ApiError(method, { code: res.status, message: `HTTP ${res.status} from relm-web`, data: { code: 'http' } });
  }
  if (reply && reply.error) throw new ApiError(method, reply.error);
  if (!reply || typeof reply.result !== 'object') {
    throw new ApiError(method, { message: 'relm-web sent a reply without a result', data: { code: 'protocol' } });
  }
  return reply.result;
}

// A QR code for text, as an <svg> element drawn by relm-web.
export async function qr(text, label) {
  let res;
  try {
    res = await fetch('/qr', {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain;charset=utf-8' },
      body: text,
      credentials: 'same-origin',
    });
  } catch (e) {
    throw new ApiError('qr', { message: 'relm-web is not reachable', data: { code: 'unreachable' } });
  }
  if (!res.ok) {
    let err = { message: `HTTP ${res.status}` };
    try { err = (await res.json()).error || err; } catch (e) { /* keep the status */ }
    throw new ApiError('qr', err);
  }
  const doc = new DOMParser().parseFromString(await res.text(), 'image/svg+xml');
  const svg = doc.documentElement;
  if (svg.nodeName !== 'svg') throw new ApiError('qr', { message: 'not an SVG image', data: { code: 'protocol' } });
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.classList.add('qr-svg');
  return document.importNode(svg, true);
}

// The event stream.  handlers: event(params), subscribed(result),
// state('live' | 'reconnecting' | 'down').  The browser reconnects by itself
// with Last-Event-ID after a dropped stream; when relm-web answered with an
// error instead (relmd unreachable), the browser gives up, and we open a
// new stream with ?since= the last seq seen, so nothing is missed either way.
export class EventStream {
  constructor(handlers) {
    this.h = handlers;
    this.lastSeq = null;
    this.delay = 1000;
    this.open();
  }

  open() {
    const url = this.lastSeq === null ? '/events' : `/events?since=${this.lastSeq}`;
    const es = new EventSource(url);
    this.es = es;
    es.addEventListener('subscribed', (e) => {
      const seq = Number(e.lastEventId);
      if (e.lastEventId !== '' && Number.isFinite(seq)) this.lastSeq = seq;
      this.delay = 1000;
      this.h.state('live');
      this.h.subscribed(JSON.parse(e.data));
    });
    es.onmessage = (e) => {
      const seq = Number(e.lastEventId);
      if (e.lastEventId !== '' && Number.isFinite(seq)) this.lastSeq = seq;
      this.h.event(JSON.parse(e.data));
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        this.h.state('down');
        setTimeout(() => this.open(), this.delay);
        this.delay = Math.min(this.delay * 2, 15000);
      } else {
        this.h.state('reconnecting');
      }
    };
  }
}

// 16 random bytes as lowercase hex: a message id the page chooses, so a
// send retried after an error is sent once (message.send's id).
export function newId() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
