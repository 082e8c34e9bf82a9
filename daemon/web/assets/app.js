// app.js — relm's web app: the sidebar (protons, relationships with last
// activity and unread counts), routing between the views, and the event
// stream that keeps everything live.
//
// Where things are:  #/p/PROTON                      the proton
//                    #/p/PROTON/r/REL[/tree]        a conversation / its chain tree
//                    #/p/PROTON/invite|accept|devices
//                    #/join                         join a proton with a pairing code
// The address says what is shown, so a reload comes back to the same view.
//
// Unread counts: relationship.list's `unread` counts received messages and
// the API has no "read" mark, so the page remembers per relationship how
// many it has shown (localStorage, per relm-web address) and shows the
// difference.  The first time a proton is seen, everything until then
// counts as read.

import { call, EventStream } from './api.js';
import { h, $, ago, short, toast, redraw } from './ui.js';
import * as conv from './conversation.js';
import * as pv from './proton_views.js';
import { showTree, hideTree, touched } from './tree_view.js';

// The token came in the address; the cookie carries it from now on.
if (location.search) history.replaceState(null, '', location.pathname + location.hash);

// readOnly: the protons this device was removed from (daemon.status
// read_only_protons): it keeps what it has and can no longer send.
const state = { protons: [], proton: null, rels: [], loaded: false, readOnly: new Set() };
const seen = load('relm.seen', {});

function load(key, dflt) {
  try { return JSON.parse(localStorage.getItem(key)) ?? dflt; } catch (e) { return dflt; }
}
function save(key, v) {
  try { localStorage.setItem(key, JSON.stringify(v)); } catch (e) { /* private mode: counts reset */ }
}

// ---- routing ----

function parse() {
  const p = location.hash.replace(/^#\/?/, '').split('/');
  const r = { proton: null, rel: null, view: p[0] === 'join' ? 'join' : 'welcome' };
  if (p[0] === 'p' && /^[0-9a-f]{32}$/.test(p[1] || '')) {
    r.proton = p[1];
    r.view = 'proton';
    if (p[2] === 'r' && /^[0-9a-f]{32}$/.test(p[3] || '')) {
      r.rel = p[3];
      r.view = p[4] === 'tree' ? 'tree' : 'conv';
    } else if (['invite', 'accept', 'devices'].includes(p[2])) {
      r.view = p[2];
    }
  }
  return r;
}

const VIEWS = ['view-welcome', 'view-rel', 'view-invite', 'view-accept', 'view-devices', 'view-join'];
function showView(id) {
  for (const v of VIEWS) $(v).hidden = v !== id;
}

async function route() {
  const r = parse();
  if (r.view === 'join') {
    // a device that holds no proton yet can join one: no proton needed
    conv.close();
    hideTree();
    $('proton-actions').hidden = true;
    showView('view-join');
    pv.showJoin();
    return;
  }
  if (!r.proton || !state.protons.some((p) => p.proton === r.proton)) {
    if (state.protons.length) { location.replace(`#/p/${state.protons[0].proton}`); return; }
    state.proton = null;
    renderProtons();
    renderRels();
    showView('view-welcome');
    return;
  }
  if (state.proton !== r.proton) {
    state.proton = r.proton;
    state.rels = [];
    await loadRels();
  }
  renderProtons();
  const base = `#/p/${r.proton}`;
  $('proton-actions').hidden = false;
  $('act-invite').href = `${base}/invite`;
  $('act-accept').href = `${base}/accept`;
  $('act-devices').href = `${base}/devices`;
  for (const [id, v] of [['act-invite', 'invite'], ['act-accept', 'accept'], ['act-devices', 'devices']]) {
    if (r.view === v) $(id).setAttribute('aria-current', 'page'); else $(id).removeAttribute('aria-current');
  }

  if (r.view !== 'conv' && r.view !== 'tree') conv.close();
  if (r.view !== 'tree') hideTree();
  switch (r.view) {
    case 'conv':
    case 'tree': openRel(r); break;
    case 'invite': showView('view-invite'); pv.showInvite(r.proton); break;
    case 'accept': showView('view-accept'); pv.showAccept(r.proton); break;
    case 'devices': showView('view-devices'); await pv.showDevices(r.proton); break;
    default: {
      const first = sortedRels()[0];
      if (first) { location.replace(`${base}/r/${first.relationship}`); return; }
      showView('view-welcome');
    }
  }
  renderRels();
}

function openRel(r) {
  const rel = state.rels.find((x) => x.relationship === r.rel);
  const label = rel ? relLabel(rel) : `relationship ${short(r.rel)}`;
  showView('view-rel');
  $('rel-label').textContent = label;
  $('rel-sub').textContent = rel ? `their key ${rel.remote_ipk.slice(0, 16)}…` : '';
  const base = `#/p/${r.proton}/r/${r.rel}`;
  $('tab-conv').href = base;
  $('tab-tree').href = `${base}/tree`;
  $('tab-conv').setAttribute('aria-selected', String(r.view === 'conv'));
  $('tab-tree').setAttribute('aria-selected', String(r.view === 'tree'));
  $('pane-conv').hidden = r.view !== 'conv';
  $('pane-tree').hidden = r.view !== 'tree';
  conv.setReadOnly(state.readOnly.has(r.proton));
  if (r.view === 'conv') {
    conv.open(r.rel, label);
    markSeen(r.rel);
  } else {
    conv.close();
    showTree(r.rel);
  }
}

// ---- protons ----

async function loadProtons() {
  try {
    state.protons = (await call('proton.list')).protons;
    state.readOnly = new Set((await call('daemon.status')).read_only_protons || []);
  } catch (e) {
    toast(e);
  }
  renderProtons();
}

function renderProtons() {
  redraw($('protons'), 'proton', state.protons.map((p) => h('li', {},
    h('a.proton', {
      href: `#/p/${p.proton}`,
      'aria-current': p.proton === state.proton ? 'true' : null,
      dataset: { proton: p.proton },
    },
    h('span.avatar', { 'aria-hidden': 'true' }, initial(p.label)),
    h('span.proton-label', {}, p.label),
    state.readOnly.has(p.proton)
      ? h('span.pill', { title: 'This device was removed from this proton' }, 'read-only')
      : h('span.muted.small', {}, p.devices === 1 ? '1 device' : `${p.devices} devices`)))));
}

async function createProton(e) {
  e.preventDefault();
  const input = $('proton-label');
  const label = input.value.trim();
  if (!label) return;
  try {
    const r = await call('proton.create', { label });
    input.value = '';
    await loadProtons();
    location.hash = `#/p/${r.proton}`;
  } catch (err) {
    toast(err);
  }
}

// ---- relationships ----

function relLabel(r) { return r.label || `unnamed ${short(r.remote_ipk)}`; }
function initial(s) { return (s || '?').trim().charAt(0).toUpperCase() || '?'; }
function sortedRels() { return state.rels.slice().sort((a, b) => (b.last_activity || 0) - (a.last_activity || 0)); }

async function loadRels() {
  const p = state.proton;
  if (!p) return;
  try {
    const rels = (await call('relationship.list', { proton: p })).relationships;
    if (p !== state.proton) return;
    state.rels = rels;
    if (!load(`relm.baseline.${p}`, false)) {
      for (const r of rels) seen[r.relationship] = r.unread;
      save(`relm.baseline.${p}`, true);
      save('relm.seen', seen);
    }
  } catch (e) {
    toast(e);
  }
  const cur = conv.current();
  if (cur) markSeen(cur);
  renderRels();
}

function markSeen(rel) {
  const r = state.rels.find((x) => x.relationship === rel);
  if (r && seen[rel] !== r.unread) { seen[rel] = r.unread; save('relm.seen', seen); }
}

function unread(r) { return Math.max(0, r.unread - (seen[r.relationship] ?? 0)); }

function renderRels() {
  const cur = parse().rel;
  $('rels-empty').hidden = !state.proton || state.rels.length > 0;
  redraw($('relationships'), 'relationship', sortedRels().map((r) => {
    const n = unread(r);
    return h('li', {}, h('a.rel', {
      href: `#/p/${state.proton}/r/${r.relationship}`,
      'aria-current': r.relationship === cur ? 'page' : null,
      dataset: { relationship: r.relationship },
    },
    h('span.avatar', { 'aria-hidden': 'true' }, initial(r.label)),
    h('span.rel-label', {}, relLabel(r)),
    h('span.rel-time', { title: r.last_activity ? new Date(r.last_activity).toLocaleString() : '' }, ago(r.last_activity)),
    n ? h('span.badge', { 'aria-label': `${n} unread` }, String(n)) : null));
  }));
}

let relsTimer = null;
function refreshRels() {
  if (relsTimer) return;
  relsTimer = setTimeout(() => { relsTimer = null; loadRels(); }, 250);
}
// Once a minute: the "5 min" ages, and a fresh relationship.list, since
// relmd's last_activity also moves with steps no event announces (the
// receipts this device sends, 0.2-2 s after each message it receives).
setInterval(loadRels, 60000);

// ---- events ----

function onEvent(ev) {
  switch (ev.type) {
    case 'message.received':
    case 'message.sent':
    case 'message.status':
      conv.onEvent(ev);
      refreshRels();        // a receipt moves last_activity too
      break;
    case 'relationship.created':
      if (ev.proton === state.proton) refreshRels();
      break;
    case 'proton.created':  // made by another client, or joined
      loadProtons();
      break;
    case 'device.added':
    case 'device.removed':
    case 'identity.rotated':
      // a removal may be of this device: the proton turns read-only
      loadProtons().then(() => { if (ev.type === 'device.removed') route(); });
      pv.onDeviceEvent(ev);
      break;
    default:
      break;
  }
  if (ev.relationship) touched(ev.relationship);
}

async function onSubscribed(res) {
  if (!state.loaded) {
    state.loaded = true;
    await loadProtons();
    await route();
  } else if (res.gap) {
    // Some events are gone: read everything again.
    await loadProtons();
    await loadRels();
    await conv.reload();
    await route();
  }
}

const CONN_TEXT = { live: 'Live', reconnecting: 'Reconnecting…', down: 'relmd unreachable — retrying' };
function onState(s) {
  $('conn').dataset.state = s;
  $('conn').textContent = CONN_TEXT[s] || s;
  // Without a stream the page still shows what it can, with the errors.
  if (s === 'down' && !state.loaded) onSubscribed({ gap: false });
}

// ---- start ----

conv.init({ changed: () => {} });
pv.init({
  accepted: async (p, rel) => { await loadRels(); location.hash = `#/p/${p}/r/${rel}`; },
  joined: async (p) => { await loadProtons(); location.hash = `#/p/${p}`; },
});
$('proton-new').addEventListener('submit', createProton);
window.addEventListener('hashchange', () => { route(); });
new EventStream({ event: onEvent, subscribed: onSubscribed, state: onState });
