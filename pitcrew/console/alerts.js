// Alerts (active groups), silences (create from an alert, expire) and the notifications outbox
// (failed, retry). These views follow the alerting routes; a route this version lacks is said
// to be "not available in this version" rather than breaking the page.

import { ApiError, del, get, post, seg } from './api.js';
import {
  actionButton, append, clear, confirmAction, field, fmtTime, h, problem, reportError, say,
} from './dom.js';
import { autoTable, itemsOf, labelsText } from './generic.js';

function labelsOf(item) {
  return item?.labels || item?.groupLabels || item?.commonLabels || {};
}

// ----------------------------------------------------------------------------- silences form

function silenceForm(host, onCreated) {
  const matchers = h('textarea', { id: 'silence-matchers', rows: '4', spellcheck: 'false',
    placeholder: 'alertname=HighDeadLetterDepth\nseverity=critical' });
  const hours = h('input', { id: 'silence-hours', type: 'number', min: '0.1', step: 'any', value: '2' });
  const comment = h('input', { id: 'silence-comment', maxlength: '500', required: true });
  const form = h('fieldset', { class: 'silence', id: 'silence-form' }, h('legend', {}, 'New silence'),
    field('Matchers (one name=value a line; name=~regex for a pattern)', matchers),
    field('Duration (hours)', hours), field('Comment (required; audited)', comment),
    actionButton('Create silence…', 'Operator', async () => {
      const parsed = [];
      for (const line of matchers.value.split('\n').map((l) => l.trim()).filter(Boolean)) {
        const m = line.match(/^([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!=|!~|=)\s*(.*)$/);
        if (!m) { say(`Matcher "${line}" is not name=value.`, 'error'); return; }
        parsed.push({ name: m[1], value: m[3], isRegex: m[2].includes('~'), isEqual: !m[2].startsWith('!') });
      }
      if (!parsed.length) { say('Give at least one matcher.', 'error'); return; }
      if (!comment.value.trim()) { say('Say why: a comment is required.', 'error'); comment.focus(); return; }
      const ends = new Date(Date.now() + Number(hours.value || 2) * 3600 * 1000);
      if (!await confirmAction('Create this silence?', [
        `Alerts matching ${parsed.map((p) => `${p.name}${p.isEqual ? '' : '!'}${p.isRegex ? '=~' : '='}${p.value}`).join(', ')} are not notified until ${fmtTime(ends.toISOString())}.`,
      ], 'Operator')) return;
      try {
        const created = await post('/api/silences', {
          matchers: parsed, startsAt: new Date().toISOString(), endsAt: ends.toISOString(),
          comment: comment.value.trim(),
        });
        say(`Silence ${created?.id ?? created?.silence?.id ?? ''} created.`, 'ok');
        await onCreated();
      } catch (error) { reportError(error); }
    }, { id: 'silence-go' }));
  append(host, [form]);
  return {
    prefill(labels) {
      matchers.value = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join('\n');
      comment.focus();
      form.scrollIntoView({ block: 'nearest' });
    },
  };
}

async function expireSilence(id) {
  try {
    return await post(`/api/silences/${seg(id)}/expire`, {});
  } catch (error) {
    if (error instanceof ApiError && error.notAvailable) return del(`/api/silences/${seg(id)}`);
    throw error;
  }
}

// ----------------------------------------------------------------------------- the view

export async function view(main) {
  append(main, [h('h1', {}, 'Alerts'),
    h('p', { class: 'lead' }, 'Active alert groups, and the silences that hold notifications back.')]);
  const alertsSection = h('section', { 'aria-labelledby': 'alerts-h' }, h('h2', { id: 'alerts-h' }, 'Active groups'));
  const silencesSection = h('section', { 'aria-labelledby': 'silences-h' }, h('h2', { id: 'silences-h' }, 'Silences'));
  const silencesList = h('div', { id: 'silences-list' });
  append(main, [alertsSection, silencesSection]);
  const form = silenceForm(silencesSection, () => loadSilences());
  append(silencesSection, [silencesList]);

  async function loadSilences() {
    clear(silencesList);
    try {
      const data = await get('/api/silences', { limit: 100 });
      const items = itemsOf(data, ['silences', 'items']);
      append(silencesList, [autoTable('Silences', items, {
        prefer: ['id', 'status', 'matchers', 'startsAt', 'endsAt', 'createdBy', 'comment'],
        extra: [['Expire', (s) => {
          const state = typeof s.status === 'object' ? s.status?.state : s.status;
          if (state === 'expired') return 'expired';
          return actionButton('Expire…', 'Operator', async () => {
            if (!await confirmAction(`Expire silence ${s.id}?`, ['Matching alerts are notified again from now on.'], 'Operator')) return;
            try { await expireSilence(s.id); say(`Silence ${s.id} expired.`, 'ok'); await loadSilences(); } catch (error) { reportError(error); }
          }, { id: `expire-${s.id}` });
        }]],
        empty: 'No silences.',
      })]);
    } catch (error) { append(silencesList, [problem(error)]); }
  }

  async function loadAlerts() {
    try {
      const data = await get('/api/alerts', { limit: 100 });
      const items = itemsOf(data, ['groups', 'alerts', 'items']);
      append(alertsSection, [autoTable('Active alert groups', items, {
        prefer: ['id', 'status', 'labels', 'groupLabels', 'receiver', 'count', 'startsAt', 'updatedAt'],
        extra: [['Silence', (a) => actionButton('Silence…', 'Operator', async () => form.prefill(labelsOf(a)),
          { id: `silence-from-${a.id ?? a.fingerprint ?? labelsText(labelsOf(a))}` })]],
        empty: 'No active alerts.',
      })]);
    } catch (error) { append(alertsSection, [problem(error)]); }
  }
  await Promise.all([loadAlerts(), loadSilences()]);
}

export async function notifications(main) {
  append(main, [h('h1', {}, 'Notifications'),
    h('p', { class: 'lead' }, 'The outbox: every notification is written here before any attempt; failed ones are retried with backoff, or now from here.')]);
  const status = h('select', { id: 'notify-status' }, ['failed', 'pending', 'delivered', ''].map((s) => h('option', { value: s }, s || 'any')));
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter notifications' },
    field('Status', status), h('button', { type: 'submit' }, 'Filter'));
  const list = h('section', { 'aria-label': 'Notifications' });
  append(main, [filters, list]);
  const load = async () => {
    clear(list);
    try {
      const data = await get('/api/notifications', { status: status.value, limit: 100 });
      const items = itemsOf(data, ['notifications', 'items']);
      append(list, [autoTable('Notifications', items, {
        prefer: ['id', 'channel', 'receiver', 'status', 'attempts', 'lastError', 'nextAttemptAt', 'updatedAt'],
        extra: [['Retry', (n) => (n.status === 'delivered' ? '—' : actionButton('Retry now…', 'Operator', async () => {
          if (!await confirmAction(`Retry notification ${n.id}?`, ['pitcrew tries the delivery once more now.'], 'Operator')) return;
          try { await post(`/api/notifications/${seg(n.id)}/retry`, {}); say(`Retried ${n.id}.`, 'ok'); await load(); } catch (error) { reportError(error); }
        }))]],
        empty: 'No notifications with this status.',
      })]);
    } catch (error) { append(list, [problem(error)]); }
  };
  filters.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  await load();
}

