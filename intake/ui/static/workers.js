// The workers page: each live worker with a memory bar (reserved and
// measured use against its allowance) and a drain button. Heartbeats have
// no event stream; the page reads them every few seconds.
import { api } from './api.js';
import { $, h, fill, status, ago, showError, every } from './dom.js';

const pct = (n, of) => (of > 0 ? Math.min(100, (100 * n) / of) : 0);

function bar(w) {
  const reserved = h('div', { class: 'reserved' });
  reserved.style.width = pct(w.reserved, w.allowance) + '%';
  const used = h('div', { class: 'used' });
  used.style.width = pct(w.used || 0, w.allowance) + '%';
  const title = `${w.reserved} MiB reserved, ${w.used || 0} MiB used, of ${w.allowance} MiB`;
  return h('div', { class: 'membar', title, role: 'img', 'aria-label': title }, reserved, used);
}

function row(w) {
  const drain = w.state === 'ACTIVE'
    ? h('button', { class: 'quiet', onclick: (e) => drainWorker(w.id, e.target) }, 'Drain')
    : null;
  return h('tr', { 'data-id': w.id },
    h('td', { class: 'mono' }, w.id),
    h('td', {}, w.pool),
    h('td', {}, status(w.state)),
    h('td', {}, w.host),
    h('td', {}, (w.clusters || []).join(', ')),
    h('td', { class: 'mem' }, bar(w),
      h('div', { class: 'memtext' },
        h('span', { class: 'r' }, `${w.reserved} reserved`), ' · ',
        h('span', { class: 'u' }, `${w.used || 0} used`), ' · ',
        `${w.allowance} allowance`)),
    h('td', { class: 'mono' }, (w.jobs || []).map((id) => h('a', { href: '/jobs/' + encodeURIComponent(id), class: 'jobref' }, id))),
    h('td', {}, ago(w.heartbeat)),
    h('td', {}, drain),
  );
}

async function drainWorker(id, button) {
  if (!confirm(`Drain worker ${id}? It takes no new jobs, finishes its running ones, then exits.`)) return;
  button.disabled = true;
  try {
    await api('POST', `/workers/${encodeURIComponent(id)}/drain`);
    await load();
  } catch (e) {
    showError(e);
    button.disabled = false;
  }
}

async function load() {
  try {
    const res = await api('GET', '/workers');
    const ws = res.workers || [];
    fill($('#workers tbody'), ws.map(row));
    $('#empty').hidden = ws.length > 0;
    const sum = (k) => ws.reduce((n, w) => n + (w[k] || 0), 0);
    $('#totals').textContent = ws.length
      ? `${ws.length} live · ${sum('reserved')} of ${sum('allowance')} MiB reserved · ${sum('used')} MiB used`
      : '';
    showError(null);
  } catch (e) {
    showError(e);
  }
}

every(3000, load);
