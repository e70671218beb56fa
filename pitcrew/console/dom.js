// DOM helpers. Every piece of API data reaches the page as text (textContent or a text node);
// nothing here sets innerHTML.

import { ApiError, get } from './api.js';

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// A value from the API (or typed by the operator) inside the console's own words: isolated, so
// a bidi control in it (U+202E) cannot reorder the text around it.
export const bdi = (value) => h('bdi', {}, String(value ?? ''));

export const fmtTime = (iso) => {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
};

export const fmt = (value) => {
  if (value === undefined || value === null || value === '') return '—';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
};

let uid = 0;
export const nextId = (prefix) => `${prefix}-${++uid}`;

// A table: columns are [header, (row) => cell content]. Rows are API objects.
export function table(caption, columns, rows, { empty = 'Nothing here.' } = {}) {
  if (!rows || rows.length === 0) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', {},
      h('caption', { text: caption }),
      h('thead', {}, h('tr', {}, columns.map(([name]) => h('th', { scope: 'col', text: name })))),
      h('tbody', {}, rows.map((row) => h('tr', {}, columns.map(([name, cell]) =>
        h('td', { 'data-label': name }, isolated(cell(row)))))))));
}

// A cell given as text is data (or holds some): isolate it.
const isolated = (content) => (typeof content === 'string' || typeof content === 'number' ? bdi(content) : content);

// Key/value list of a plain object (nested values as JSON text).
export function facts(obj, label) {
  const entries = Object.entries(obj || {});
  if (entries.length === 0) return h('p', { class: 'empty' }, `No ${label}.`);
  return h('dl', { class: 'facts', 'aria-label': label },
    entries.map(([k, v]) => [h('dt', {}, bdi(k)), h('dd', {}, bdi(fmt(v)))]));
}

export function field(label, input, hint) {
  const id = input.id || nextId('f');
  input.id = id;
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint`, text: hint }) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id, text: label }), input, hintEl);
}

// ----------------------------------------------------------------- session and roles

export const session = { name: '', actor: '', roles: [], can: {} };

// A button for an action that needs `role`. Without it the button is disabled and says why.
export function actionButton(label, role, onClick, { danger = false, id } = {}) {
  const allowed = Boolean(session.can[role]);
  const reasonId = nextId('why');
  const held = session.roles.length ? session.roles.join(', ') : 'no role';
  const reason = allowed
    ? [`needs ${role}`]
    : [`needs ${role}: `, bdi(session.name), ' holds ', bdi(held)];
  const button = h('button', {
    type: 'button', id, class: danger ? 'danger' : null, disabled: !allowed,
    'aria-describedby': reasonId, dataset: { role },
  }, label);
  if (allowed) {
    button.addEventListener('click', async () => {
      button.disabled = true;
      try { await onClick(button); } finally { button.disabled = false; }
    });
  }
  return h('span', { class: 'action' }, button,
    h('span', { class: allowed ? 'needs' : 'needs refused', id: reasonId }, reason));
}

// The confirmation every change goes through: what, who asks, which role, that it is audited.
// The title and each line are text or a list of pieces; data among them goes in bdi(value).
export function confirmAction(title, lines, role) {
  const dialog = document.getElementById('confirm');
  append(clear(document.getElementById('confirm-title')), [title]);
  const body = clear(document.getElementById('confirm-body'));
  for (const line of lines) {
    if (line !== '' && line !== null && line !== undefined) append(body, [h('p', {}, line)]);
  }
  append(body, [h('p', { class: 'who-line' }, 'Signed in as ', bdi(session.name),
    `; this needs the role ${role} and is audited as `, bdi(session.actor), '.')]);
  return new Promise((resolve) => {
    dialog.returnValue = '';
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

// The status line: `kind` is ok (done as asked), error, or info (neither). `message` is text or a
// list of pieces, data among them in bdi(value).
export function say(message, kind = 'info') {
  const status = document.getElementById('status');
  status.className = `status ${kind}`;
  append(clear(status), [message]);
}

// What an error looks like in a view: a route missing in this version, or the API's words.
export function problem(error) {
  if (error instanceof ApiError && error.notAvailable) {
    return h('p', { class: 'notice', role: 'note' }, 'Not available in this version of pitcrew (',
      h('code', { text: error.path.split('?')[0] }), ' answered ', String(error.status), ').');
  }
  return h('p', { class: 'error', role: 'alert' }, errorText(error));
}

const errorText = (error) => (error instanceof ApiError
  ? [`${error.status}: `, bdi(error.message)] : [bdi(String(error.message || error))]);

export function reportError(error) {
  if (error instanceof ApiError && error.notAvailable) {
    say(['Not available in this version of pitcrew (', bdi(error.path.split('?')[0]), ').'], 'error');
  } else {
    say(errorText(error), 'error');
  }
}

// pager() over a list route that answers `{ [key]: [...], continuation }`. `query` is the
// page's parameters, or a function that gives them (from the filters): it is read once, when the
// list is (re)loaded, and every later page asks with the same parameters, since a continuation
// token holds only for the query that gave it (a filter typed but not submitted is not sent).
export function listPager(container, path, key, query, render) {
  const params = { ...(typeof query === 'function' ? query() : query) };
  return pager(container, async (token) => {
    const data = await get(path, { ...params, continuation: token });
    return { items: data[key], continuation: data.continuation };
  }, render);
}

// A "Load more" control over a paged list (`continuation` tokens). While a page loads the
// button is disabled (a double click asks once); a page that fails after the first keeps the
// rows shown and says why next to the button, which asks again with the same token.
export function pager(container, load, render) {
  const more = h('button', { type: 'button', class: 'more' }, 'Load more');
  const failed = h('div', { class: 'pager-error' });
  const moreBox = h('div', { class: 'pager-more' }, more, failed);
  const wrap = h('div', { class: 'pager' });
  const state = { token: null, items: [], loading: false };
  async function page(first) {
    if (state.loading && !first) return;
    state.loading = true;
    more.disabled = true;
    more.setAttribute('aria-busy', 'true');
    try {
      const data = await load(first ? null : state.token);
      state.token = data.continuation || null;
      state.items = first ? data.items : state.items.concat(data.items);
      clear(failed);
      clear(wrap);
      append(wrap, [render(state.items, data.raw), state.token ? moreBox : null]);
    } catch (error) {
      if (first) {
        clear(wrap);
        append(wrap, [problem(error)]);
      } else {
        append(clear(failed), [problem(error)]);
      }
    } finally {
      state.loading = false;
      more.disabled = false;
      more.removeAttribute('aria-busy');
    }
  }
  more.addEventListener('click', () => page(false));
  append(container, [wrap]);
  return page(true);
}
