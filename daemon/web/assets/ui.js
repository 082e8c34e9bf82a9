// ui.js — small DOM helpers shared by the views: building elements (text
// always as text, never as HTML), times, errors.

// h('li.msg.out', {dataset: {status: 'queued'}}, 'text', child...)
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (id) => document.getElementById(id);

// Put items in list in place of what it held, keeping the keyboard focus:
// when it was on an item's link, the new link with the same data-KEY gets
// it back.  Without this a redraw (an event, selecting the item itself)
// would drop the focus to the top of the page.
export function redraw(list, key, items) {
  const had = list.contains(document.activeElement) ? document.activeElement.dataset[key] : undefined;
  list.replaceChildren(...items);
  if (had === undefined) return;
  const again = Array.from(list.querySelectorAll('a')).find((a) => a.dataset[key] === had);
  if (again) again.focus();
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'short' });
const dateFmt = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });

export function clock(ms) { return timeFmt.format(new Date(ms)); }
export function fullTime(ms) { return fullFmt.format(new Date(ms)); }

// "now", "5 min", "14:32", "Mon", "3 Dec": short, for the lists.
export function ago(ms) {
  if (!ms) return '';
  const d = Date.now() - ms;
  if (d < 60e3) return 'now';
  if (d < 3600e3) return `${Math.floor(d / 60e3)} min`;
  const then = new Date(ms);
  const today = new Date();
  if (then.toDateString() === today.toDateString()) return clock(ms);
  if (d < 6 * 86400e3) return dayFmt.format(then);
  return dateFmt.format(then);
}

// "in 6 days", "in 3 h", "expired"
export function until(ms) {
  const d = ms - Date.now();
  if (d <= 0) return 'expired';
  if (d < 3600e3) return `expires in ${Math.max(1, Math.round(d / 60e3))} min`;
  if (d < 86400e3) return `expires in ${Math.round(d / 3600e3)} h`;
  return `expires in ${Math.round(d / 86400e3)} days`;
}

export function short(hex) { return hex ? hex.slice(0, 8) : ''; }

// An error inside a view: its message and stable code, as text.
export function showError(el, err) {
  el.replaceChildren();
  if (!err) { el.hidden = true; return; }
  const what = err.describe ? err.describe() : String(err.message || err);
  el.append(h('strong', {}, 'Error: '), what);
  if (err.name_ === 'not_implemented') {
    el.append(h('span.hint', {}, ' — this relmd does not offer it yet.'));
  }
  el.hidden = false;
}

// A passing error (a background refresh failed, a send was refused).
export function toast(err) {
  const box = $('toasts');
  const what = err.describe ? err.describe() : String(err.message || err);
  const t = h('div.toast', {}, h('span', {}, what),
    h('button.link-button', { type: 'button', 'aria-label': 'Dismiss', onclick: () => t.remove() }, '×'));
  box.append(t);
  setTimeout(() => t.remove(), 8000);
}
