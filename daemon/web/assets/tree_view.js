// tree_view.js — the "Chain tree" tab: relationship.show's tree as a
// picture (tree.js), its counters, and the same nodes as a table for
// screen readers and for copying ids.

import { call } from './api.js';
import { h, $, showError } from './ui.js';
import { drawTree } from './tree.js';

let shown = null;
let timer = null;

export async function showTree(rel) {
  shown = rel;
  try {
    const r = await call('relationship.show', { relationship: rel });
    if (shown !== rel) return;
    render(r);
  } catch (e) {
    if (shown !== rel) return;
    $('tree-figure').replaceChildren();
    const box = h('div.error', { role: 'alert' });
    showError(box, e);
    $('tree-summary').replaceChildren(box);
  }
}

export function hideTree() { shown = null; }

// An event about rel: draw again, at most every 300 ms.
export function touched(rel) {
  if (rel !== shown || timer) return;
  timer = setTimeout(() => { timer = null; if (shown) showTree(shown); }, 300);
}

function stat(label, value) {
  return h('div.stat', {}, h('span.stat-value', {}, String(value ?? '–')), h('span.stat-label', {}, label));
}

function render(r) {
  const t = r.tree || { nodes: [], chosen: null, pending: 0 };
  const kids = new Map();
  for (const n of t.nodes) if (n.parent) kids.set(n.parent, (kids.get(n.parent) || 0) + 1);
  const forks = [...kids.values()].filter((k) => k > 1).length;
  $('tree-summary').replaceChildren(
    stat('nodes', t.nodes.length),
    stat('forks now', forks),
    stat('forks seen', r.forks),
    stat('pruned', r.pruned),
    stat('pending', t.pending),
    stat('awaiting receipt', r.unacknowledged),
    stat('mode', r.mode));
  $('tree-figure').replaceChildren(drawTree(r));
  const fig = $('tree-figure');
  fig.scrollLeft = fig.scrollWidth;
  $('tree-table').tBodies[0].replaceChildren(...t.nodes.map((n) => h('tr', {},
    h('td.mono', {}, n.node.slice(0, 12)),
    h('td.mono', {}, n.parent ? n.parent.slice(0, 12) : '—'),
    h('td', {}, n.side),
    h('td', {}, String(n.depth)),
    h('td', {}, n.valid ? 'yes' : 'not yet'),
    h('td', {}, typeof n.n === 'number' ? String(n.n) : '–'),
    h('td', {}, n.node === t.chosen ? 'chosen' : ''))));
}
