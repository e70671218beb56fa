// The audit trail (search by time, actor, target, action) and the rejected (poison) events.

import { append, clear, field, fmt, fmtTime, h, listPager, table } from './dom.js';

export async function view(main) {
  append(main, [h('h1', {}, 'Audit'),
    h('p', { class: 'lead' }, 'Who did what, to what, with which outcome. At most 31 days at a time; the default is the last day.')]);
  const since = h('input', { type: 'datetime-local', id: 'audit-since' });
  const until = h('input', { type: 'datetime-local', id: 'audit-until' });
  const actor = h('input', { id: 'audit-actor', type: 'search', placeholder: 'user:name or app:pitcrew', maxlength: '512' });
  const target = h('input', { id: 'audit-target', type: 'search', maxlength: '512' });
  const action = h('input', { id: 'audit-action', type: 'search', placeholder: 'dlq.replay.request', maxlength: '512' });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Search the audit trail' },
    field('Since (UTC)', since), field('Until (UTC)', until), field('Actor (exact)', actor),
    field('Target (exact)', target), field('Action (exact)', action), h('button', { type: 'submit' }, 'Search'));
  const results = h('section', { 'aria-label': 'Audit records' });
  append(main, [form, results]);
  const toIso = (v) => (v ? new Date(`${v}Z`).toISOString() : '');
  const load = () => {
    clear(results);
    return listPager(results, '/api/audit', 'records', () => ({
      limit: 50, since: toIso(since.value), until: toIso(until.value),
      actor: actor.value.trim(), target: target.value.trim(), action: action.value.trim(),
    }), (items) => table('Audit records', [
      ['Time', (r) => fmtTime(r.time)],
      ['Actor', (r) => fmt(r.actor)],
      ['Action', (r) => h('span', { class: 'mono', text: r.action })],
      ['Target', (r) => fmt(r.target)],
      ['Outcome', (r) => h('span', { class: `badge ${r.outcome}`, text: r.outcome })],
      ['Details', (r) => h('details', {}, h('summary', {}, 'details'), h('pre', { text: JSON.stringify(r.details ?? {}, null, 2) }))],
    ], items, { empty: 'No audit record matches.' }));
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  await load();
}

export async function rejected(main) {
  append(main, [h('h1', {}, 'Rejected events'),
    h('p', { class: 'lead' }, 'Poison events: recorded and acknowledged so the sender stops retrying. Each names the field that was wrong.')]);
  const results = h('section', { 'aria-label': 'Rejected events' });
  append(main, [results]);
  await listPager(results, '/api/events/rejected', 'rejected', { limit: 50 }, (items) => table('Rejected events', [
    ['Event', (r) => h('span', { class: 'mono', text: fmt(r.id) })],
    ['Source', (r) => fmt(r.source)],
    ['Type', (r) => fmt(r.type)],
    ['Function', (r) => fmt(r.function)],
    ['Field', (r) => fmt(r.field)],
    ['Problem', (r) => fmt(r.problem)],
    ['Envelope', (r) => h('details', {}, h('summary', {}, 'envelope'), h('pre', { text: typeof r.envelope === 'string' ? r.envelope : JSON.stringify(r.envelope, null, 2) }))],
  ], items, { empty: 'No rejected events.' }));
}
