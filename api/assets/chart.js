// The backups chart: stored size (bars) and duration (line) over time, drawn as inline SVG.
import { bytes, duration, el, fill } from './ui.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 200;
const PAD = { left: 8, right: 8, top: 12, bottom: 22 };

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const c of children) node.append(c);
  return node;
}

/** Draws the completed backups of `rows` (oldest left) into the <figure> `node`. */
export function chart(node, rows) {
  const done = rows.filter((b) => b.completedAt && b.sizes.storedBytes !== null).reverse();
  if (done.length < 2) {
    fill(node, el('figcaption', {}, 'The chart of sizes and durations appears after two completed backups.'));
    return;
  }
  const points = done.map((b) => ({
    size: b.sizes.storedBytes,
    secs: (new Date(b.completedAt) - new Date(b.createdAt)) / 1000,
    at: new Date(b.createdAt),
  }));
  const maxSize = Math.max(...points.map((p) => p.size), 1);
  const maxSecs = Math.max(...points.map((p) => p.secs), 1);
  const innerW = W - PAD.left - PAD.right;
  const innerH = H - PAD.top - PAD.bottom;
  const step = innerW / points.length;
  const y = (v, max) => PAD.top + innerH - (v / max) * innerH;
  const bars = points.map((p, i) => svg('rect', {
    class: 'bar', x: PAD.left + i * step + step * 0.15, width: Math.max(step * 0.7, 1),
    y: y(p.size, maxSize), height: Math.max((p.size / maxSize) * innerH, 1),
  }, svg('title', {}, `${p.at.toLocaleString()}: ${bytes(p.size)}, ${duration(p.secs)}`)));
  const line = points.map((p, i) => `${PAD.left + (i + 0.5) * step},${y(p.secs, maxSecs)}`).join(' ');
  const first = points[0].at.toLocaleDateString();
  const last = points[points.length - 1].at.toLocaleDateString();
  const graphic = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': 'chart-desc' },
    svg('line', { class: 'axis', x1: PAD.left, x2: W - PAD.right, y1: H - PAD.bottom, y2: H - PAD.bottom }),
    ...bars,
    svg('polyline', { class: 'duration', points: line }),
    svg('text', { x: PAD.left, y: H - 6 }, first),
    svg('text', { x: W - PAD.right, y: H - 6, 'text-anchor': 'end' }, last));
  fill(node, graphic, el('figcaption', { id: 'chart-desc' },
    `${points.length} completed backups from ${first} to ${last}. Bars: stored size (largest ${bytes(maxSize)}). `
    + `Line: duration (longest ${duration(maxSecs)}).`,
    el('span', { class: 'legend' }, el('span', { class: 'key bar' }), 'size ', el('span', { class: 'key line' }), 'duration')));
}
