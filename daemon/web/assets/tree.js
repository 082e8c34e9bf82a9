// tree.js — relationship.show's chain tree drawn as SVG.
//
// Depth runs left to right.  The path to the chosen node is the main line
// (row 0); every other branch gets rows below, so a fork is seen as a
// second line leaving the main one.  Ours nodes are filled, theirs hollow,
// nodes not yet acknowledged dashed; the chosen node has a ring and a
// label; nodes with more than one child are marked as forks.

const NS = 'http://www.w3.org/2000/svg';
const DX = 84, DY = 64, R = 11, PAD = 36;

function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// Lay out: {pos: Map(node -> {x, y}), rows, cols, forks: Set, children}.
export function layout(tree) {
  const nodes = tree.nodes || [];
  const byId = new Map(nodes.map((n) => [n.node, n]));
  const children = new Map();
  const roots = [];
  for (const n of nodes) {
    if (n.parent && byId.has(n.parent)) {
      if (!children.has(n.parent)) children.set(n.parent, []);
      children.get(n.parent).push(n);
    } else {
      roots.push(n);
    }
  }
  // The chosen path first, then by node id: the same picture every time.
  const onPath = new Set();
  for (let id = tree.chosen; id && byId.has(id); id = byId.get(id).parent) onPath.add(id);
  const order = (a, b) => (onPath.has(b.node) - onPath.has(a.node)) || (a.node < b.node ? -1 : 1);
  const minDepth = Math.min(...nodes.map((n) => n.depth));
  const pos = new Map();
  let row = 0;
  let cols = 0;
  // Iterative depth-first walk (a long chain must not overflow the stack):
  // a first child stays on its parent's row, each further child opens the
  // row after the last leaf drawn.
  const stack = roots.sort(order).reverse();
  while (stack.length) {
    const n = stack.pop();
    if (pos.has(n.node)) continue;
    const col = n.depth - minDepth;
    pos.set(n.node, { x: col, y: row });
    cols = Math.max(cols, col + 1);
    const kids = (children.get(n.node) || []).slice().sort(order);
    if (kids.length === 0) row++;
    for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]);
  }
  const forks = new Set([...children].filter(([, k]) => k.length > 1).map(([id]) => id));
  return { pos, rows: Math.max(row, 1), cols, forks, byId, children };
}

// The <svg> for a relationship.show result.
export function drawTree(show) {
  const tree = show.tree || { nodes: [] };
  const svg = s('svg', { class: 'tree-svg', role: 'img' });
  if (!tree.nodes.length) {
    svg.setAttribute('aria-label', 'Chain tree: no nodes yet');
    return svg;
  }
  const L = layout(tree);
  const X = (p) => PAD + p.x * DX;
  const Y = (p) => PAD + p.y * DY;
  const w = PAD * 2 + (L.cols - 1) * DX + 40;
  const hgt = PAD * 2 + (L.rows - 1) * DY + 18;
  svg.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
  svg.setAttribute('width', w);
  svg.setAttribute('height', hgt);
  const chosen = tree.chosen && L.byId.get(tree.chosen);
  svg.setAttribute('aria-label',
    `Chain tree: ${tree.nodes.length} nodes, ${L.forks.size} ${L.forks.size === 1 ? 'fork' : 'forks'}` +
    (chosen ? `, chosen node ${chosen.node.slice(0, 8)} at depth ${chosen.depth}` : ', no chosen node yet'));

  const edges = s('g', { class: 'edges' });
  for (const n of tree.nodes) {
    if (!n.parent || !L.pos.has(n.parent)) continue;
    const a = L.pos.get(n.parent), b = L.pos.get(n.node);
    const d = a.y === b.y
      ? `M${X(a)} ${Y(a)}H${X(b)}`
      : `M${X(a)} ${Y(a)}C${X(a) + DX * 0.55} ${Y(a)} ${X(b) - DX * 0.55} ${Y(b)} ${X(b)} ${Y(b)}`;
    edges.append(s('path', { d, class: b.y === 0 ? 'edge main' : 'edge' }));
  }
  svg.append(edges);

  for (const n of tree.nodes) {
    const p = L.pos.get(n.node);
    const g = s('g', {
      class: ['node', n.side, n.valid ? 'valid' : 'invalid', n.node === tree.chosen ? 'chosen' : '',
        L.forks.has(n.node) ? 'fork' : ''].join(' ').trim(),
      'data-node': n.node,
    });
    g.append(s('title', {}, `${n.node}\n${n.side}, depth ${n.depth}, ${n.valid ? 'valid' : 'not yet acknowledged'}` +
      (typeof n.n === 'number' ? `, ${n.n} messages` : '')));
    if (n.node === tree.chosen) g.append(s('circle', { cx: X(p), cy: Y(p), r: R + 6, class: 'ring' }));
    if (L.forks.has(n.node)) g.append(s('rect', { x: X(p) - R - 4, y: Y(p) - R - 4, width: 2 * R + 8, height: 2 * R + 8, rx: 5, class: 'fork-mark' }));
    g.append(s('circle', { cx: X(p), cy: Y(p), r: R, class: 'dot' }));
    g.append(s('text', { x: X(p), y: Y(p) + R + 16, class: 'id' }, n.node.slice(0, 6)));
    if (n.node === tree.chosen) g.append(s('text', { x: X(p), y: Y(p) - R - 12, class: 'tag chosen-tag' }, 'chosen'));
    else if (L.forks.has(n.node)) g.append(s('text', { x: X(p), y: Y(p) - R - 12, class: 'tag fork-tag' }, 'fork'));
    svg.append(g);
  }
  return svg;
}
