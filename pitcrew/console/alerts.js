// Alerts (active groups), silences (create, from an alert or by hand; expire) and the
// notifications outbox (retry), over the alerting routes (docs/alerting.md):
//   GET  /api/alerts          {groups: [{id, receiver, labels, ..., alerts: [{fingerprint, status,
//                              labels, title, startsAt, silencedBy, inhibitedBy}]}], continuation}
//   GET  /api/silences        {silences: [{id, matchers: ['name="value"'], startsAt, endsAt, state,
//                              comment, createdBy, expiredBy}], continuation}
//   POST /api/silences        {matchers: ['alertRule=cpu-high'], for: '2h', comment}
//   DELETE /api/silences/{id} the silence ends now
//   GET  /api/notifications   {notifications: [{id, receiver, title, status, attempts, lastError,
//                              nextAttemptAt}], continuation}; POST /api/notifications/{id}/retry
// A route this version lacks is said to be "not available in this version".

import { del, post, seg } from './api.js';
import {
  actionButton, append, bdi, clear, confirmAction, field, fmt, fmtTime, h, listPager, reportError,
  say, table,
} from './dom.js';
import { labelsNodes, labelsText, mono } from './generic.js';

// The server's matcher grammar (pitcrew/alerting/policy.py): name op value, value maybe quoted.
const MATCHER = /^\s*[A-Za-z_][A-Za-z0-9_.-]*\s*(=~|!~|!=|=)\s*.*$/s;
const DURATION = /^(\d+(\.\d+)?(ms|s|m|h|d|w))+$|^\d+(\.\d+)?$/;

// `name="value"`: always quoted (\ and " escaped), so the value is matched as it is: unquoted,
// a value starting with ~ would turn `=` into the regex operator `=~` (alertRule=~.* matches
// every alert), and edge spaces would be trimmed.
function matcherText(name, value) {
  return `${name}="${String(value).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

const badge = (text) => h('span', { class: `badge ${text}`, text });

// ----------------------------------------------------------------------------- silences form

function silenceForm(host, onCreated) {
  const matchers = h('textarea', { id: 'silence-matchers', rows: '4', spellcheck: 'false',
    placeholder: 'alertRule=cpu-high\nseverity=critical' });
  const duration = h('input', { id: 'silence-for', value: '2h', spellcheck: 'false',
    autocomplete: 'off', inputmode: 'text' });
  const comment = h('input', { id: 'silence-comment', maxlength: '1000', required: true });
  const form = h('fieldset', { class: 'silence', id: 'silence-form' }, h('legend', {}, 'New silence'),
    field('Matchers (one a line: name=value, name!=value, name=~regex, name!~regex)', matchers),
    field('For', duration, 'A duration: 30m, 2h, 1h30m, 1d.'),
    field('Comment (required; audited)', comment),
    actionButton('Create silence…', 'Operator', async () => {
      const lines = matchers.value.split('\n').map((l) => l.trim()).filter(Boolean);
      const bad = lines.find((l) => !MATCHER.test(l));
      if (bad !== undefined) { say(['"', bdi(bad), '" is not a matcher: write name=value.'], 'error'); matchers.focus(); return; }
      if (!lines.length) { say('Give at least one matcher.', 'error'); matchers.focus(); return; }
      const span = duration.value.trim();
      if (!DURATION.test(span)) { say(['"', bdi(span), '" is not a duration such as 30m or 2h.'], 'error'); duration.focus(); return; }
      if (!comment.value.trim()) { say('Say why: a comment is required.', 'error'); comment.focus(); return; }
      if (!await confirmAction('Create this silence?', [
        ['Alerts matching ', lines.map((l, i) => [i ? ', ' : '', bdi(l)]), ' are not notified for ', bdi(span), '.'],
      ], 'Operator')) return;
      try {
        const created = await post('/api/silences', {
          matchers: lines, for: span, comment: comment.value.trim(),
        });
        say(['Silence ', bdi(created.id), ` created, until ${fmtTime(created.endsAt)}.`], 'ok');
        await onCreated();
      } catch (error) { reportError(error); }
    }, { id: 'silence-go' }));
  append(host, [form]);
  return {
    prefill(labels, why) {
      matchers.value = Object.entries(labels).map(([k, v]) => matcherText(k, v)).join('\n');
      if (why && !comment.value.trim()) comment.value = why;
      form.scrollIntoView({ block: 'nearest' });
      comment.focus();
    },
  };
}

function silencesTable(items, reload) {
  return table('Silences', [
    ['Id', (s) => mono(s.id)],
    ['State', (s) => badge(s.state)],
    ['Matchers', (s) => h('span', { class: 'mono' }, (s.matchers || []).map((m, i) => [i ? ', ' : '', bdi(m)]))],
    ['Starts', (s) => fmtTime(s.startsAt)],
    ['Ends', (s) => fmtTime(s.endsAt)],
    ['Created by', (s) => fmt(s.createdBy)],
    ['Comment', (s) => fmt(s.comment)],
    ['Expire', (s) => (s.state === 'expired'
      ? ['expired', s.expiredBy ? [' by ', bdi(s.expiredBy)] : '']
      : actionButton('Expire…', 'Operator', async () => {
        if (!await confirmAction(['Expire silence ', bdi(s.id), '?'], ['Matching alerts are notified again from now on.'], 'Operator')) return;
        try {
          await del(`/api/silences/${seg(s.id)}`);
          say(['Silence ', bdi(s.id), ' expired.'], 'ok');
          await reload();
        } catch (error) { reportError(error); }
      }, { id: `expire-${s.id}` }))],
  ], items, { empty: 'No silences.' });
}

// ----------------------------------------------------------------------------- alert groups

// The labels a group's alerts share: what "silence this group" matches on.
function commonLabels(group) {
  if (group.labels && Object.keys(group.labels).length) return group.labels;
  const [first, ...rest] = group.alerts || [];
  const out = { ...(first?.labels || {}) };
  for (const alert of rest) for (const k of Object.keys(out)) if (alert.labels?.[k] !== out[k]) delete out[k];
  return out;
}

function muted(alert) {
  const parts = [];
  const list = (ids) => ids.map((id, i) => [i ? ', ' : '', bdi(id)]);
  if (alert.silencedBy?.length) parts.push(['silenced by ', list(alert.silencedBy)]);
  if (alert.inhibitedBy?.length) parts.push(['inhibited by ', list(alert.inhibitedBy)]);
  return parts.length ? parts.map((p, i) => [i ? '; ' : '', p]) : '—';
}

// GET /api/alerts lists at most 100 alerts a group (`alertsListed` of `alertCount`): say so.
function cutNote(g) {
  const listed = g.alertsListed ?? (g.alerts || []).length;
  if (g.alertCount === undefined || g.alertCount <= listed) return null;
  return h('p', { class: 'notice cut', role: 'note' },
    `Showing ${listed} of ${g.alertCount} alerts in this group. To see the others, filter with a matcher above (such as `,
    h('code', {}, 'severity=critical'), ' or ', h('code', {}, 'resource=~".*/prod-.*"'),
    '): only the alerts that match are listed.');
}

function groupsView(groups, form) {
  if (!groups.length) return h('p', { class: 'empty' }, 'No active alerts.');
  return h('div', { class: 'alert-groups' }, groups.map((g) => h('section', {
    class: 'alert-group', 'aria-label': `Alert group ${labelsText(commonLabels(g)) || g.id}`,
    dataset: { group: g.id },
  },
  h('h3', {}, h('span', { class: 'mono' },
    Object.keys(commonLabels(g)).length ? labelsNodes(commonLabels(g)) : bdi(g.id))),
  h('p', { class: 'toolbar' },
    h('span', {}, 'Receiver ', h('strong', {}, bdi(g.receiver))),
    h('span', { text: `Next flush ${fmtTime(g.nextFlushAt)}` }),
    h('span', { text: `Last flush ${fmtTime(g.lastFlushAt)}` }),
    actionButton('Silence group…', 'Operator', async () => form.prefill(commonLabels(g),
      `silence group ${g.id}`), { id: `silence-group-${g.id}` })),
  cutNote(g),
  table(`Alerts of group ${g.id}`, [
    ['Status', (a) => badge(a.status)],
    ['Title', (a) => fmt(a.title)],
    ['Labels', (a) => h('span', { class: 'mono' }, labelsNodes(a.labels))],
    ['Since', (a) => fmtTime(a.startsAt)],
    ['Muted', muted],
    ['Silence', (a) => actionButton('Silence…', 'Operator', async () => form.prefill(a.labels || {}),
      { id: `silence-alert-${a.fingerprint}` })],
  ], g.alerts || [], { empty: 'No alerts.' }))));
}

// ----------------------------------------------------------------------------- the views

export async function view(main) {
  append(main, [h('h1', {}, 'Alerts'),
    h('p', { class: 'lead' }, 'Active alert groups, and the silences that hold notifications back.')]);
  const alertsSection = h('section', { 'aria-labelledby': 'alerts-h' }, h('h2', { id: 'alerts-h' }, 'Active groups'));
  const silencesSection = h('section', { 'aria-labelledby': 'silences-h' }, h('h2', { id: 'silences-h' }, 'Silences'));
  const silencesList = h('div', { id: 'silences-list' });
  append(main, [alertsSection, silencesSection]);
  const form = silenceForm(silencesSection, () => loadSilences());
  append(silencesSection, [silencesList]);

  function loadSilences() {
    clear(silencesList);
    return listPager(silencesList, '/api/silences', 'silences', { limit: 100 },
      (items) => silencesTable(items, loadSilences));
  }

  const filter = h('input', { id: 'alerts-filter', spellcheck: 'false', placeholder: 'severity=critical' });
  const receiver = h('input', { id: 'alerts-receiver', spellcheck: 'false' });
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter alerts' },
    field('Matcher', filter), field('Receiver', receiver), h('button', { type: 'submit' }, 'Filter'));
  const groupsList = h('div', { id: 'alerts-list' });
  append(alertsSection, [filters, groupsList]);
  function loadAlerts() {
    clear(groupsList);
    return listPager(groupsList, '/api/alerts', 'groups', () => ({
      limit: 50, filter: filter.value.trim(), receiver: receiver.value.trim(),
    }), (groups) => groupsView(groups, form));
  }
  filters.addEventListener('submit', (e) => { e.preventDefault(); loadAlerts(); });
  await Promise.all([loadAlerts(), loadSilences()]);
}

// What a retry did (POST /api/notifications/{id}/retry answers `result`): only a delivery is
// success; a failure says the receiver's error; busy (another attempt holds it) and already
// (delivered before) did nothing.
function retried(what, done) {
  const said = ['Retried ', what, ': '];
  switch (done.result) {
    case 'delivered': return [[...said, 'delivered.'], 'ok'];
    case 'failed': return [[...said, 'failed',
      done.lastError ? [': ', bdi(done.lastError)] : '', '. It stays in the outbox and is retried with backoff.'], 'error'];
    case 'busy': return [[...said, 'not attempted: another attempt is under way. Look again in a moment.'], 'info'];
    case 'already': return [[...said, 'nothing sent: it was delivered before.'], 'info'];
    default: return [[...said, bdi(fmt(done.result)), '.'], 'info'];
  }
}

export async function notifications(main) {
  append(main, [h('h1', {}, 'Notifications'),
    h('p', { class: 'lead' }, 'The outbox: every notification is written here before any attempt; failed ones are retried with backoff, or now from here.')]);
  const status = h('select', { id: 'notify-status' }, ['failed', 'pending', 'delivered', ''].map((s) => h('option', { value: s }, s || 'any')));
  const receiver = h('input', { id: 'notify-receiver', spellcheck: 'false' });
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter notifications' },
    field('Status', status), field('Receiver', receiver), h('button', { type: 'submit' }, 'Filter'));
  const list = h('section', { 'aria-label': 'Notifications', id: 'notifications-list' });
  append(main, [filters, list]);
  const load = () => {
    clear(list);
    return listPager(list, '/api/notifications', 'notifications', () => ({
      status: status.value, receiver: receiver.value.trim(), limit: 100,
    }), (items) => table('Notifications', [
      ['Title', (n) => fmt(n.title)],
      ['Receiver', (n) => fmt(n.receiver)],
      ['Kind', (n) => fmt(n.kind)],
      ['Severity', (n) => fmt(n.severity)],
      ['Status', (n) => badge(n.status)],
      ['Attempts', (n) => fmt(n.attempts)],
      ['Last error', (n) => fmt(n.lastError)],
      ['Next attempt', (n) => fmtTime(n.nextAttemptAt)],
      ['Created', (n) => fmtTime(n.createdAt)],
      ['Retry', (n) => (n.status === 'delivered' ? `delivered ${fmtTime(n.deliveredAt)}`
        : actionButton('Retry now…', 'Operator', async () => {
          const what = ['"', bdi(n.title), '" to ', bdi(n.receiver)];
          if (!await confirmAction(['Retry notification ', what, '?'],
            ['pitcrew tries the delivery once more now.'], 'Operator')) return;
          try {
            const done = await post(`/api/notifications/${seg(n.id)}/retry`, {});
            say(...retried(what, done));
            await load();
          } catch (error) { reportError(error); }
        }))],
    ], items, { empty: 'No notifications with this status.' }));
  };
  filters.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  await load();
}
