// Small helpers shared by the pages. Text always goes in as text nodes,
// never as HTML.

// h makes an element: h('a', {href: '/x', class: 'y'}, 'text', child...).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) add(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export const $ = (sel) => document.querySelector(sel);

// fill replaces the children of el.
export function fill(el, ...children) {
  el.replaceChildren();
  add(el, children);
}

// status is a coloured badge for a job, cluster, command or worker status.
export function status(s) {
  return h('span', { class: 'status s-' + String(s || 'UNKNOWN').toLowerCase() }, s || '?');
}

export const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'KILLED', 'TIMED_OUT', 'LOST', 'INVALID']);

// showError shows a message in the page's #error line (null hides it).
export function showError(err) {
  const el = $('#error');
  if (!el) return;
  el.hidden = !err;
  el.textContent = err ? (err.message || String(err)) : '';
}

const pad = (n) => String(n).padStart(2, '0');

// time shows a time as YYYY-MM-DD HH:MM:SS in the browser's zone (with
// milliseconds when precise), with the full ISO time as a tooltip.
export function time(t, precise) {
  if (!t) return '';
  const d = new Date(t);
  let text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (precise) text += '.' + String(d.getMilliseconds()).padStart(3, '0');
  return h('time', { datetime: d.toISOString(), title: d.toISOString() }, text);
}

// duration shows milliseconds as 850ms, 12.3s, 4m05s or 2h10m.
export function duration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${pad(Math.floor(s % 60))}s`;
  return `${Math.floor(m / 60)}h${pad(m % 60)}m`;
}

// ago shows how long ago t was.
export function ago(t) {
  return t ? duration(Date.now() - new Date(t).getTime()) + ' ago' : '';
}

// bytes shows a size as B, KiB, MiB or GiB.
export function bytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

// throttle returns a function that runs fn ms after its first call, once
// for all the calls made meanwhile: a burst of events costs one reload.
export function throttle(fn, ms) {
  let timer = null;
  return () => {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      fn();
    }, ms);
  };
}

// every runs fn now and then every ms while the page is visible.
export function every(ms, fn) {
  fn();
  setInterval(() => {
    if (!document.hidden) fn();
  }, ms);
}

// words splits "a b, c" into ["a", "b", "c"].
export function words(s) {
  return String(s || '').split(/[\s,]+/).filter(Boolean);
}
