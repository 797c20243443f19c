// The pools page: each pool the autoscaler sizes, its size over time drawn
// from its decisions, and the decisions themselves. Pools have no event
// stream; the page reads them every few seconds.
import { api } from './api.js';
import { $, h, fill, status, time, duration, showError, every } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const pad = (n) => String(n).padStart(2, '0');
const hhmm = (t) => `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;

// chart draws the pool's size (active and starting workers) and desired size
// as steps over time: each decision records both at its time, and the pool's
// record gives them now.
function chart(p) {
  const pts = (p.decisions || []).slice().reverse().map((d) => ({ t: new Date(d.time), size: d.size, desired: d.desired, d }));
  pts.push({ t: new Date(p.updated && !p.updated.startsWith('0001') ? p.updated : Date.now()), size: p.size + p.starting, desired: p.desired });
  const W = 760, H = 200, L = 34, R = 12, T = 12, B = 26;
  let t0 = pts[0].t.getTime();
  let t1 = pts[pts.length - 1].t.getTime();
  if (t1 - t0 < 60000) t0 = t1 - 60000;
  const top = Math.max(1, p.policy?.min || 0, ...pts.map((q) => Math.max(q.size, q.desired))) + 1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (n) => T + (1 - n / top) * (H - T - B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `size of pool ${p.name} over time` });
  const step = Math.max(1, Math.ceil(top / 5));
  for (let n = 0; n <= top; n += step) {
    svg.append(s('line', { x1: L, x2: W - R, y1: y(n), y2: y(n), class: 'grid' }));
    svg.append(s('text', { x: L - 6, y: y(n) + 4, class: 'axis', 'text-anchor': 'end' }, n));
  }
  for (const [t, anchor] of [[t0, 'start'], [(t0 + t1) / 2, 'middle'], [t1, 'end']]) {
    svg.append(s('text', { x: x(t), y: H - 6, class: 'axis', 'text-anchor': anchor }, hhmm(new Date(t))));
  }
  // Size as a filled step area, desired as a dashed step line.
  let d = '';
  pts.forEach((q, i) => {
    d += i === 0 ? `M${x(q.t)} ${y(q.size)}` : ` H${x(q.t)} V${y(q.size)}`;
  });
  svg.append(s('path', { d: `${d} V${y(0)} H${x(pts[0].t)} Z`, class: 'area' }));
  svg.append(s('path', { d, class: 'size' }));
  let dd = '';
  pts.forEach((q, i) => {
    dd += i === 0 ? `M${x(q.t)} ${y(q.desired)}` : ` H${x(q.t)} V${y(q.desired)}`;
  });
  svg.append(s('path', { d: dd, class: 'desired' }));
  for (const q of pts) {
    if (!q.d || (q.d.action !== 'up' && q.d.action !== 'down')) continue;
    const cx = x(q.t), cy = y(q.desired);
    const tri = q.d.action === 'up' ? `M${cx - 5} ${cy + 4} L${cx + 5} ${cy + 4} L${cx} ${cy - 5} Z` : `M${cx - 5} ${cy - 4} L${cx + 5} ${cy - 4} L${cx} ${cy + 5} Z`;
    svg.append(s('path', { d: tri, class: 'mark ' + q.d.action }, s('title', {}, `${hhmm(q.t)} ${q.d.action} to ${q.d.desired}: ${q.d.reason}`)));
  }
  return h('figure', { class: 'chart' }, svg,
    h('figcaption', { class: 'note legend' },
      h('span', { class: 'swatch size' }), ' size (active + starting) · ',
      h('span', { class: 'swatch desired' }), ' desired · ▲ scaled up · ▼ scaled down'));
}

function decisions(p) {
  const list = p.decisions || [];
  if (!list.length) return h('p', { class: 'empty' }, 'No decisions yet.');
  return h('table', { class: 'list compact decisions' },
    h('thead', {}, h('tr', {}, ['Time', 'Action', 'Rule', 'Size → desired', 'Load', 'Waiting', 'Reason'].map((c) => h('th', {}, c)))),
    h('tbody', {}, list.map((d) => h('tr', {},
      h('td', {}, time(d.time)),
      h('td', {}, status(d.action)),
      h('td', { class: 'mono' }, d.rule),
      h('td', { class: 'num' }, `${d.size} → ${d.desired}`),
      h('td', { class: 'num' }, d.inputs ? `${Math.round(100 * (d.inputs.load || 0))}%` : ''),
      h('td', { class: 'num' }, d.inputs?.waitingJobs ? `${d.inputs.waitingJobs} (${d.inputs.waitingMemory} MiB)` : ''),
      h('td', {}, d.reason, d.drain ? ` (drain ${d.drain})` : '', d.error ? h('span', { class: 'bad' }, ` error: ${d.error}`) : ''),
    ))));
}

function pool(p) {
  const pol = p.policy || {};
  const ns = (v) => (v ? duration(v / 1e6) : '–'); // Go durations are in ns
  const last = p.last;
  return h('section', { class: 'panel pool', 'data-name': p.name },
    h('h2', {}, p.name, ' ', h('span', { class: 'note' }, p.provider || '')),
    h('div', { class: 'stats' },
      stat('size', p.size), stat('starting', p.starting), stat('desired', p.desired),
      stat('min / max', `${pol.min ?? 0} / ${pol.max ?? '–'}`),
      stat('high / low', `${Math.round(100 * (pol.high || 0))}% / ${Math.round(100 * (pol.low || 0))}%`),
      stat('load', last?.inputs ? `${Math.round(100 * (last.inputs.load || 0))}%` : '–'),
      stat('windows', `up ${ns(pol.window)}, down ${ns(pol.downWindow)}`),
      stat('draining', (p.draining || []).join(', ') || 'none'),
    ),
    last ? h('p', { class: 'note' }, 'Last tick ', time(last.time), ': ', h('span', { class: 'mono' }, last.rule), ' – ', last.reason) : null,
    chart(p),
    h('h3', {}, 'Recent decisions'),
    decisions(p),
  );
}

function stat(k, v) {
  return h('div', { class: 'stat' }, h('div', { class: 'k' }, k), h('div', { class: 'v' }, v));
}

async function load() {
  try {
    const res = await api('GET', '/pools?decisions=100');
    const list = res.pools || [];
    fill($('#pools'), list.map(pool));
    $('#empty').hidden = list.length > 0;
    showError(null);
  } catch (e) {
    showError(e);
  }
}

every(5000, load);
