// The clusters and commands pages: each entity with its status, and a
// status change (PATCH {"status": ...}) from a select.
import { api } from './api.js';
import { $, h, fill, status, showError, every } from './dom.js';

const kind = document.body.dataset.kind; // clusters | commands
const statuses = $('#entities').dataset.statuses.split(',');
const commands = kind === 'commands';

function tags(list) {
  return (list || []).map((t) => h('span', { class: 'tag' }, t));
}

function row(e) {
  const select = h('select', { 'aria-label': `status of ${e.name}` },
    statuses.map((s) => h('option', { value: s, selected: s === e.status }, s)));
  const apply = h('button', { onclick: () => change(e.name, select.value, apply) }, 'Apply');
  return h('tr', { 'data-name': e.name },
    h('td', { class: 'mono' }, e.name),
    h('td', { class: 'st' }, status(e.status)),
    h('td', {}, tags(e.tags)),
    commands ? h('td', { class: 'mono' }, (e.executable || []).join(' ') || '(the args)') : null,
    commands ? h('td', { class: 'num' }, e.memory || '') : null,
    h('td', {}, e.description || ''),
    h('td', { class: 'change' }, select, ' ', apply),
  );
}

async function change(name, to, button) {
  button.disabled = true;
  try {
    const e = await api('PATCH', `/${kind}/${encodeURIComponent(name)}`, { status: to });
    const notice = $('#notice');
    notice.hidden = false;
    notice.textContent = `${name} is now ${e.status}.`;
    showError(null);
    await load();
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

async function load() {
  // A select the user is changing is not redrawn under them.
  if (document.activeElement && document.activeElement.tagName === 'SELECT') return;
  try {
    const res = await api('GET', '/' + kind);
    const list = res[kind] || [];
    fill($('#entities tbody'), list.map(row));
    $('#empty').hidden = list.length > 0;
    showError(null);
  } catch (e) {
    showError(e);
  }
}

// The registry has no event stream: a slow poll shows others' changes.
every(10000, load);
