// The UI's one door to the API. Every request goes through request(), the
// place that adds credentials (an Authorization header) once the API has
// auth: set auth.headers to a function that returns them.

export const API = '/api/v1';

// With auth on, the intake answers 401 without a token: the UI asks for
// one once, keeps it for the browser tab (sessionStorage) and sends it as a
// bearer token from then on. A 401 with a kept token forgets it.
const TOKEN = 'jinn.token';

export const auth = {
  headers: () => {
    const t = sessionStorage.getItem(TOKEN);
    return t ? { Authorization: 'Bearer ' + t } : {};
  },
};

function askToken(hadOne) {
  if (hadOne) sessionStorage.removeItem(TOKEN);
  const t = prompt(hadOne ? 'That token was refused. jinn API token:' : 'This jinn needs an API token (jinn token USER ROLE makes one):');
  if (t) sessionStorage.setItem(TOKEN, t.trim());
  return !!t;
}

export class APIError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

// Streams (events, followed logs) end when the page is left: a browser
// may keep a page alive for its back button, and its open streams would
// hold connections (six per host over HTTP/1.1) until nothing else loads.
// Such a page, shown again, is loaded afresh.
const page = new AbortController();
addEventListener('pagehide', () => page.abort());
addEventListener('pageshow', (e) => {
  if (e.persisted) location.reload();
});

// request is fetch for a path under /api/v1; it is aborted when the page
// is left.
export async function request(path, opts = {}) {
  const signal = opts.signal ? AbortSignal.any([opts.signal, page.signal]) : page.signal;
  for (let tries = 0; ; tries++) {
    const hadOne = !!sessionStorage.getItem(TOKEN);
    const headers = Object.assign({}, auth.headers(), opts.headers || {});
    const resp = await fetch(API + path, Object.assign({}, opts, { headers, signal }));
    if (resp.status !== 401 || tries > 0 || !askToken(hadOne)) return resp;
  }
}

// left reports whether the page has been left.
export const left = () => page.signal.aborted;

async function failure(resp) {
  const text = await resp.text();
  try {
    const e = JSON.parse(text).error;
    return new APIError(resp.status, e.message, e.field);
  } catch {
    return new APIError(resp.status, text || resp.statusText);
  }
}

// api sends a JSON request and returns the decoded answer, or throws an
// APIError with the API's message.
export async function api(method, path, body) {
  const opts = { method, headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers['Content-Type'] = 'application/json';
  }
  const resp = await request(path, opts);
  if (!resp.ok) throw await failure(resp);
  if (resp.status === 204) return null;
  return resp.json();
}

// stream reads a streamed text answer (logs?follow=true) and calls onText
// with each piece as it arrives; it resolves when the server ends it.
export async function stream(path, onText, signal) {
  const resp = await request(path, { signal, headers: { Accept: 'text/plain' } });
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onText(value);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// follow reads the server-sent events of /api/v1/events<query> and calls
// onEvent(name, data) for each ("status" with a job event, "resync" when
// some were missed). It reads them with fetch, not EventSource, so that
// request() can add credentials. It reconnects with a growing delay, and
// after every (re)connection calls onOpen: events sent while it was away
// are lost, so the page reads its state again. It shows its state in the
// top bar's #live marker. It returns a function that stops it.
export function follow(query, onEvent, onOpen) {
  const ctl = new AbortController();
  const live = document.getElementById('live');
  const show = (state, text) => {
    if (!live) return;
    live.hidden = false;
    live.className = 'live ' + state;
    live.textContent = text;
  };
  (async () => {
    let delay = 500;
    while (!ctl.signal.aborted && !left()) {
      try {
        const resp = await request('/events' + query, { signal: ctl.signal, headers: { Accept: 'text/event-stream' } });
        if (!resp.ok) throw await failure(resp);
        show('on', 'live');
        delay = 500;
        if (onOpen) onOpen();
        await readEvents(resp.body, onEvent);
      } catch (e) {
        if (ctl.signal.aborted || left()) return;
        console.warn('jinn events:', e);
      }
      show('off', 'reconnecting…');
      await sleep(delay);
      delay = Math.min(delay * 2, 10000);
    }
  })();
  return () => ctl.abort();
}

// readEvents parses a text/event-stream body: blocks separated by a blank
// line, of "event:" and "data:" lines; lines starting with ':' are comments.
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'event') name = val;
        if (field === 'data') data.push(val);
      }
      if (data.length === 0) continue;
      let parsed;
      try {
        parsed = JSON.parse(data.join('\n'));
      } catch {
        continue;
      }
      onEvent(name, parsed);
    }
  }
}
