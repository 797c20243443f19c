// The jobs page: a filtered, paged list that follows status events, and a
// form to submit a job.
import { api, follow } from './api.js';
import { $, h, fill, status, time, duration, showError, throttle, words } from './dom.js';

const params = new URLSearchParams(location.search);
const PAGE = Math.min(Math.max(Number(params.get('limit')) || 25, 1), 1000);
const filters = ['user', 'status', 'cluster', 'tag', 'limit'];
const cursor = params.get('cursor') || '';
// prev holds the cursors of the pages before this one ('-' is the first),
// so that "Previous" works although the API pages forward only.
const prev = (params.get('prev') || '').split(',').filter(Boolean);

function query(extra) {
  const q = new URLSearchParams();
  for (const f of filters) if (params.get(f)) q.set(f, params.get(f));
  for (const [k, v] of Object.entries(extra)) if (v) q.set(k, v);
  return q;
}

function row(j) {
  const ran = j.started ? (j.finished ? new Date(j.finished) : Date.now()) - new Date(j.started) : null;
  return h('tr', { 'data-id': j.id },
    h('td', { class: 'mono' }, h('a', { href: '/jobs/' + encodeURIComponent(j.id) }, j.id)),
    h('td', {}, j.name || ''),
    h('td', {}, j.user || ''),
    h('td', { class: 'st' }, status(j.status)),
    h('td', {}, j.cluster || ''),
    h('td', {}, j.command || ''),
    h('td', { class: 'mono' }, j.worker || ''),
    h('td', {}, time(j.created)),
    h('td', { class: 'num' }, duration(ran)),
    h('td', { class: 'num' }, j.exitCode ?? ''),
  );
}

async function load() {
  try {
    const q = query({ cursor });
    q.set('limit', String(PAGE));
    const res = await api('GET', '/jobs?' + q);
    fill($('#jobs tbody'), res.jobs.map(row));
    $('#empty').hidden = res.jobs.length > 0;
    pager(res.next);
    showError(null);
  } catch (e) {
    showError(e);
  }
}

function pager(next) {
  const link = (el, show, q) => {
    el.hidden = !show;
    if (show) el.href = '/?' + q;
  };
  link($('#first'), prev.length > 1, query({}));
  const back = prev[prev.length - 1];
  link($('#prev'), prev.length > 0, query({ cursor: back === '-' ? '' : back, prev: prev.slice(0, -1).join(',') }));
  link($('#next'), !!next, query({ cursor: next, prev: [...prev, cursor || '-'].join(',') }));
}

// Live: a known row changes its status at once; the page is read again
// (at most once a second) so that new jobs and times show up. Later pages
// are left alone, so that rows do not move under the reader.
const reload = throttle(load, 1000);
follow('', (name, ev) => {
  if (name === 'resync') return reload();
  if (name !== 'status') return;
  const tr = document.querySelector(`#jobs tr[data-id="${CSS.escape(ev.id)}"]`);
  if (tr) fill(tr.querySelector('.st'), status(ev.status));
  if (!cursor || tr) reload();
}, reload);
load();

// Submitting: the form's fields become a job request.
$('#submit-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const req = { command: words(f.get('command')) };
  const opt = (k, v) => {
    if (v !== '' && v !== undefined && !(Array.isArray(v) && v.length === 0)) req[k] = v;
  };
  opt('id', f.get('id').trim());
  opt('name', f.get('name').trim());
  opt('user', f.get('user').trim());
  opt('tags', words(f.get('tags')));
  opt('clusters', f.get('clusters').split('|').map(words).filter((c) => c.length));
  opt('args', f.get('args').split('\n').map((a) => a.trimEnd()).filter((a) => a !== ''));
  if (f.get('memory')) req.memory = Number(f.get('memory'));
  if (f.get('timeout')) req.timeout = Number(f.get('timeout'));
  const out = $('#submit-result');
  try {
    const j = await api('POST', '/jobs', req);
    fill(out, 'Submitted ', h('a', { href: '/jobs/' + encodeURIComponent(j.id) }, j.id), ' ', status(j.status));
    out.className = 'note ok';
    e.target.elements.namedItem('id').value = '';
    reload();
  } catch (err) {
    fill(out, err.message);
    out.className = 'note bad';
  }
});
