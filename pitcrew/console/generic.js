// Rendering for lists whose shape this console does not pin down: the first array in a page,
// shown as a table of its fields (nested values as JSON text).

import { bdi, fmt, fmtTime, h, table } from './dom.js';

export function itemsOf(data, keys) {
  if (Array.isArray(data)) return data;
  for (const key of keys) if (Array.isArray(data?.[key])) return data[key];
  const first = Object.values(data || {}).find(Array.isArray);
  return first || [];
}

export function autoTable(caption, items, { prefer = [], extra = [], empty } = {}) {
  const keys = [];
  for (const key of prefer) if (items.some((i) => i && key in i)) keys.push(key);
  for (const item of items.slice(0, 20)) {
    for (const key of Object.keys(item || {})) if (!keys.includes(key) && keys.length < 9) keys.push(key);
  }
  const cell = (key) => (row) => {
    const value = row?.[key];
    return /(At|Time|time|Seen|since|until)$/.test(key) && typeof value === 'string'
      ? fmtTime(value) : fmt(value);
  };
  return table(caption, keys.map((k) => [k, cell(k)]).concat(extra), items, { empty });
}

export const labelsText = (labels) => Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join(', ');

// The same on the page: each name and value isolated (a bidi control in one cannot reorder the
// others).
export const labelsNodes = (labels) => Object.entries(labels || {})
  .map(([k, v], i) => [i ? ', ' : '', bdi(k), '=', bdi(v)]);

export const mono = (text) => h('span', { class: 'mono' }, bdi(text));
