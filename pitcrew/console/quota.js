// Quota: usage against each limit, the forecast (trend a day, days to exhaustion), the
// increase requests pitcrew made; scan now and request an increase (dry run first).

import { post } from './api.js';
import {
  actionButton, append, bdi, clear, confirmAction, facts, field, fmt, fmtTime, h, listPager,
  problem, reportError, say, table,
} from './dom.js';

const LEVELS = ['', 'ok', 'warning', 'critical'];

export async function view(main) {
  append(main, [h('h1', {}, 'Quota'),
    h('p', { class: 'lead' }, 'Usage against each limit, when the trend reaches it, and the increase requests pitcrew made.')]);

  // Request an increase (dry run first)
  const quota = h('input', { id: 'quota-id', autocomplete: 'off', placeholder: 'subscriptions/<id>/providers/…/NAME' });
  const limit = h('input', { id: 'quota-limit', type: 'number', min: '1', step: '1' });
  const reason = h('input', { id: 'quota-reason', maxlength: '500' });
  const dry = h('input', { type: 'checkbox', id: 'quota-dry', checked: true });
  const outcome = h('div', { id: 'quota-outcome', 'aria-live': 'polite' });
  const form = h('fieldset', { class: 'increase' }, h('legend', {}, 'Request an increase'),
    field('Quota (SCOPE/NAME)', quota), field('New limit', limit), field('Reason (audited)', reason),
    h('div', { class: 'check' }, dry, h('label', { for: 'quota-dry' }, 'Dry run: show what would be asked, send nothing')),
    actionButton('Request…', 'Operator', async () => {
      if (!quota.value.trim() || !limit.value) { say('Give the quota and the new limit.', 'error'); return; }
      const body = { quota: quota.value.trim(), limit: Number(limit.value), dryRun: dry.checked };
      if (reason.value.trim()) body.reason = reason.value.trim();
      if (!await confirmAction(dry.checked ? 'Plan this increase request?' : 'Send this increase request to Azure?', [
        [bdi(body.quota), `: new limit ${body.limit}.`],
        dry.checked ? 'Dry run: nothing is sent.' : 'pitcrew asks the Quota API with its own identity and follows the request.',
      ], 'Operator')) return;
      clear(outcome);
      try {
        const result = await post('/api/quota/requests', body);
        append(outcome, [facts({ status: result.status, sent: result.sent, detail: result.detail, 'support request': result.supportRequest }, 'increase request')]);
        say(result.sent ? ['Request ', bdi(result.id), ' sent.'] : ['Not sent: ', bdi(result.detail ?? result.status), '.'], 'ok');
      } catch (error) { reportError(error); }
    }, { id: 'quota-go' }), outcome);

  const levelSel = h('select', { id: 'quota-level' }, LEVELS.map((l) => h('option', { value: l }, l || 'any')));
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter quotas' },
    field('Level', levelSel), h('button', { type: 'submit' }, 'Filter'));
  const usage = h('section', { 'aria-label': 'Quota usage' });
  const requests = h('section', { 'aria-label': 'Increase requests' });
  const scanStatus = h('span', { role: 'status', class: 'inline-status' });
  append(main, [h('div', { class: 'toolbar' }, actionButton('Scan quotas now', 'Operator', async () => {
    if (!await confirmAction('Scan quotas now?', ['pitcrew reads usage and limits of the scopes the policy names.'], 'Operator')) return;
    try {
      const report = await post('/api/quota/scan', {});
      append(clear(scanStatus), ['Scanned: ', bdi(fmt(report))]);
      await loadUsage();
    } catch (error) { reportError(error); }
  }, { id: 'quota-scan' }), scanStatus),
  h('h2', {}, 'Usage and forecast'), filters, usage, form,
  h('h2', {}, 'Increase requests'), requests]);

  const loadUsage = () => {
    clear(usage);
    return listPager(usage, '/api/quota', 'quotas', () => ({ limit: 50, level: levelSel.value }),
      (items) => table('Quota usage', [
      ['Quota', (q) => h('span', { class: 'mono', text: fmt(q.quota ?? q.id) })],
      ['Provider', (q) => fmt(q.provider)],
      ['Location', (q) => fmt(q.location)],
      ['Usage', (q) => [bdi(fmt(q.usage)), ' of ', bdi(fmt(q.limit)), q.unit ? [' ', bdi(q.unit)] : '', ` (${q.percent == null ? '?' : Math.round(q.percent)}%)`]],
      ['Level', (q) => h('span', { class: `badge ${q.level}`, text: fmt(q.level) })],
      ['Trend a day', (q) => fmt(q.trendPerDay)],
      ['Days to the limit', (q) => fmt(q.daysToExhaustion)],
      ['Open request', (q) => (q.openRequest ? [bdi(q.openRequest.status), ' → ', bdi(q.openRequest.newLimit)] : '—')],
      ['Updated', (q) => fmtTime(q.updated)],
      ['Increase', (q) => (q.adjustable === false ? 'not adjustable' : h('button', {
        type: 'button', onclick: () => { quota.value = q.id; limit.focus(); },
      }, 'Fill in the request'))],
    ], items, { empty: 'No quota scanned yet.' }));
  };
  filters.addEventListener('submit', (e) => { e.preventDefault(); loadUsage(); });
  await Promise.all([
    loadUsage(),
    listPager(requests, '/api/quota/requests', 'requests', { limit: 50 }, (items) => table('Increase requests', [
      ['Quota', (r) => h('span', { class: 'mono', text: fmt(r.quota) })],
      ['Status', (r) => h('span', { class: `badge ${String(r.status).toLowerCase()}`, text: fmt(r.status) })],
      ['Limit', (r) => [bdi(fmt(r.currentLimit)), ' → ', bdi(fmt(r.newLimit))]],
      ['Usage', (r) => fmt(r.usage)],
      ['Asked by', (r) => fmt(r.actor)],
      ['Reason', (r) => fmt(r.reason)],
      ['Message', (r) => fmt(r.message)],
      ['Updated', (r) => fmtTime(r.updated)],
    ], items, { empty: 'No increase requests.' })),
  ]).catch((error) => append(main, [problem(error)]));
}
