// The job page: summary, status history, request, live stdout and stderr,
// output files and a kill button. It follows the job's status events.
import { API, api, follow, left, stream } from './api.js';
import { $, h, fill, status, time, duration, bytes, showError, throttle, TERMINAL } from './dom.js';

const id = document.body.dataset.id;
const base = '/jobs/' + encodeURIComponent(id);
// A log shown in the page stops following past this size; the whole file
// stays a link away.
const LOG_LIMIT = 2 << 20;

let current = null; // the job as last read
let filesPath = '';

function summary(j) {
  const row = (k, v) => (v === undefined || v === null || v === '' ? null : h('tr', {}, h('th', {}, k), h('td', {}, v)));
  const ran = j.started ? (j.finished ? new Date(j.finished) : Date.now()) - new Date(j.started) : null;
  const waited = j.queued && (j.started || j.finished) ? new Date(j.started || j.finished) - new Date(j.queued) : null;
  fill($('#summary tbody'),
    row('Name', j.name),
    row('User', j.user),
    row('Cluster', j.cluster),
    row('Command', j.command),
    row('Worker', j.worker),
    row('Attempt', j.attempt || null),
    row('Memory', j.memory ? `${j.memory} MiB reserved` + (j.peak ? `, ${j.peak} MiB peak` : '') : null),
    row('Exit code', j.exitCode),
    row('Created', time(j.created)),
    row('Queued', time(j.queued)),
    row('Started', time(j.started)),
    row('Finished', time(j.finished)),
    row('Waited', waited !== null ? duration(waited) : null),
    row('Ran', ran !== null ? duration(ran) : null),
    row('Kill requested', j.killRequested ? 'yes' : null),
    row('Archive', j.archiveStatus ? [j.archiveStatus, j.archiveMessage ? ` (${j.archiveMessage})` : ''] : null),
  );
}

function showJob(j) {
  current = j;
  fill($('#status'), status(j.status));
  $('#kill').hidden = TERMINAL.has(j.status);
  const msg = $('#message');
  msg.hidden = !j.message;
  msg.textContent = j.message || '';
  summary(j);
  fill($('#request'), JSON.stringify(j.request ?? {}, null, 2));
}

function showHistory(list) {
  fill($('#history tbody'), list.map((e) => h('tr', {},
    h('td', {}, time(e.time, true)),
    h('td', {}, status(e.status)),
    h('td', { class: 'num' }, e.attempt || ''),
    h('td', { class: 'mono' }, e.worker || ''),
    h('td', {}, e.message || ''),
  )));
}

async function showFiles() {
  const tbody = $('#files tbody');
  const empty = $('#files-empty');
  try {
    const res = await api('GET', `${base}/output/${filesPath ? filesPath + '/' : ''}`);
    const rows = [];
    if (filesPath) {
      const up = filesPath.includes('/') ? filesPath.slice(0, filesPath.lastIndexOf('/')) : '';
      rows.push(h('tr', {}, h('td', { colspan: 3 }, h('a', { href: '#', onclick: (e) => { e.preventDefault(); openDir(up); } }, '..'))));
    }
    for (const f of res.entries) {
      const p = filesPath ? `${filesPath}/${f.name}` : f.name;
      const link = f.dir
        ? h('a', { href: '#', class: 'dir', onclick: (e) => { e.preventDefault(); openDir(p); } }, f.name + '/')
        : h('a', { href: API + base + '/output/' + p.split('/').map(encodeURIComponent).join('/'), target: '_blank' }, f.name);
      rows.push(h('tr', {}, h('td', { class: 'mono' }, link), h('td', { class: 'num' }, f.dir ? '' : bytes(f.size)), h('td', {}, time(f.modTime))));
    }
    fill(tbody, rows);
    fill($('#files-path'), filesPath ? '/' + filesPath : '');
    empty.hidden = res.entries.length > 0;
    empty.textContent = 'Empty.';
  } catch (e) {
    fill(tbody);
    empty.hidden = false;
    empty.textContent = e.status === 404 ? 'No output yet.' : e.message;
  }
}

function openDir(p) {
  filesPath = p;
  showFiles();
}

async function load() {
  try {
    const [j, hist] = await Promise.all([api('GET', base), api('GET', base + '/history')]);
    showJob(j);
    showHistory(hist.history);
    showError(null);
  } catch (e) {
    showError(e);
    return;
  }
  showFiles();
}

// followLog shows one stream, following it while the job runs: the API
// ends the stream once the job has finished and everything was sent. A
// stream cut short (a restart, a network error) is read again from the
// start.
async function followLog(name) {
  const pre = $('#' + name);
  const state = $(`#${name}-state`);
  for (let delay = 1000; ; delay = Math.min(delay * 2, 10000)) {
    let size = 0;
    const ctl = new AbortController();
    fill(pre);
    state.textContent = 'following…';
    try {
      await stream(`${base}/logs?stream=${name}&follow=true`, (text) => {
        const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        size += text.length;
        pre.append(text);
        if (stick) pre.scrollTop = pre.scrollHeight;
        if (size > LOG_LIMIT) ctl.abort();
      }, ctl.signal);
      // The server ends the stream once the job has finished, or when a
      // read failed mid-way: then it is read again.
      const j = await api('GET', base);
      if (TERMINAL.has(j.status)) {
        state.textContent = size ? '' : '(empty)';
        return;
      }
      state.textContent = '(interrupted; reading again)';
    } catch (e) {
      if (left()) return;
      if (size > LOG_LIMIT) {
        fill(state, 'stopped following at 2 MiB: ', h('a', { href: `${API}${base}/output/${name}`, target: '_blank' }, 'the whole file'));
        return;
      }
      state.textContent = e.status === 404 ? '' : `(${e.message}; retrying)`;
      if (e.status === 404 || e.status === 400) return;
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

$('#kill').addEventListener('click', async () => {
  if (!confirm(`Kill job ${id}?`)) return;
  $('#kill').disabled = true;
  try {
    showJob(await api('DELETE', base));
    showError(null);
  } catch (e) {
    showError(e);
  } finally {
    $('#kill').disabled = false;
  }
});

// An event shows its status at once, then the page reads the job again.
const reload = throttle(load, 300);
follow('?job=' + encodeURIComponent(id), (name, ev) => {
  if (name === 'status' && current && !TERMINAL.has(current.status)) fill($('#status'), status(ev.status));
  reload();
}, reload);
load();
followLog('stdout');
followLog('stderr');
