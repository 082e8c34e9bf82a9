// conversation.js — one relationship's messages: history from message.list,
// live updates from the event stream, sending with a page-chosen id.
//
// Nothing is lost across a reload: the page subscribes first (app.js waits
// for the stream's `subscribed`), then reads the history; events for this
// relationship that arrive while the history loads are held and applied
// after it, each message once (by id).

import { call, newId } from './api.js';
import { h, $, clock, fullTime, showError } from './ui.js';

const PAGE = 100;
// A status only moves forward; a late reply to message.send ("queued") must
// not undo a "delivered" that its events already brought.
const RANK = { sending: 0, queued: 1, posted: 2, delivered: 3, failed: 4 };

let cur = null;          // { rel, label, msgs: Map(id -> {m, el}), loading, held: [], oldest }
let lastFailed = null;   // { rel, text, id }: sending the same text again reuses the id
let onChange = () => {};

export function init(hooks) {
  onChange = hooks.changed;
  const box = $('message-box');
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  });
  box.addEventListener('input', grow);
  $('composer').addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  $('older').addEventListener('click', older);
}

function grow() {
  const box = $('message-box');
  box.style.height = 'auto';
  box.style.height = `${Math.min(box.scrollHeight, 220)}px`;
}

export function current() { return cur ? cur.rel : null; }

export async function open(rel, label) {
  if (cur && cur.rel === rel) { cur.label = label; return; }
  cur = { rel, label, msgs: new Map(), loading: true, held: [], oldest: null };
  const mine = cur;
  $('messages').replaceChildren();
  $('older').hidden = true;
  $('conv-empty').hidden = true;
  showError($('composer-error'), null);
  try {
    const r = await call('message.list', { relationship: rel, limit: PAGE });
    if (cur !== mine) return;
    const list = r.messages.slice().reverse();
    for (const m of list) add(m, false);
    cur.oldest = r.messages.length ? r.messages[r.messages.length - 1].message : null;
    $('older').hidden = r.messages.length < PAGE;
  } catch (e) {
    if (cur === mine) showError($('composer-error'), e);
  }
  if (cur !== mine) return;
  cur.loading = false;
  for (const ev of cur.held) apply(ev);
  cur.held = [];
  empty();
  scrollDown(true);
}

export function close() { cur = null; }

// A proton this device was removed from: what it holds stays readable,
// sending is refused (read_only), so the message box says so instead.
export function setReadOnly(ro) {
  $('message-box').disabled = ro;
  $('send').disabled = ro;
  $('composer-note').hidden = !ro;
  $('composer-note').textContent = ro
    ? 'This device was removed from this proton: it keeps what it has, and can no longer send.'
    : '';
}

// Re-read the history (after a gap in the event stream).
export async function reload() {
  if (!cur) return;
  const { rel, label } = cur;
  cur = null;
  await open(rel, label);
}

async function older() {
  if (!cur || !cur.oldest) return;
  const mine = cur;
  const wrap = $('messages-wrap');
  const before = wrap.scrollHeight;
  try {
    const r = await call('message.list', { relationship: cur.rel, before: cur.oldest, limit: PAGE });
    if (cur !== mine) return;
    const frag = document.createDocumentFragment();
    for (const m of r.messages.slice().reverse()) {
      if (m.kind !== 'text' || cur.msgs.has(m.message)) continue;
      const el = render(m);
      cur.msgs.set(m.message, { m, el });
      frag.append(el);
    }
    $('messages').prepend(frag);
    cur.oldest = r.messages.length ? r.messages[r.messages.length - 1].message : cur.oldest;
    $('older').hidden = r.messages.length < PAGE;
    wrap.scrollTop = wrap.scrollHeight - before;
  } catch (e) {
    showError($('composer-error'), e);
  }
}

export function onEvent(ev) {
  if (!cur || ev.relationship !== cur.rel) return;
  if (cur.loading) { cur.held.push(ev); return; }
  apply(ev);
}

function apply(ev) {
  if (ev.type === 'message.status') {
    setStatus(ev.message, ev.status, ev.reason);
  } else if (ev.type === 'message.received' || ev.type === 'message.sent') {
    add({
      message: ev.message,
      direction: ev.type === 'message.received' ? 'in' : 'out',
      kind: ev.kind,
      ts: ev.sent_ts || ev.ts,
      status: ev.type === 'message.received' ? 'none' : 'queued',
      origin: ev.origin,
      body: ev.body,
    }, true);
  }
}

function add(m, live) {
  if (m.kind !== 'text' || cur.msgs.has(m.message)) return;
  const el = render(m);
  cur.msgs.set(m.message, { m, el });
  const near = nearBottom();
  $('messages').append(el);
  empty();
  if (live) { scrollDown(near || m.origin === 'self'); onChange(); }
}

function empty() { $('conv-empty').hidden = cur.msgs.size > 0; }

function nearBottom() {
  const w = $('messages-wrap');
  return w.scrollHeight - w.scrollTop - w.clientHeight < 80;
}

function scrollDown(yes) {
  if (!yes) return;
  const w = $('messages-wrap');
  w.scrollTop = w.scrollHeight;
}

const ORIGIN_TEXT = { self: 'you', sibling: 'you, on another device', remote: '' };

function render(m) {
  const out = m.direction === 'out';
  const who = out ? ORIGIN_TEXT[m.origin] || 'you' : (cur.label || 'them');
  const li = h(`li.msg.${out ? 'out' : 'in'}`, {
    dataset: { message: m.message, status: m.status, origin: m.origin || (out ? 'self' : 'remote') },
  });
  li.append(h('span.sr-only', {}, `From ${who}:`));
  li.append(h('div.bubble', {}, h('p.body', {}, m.body)));
  const meta = h('div.meta', {},
    h('time', { datetime: new Date(m.ts).toISOString(), title: fullTime(m.ts) }, clock(m.ts)));
  if (m.origin === 'sibling') meta.append(h('span.origin', {}, 'from another of your devices'));
  if (out) meta.append(h('span.status', { dataset: { status: m.status } }, m.status === 'sending' ? 'sending' : m.status));
  if (m.status === 'failed' && m.reason) meta.append(h('span.reason', {}, m.reason));
  li.append(meta);
  return li;
}

function setStatus(id, status, reason) {
  const e = cur && cur.msgs.get(id);
  if (!e || e.m.direction !== 'out') return;
  if ((RANK[status] ?? 0) < (RANK[e.m.status] ?? 0)) return;
  e.m.status = status;
  e.m.reason = reason;
  const fresh = render(e.m);
  e.el.replaceWith(fresh);
  e.el = fresh;
}

async function submit() {
  const box = $('message-box');
  const text = box.value;
  if (!cur || !text.trim()) return;
  const rel = cur.rel;
  const id = lastFailed && lastFailed.rel === rel && lastFailed.text === text ? lastFailed.id : newId();
  box.value = '';
  grow();
  showError($('composer-error'), null);
  add({ message: id, direction: 'out', kind: 'text', ts: Date.now(), status: 'sending', origin: 'self', body: text }, true);
  try {
    const r = await call('message.send', { relationship: rel, body: text, id });
    lastFailed = null;
    if (cur && cur.rel === rel) setStatus(r.message, r.status);
  } catch (e) {
    // Not sent (or not known to be): take the bubble back, give the text
    // back, and keep the id so sending it again cannot send it twice.
    lastFailed = { rel, text, id };
    if (cur && cur.rel === rel) {
      const x = cur.msgs.get(id);
      if (x && x.m.status === 'sending') { x.el.remove(); cur.msgs.delete(id); empty(); }
      if (!box.value) { box.value = text; grow(); }
      showError($('composer-error'), e);
    }
  }
}
