// Dead letters: groups -> messages -> one message (decoded body, edit and resubmit) -> replay
// jobs with live progress, pause, resume and cancel; archive and purge with confirmation.

import { get, post, seg } from './api.js';
import {
  actionButton, append, bdi, clear, confirmAction, facts, field, fmt, fmtTime, h, listPager,
  problem, reportError, say, table,
} from './dom.js';

const TERMINAL = ['succeeded', 'cancelled', 'failed'];
const MESSAGE_STATUSES = ['', 'failed', 'replaying', 'replayed', 'archived', 'superseded'];

const groupLink = (g) => h('a', { href: `#/dlq/g/${g.id}`, class: 'mono' }, g.id);
const jobLink = (j) => h('a', { href: `#/dlq/job/${seg(j.id)}`, class: 'mono' }, j.id);

function countsText(job) {
  const c = job.counts || {};
  const parts = [`sent ${c.sent ?? 0}`, `skipped ${c.skipped ?? 0}`, `failed ${c.failed ?? 0}`];
  if (job.dryRun) parts.unshift(`planned ${c.planned ?? 0}`);
  if (c.possibleDuplicates) parts.push(`possible duplicates ${c.possibleDuplicates}`);
  return `${parts.join(', ')} of ${job.total ?? '?'}`;
}

function jobsTable(jobs) {
  return table('Replay jobs', [
    ['Job', jobLink],
    ['Status', (j) => h('span', { class: `badge ${j.status}`, text: j.status })],
    ['Selection', (j) => fmt(j.selection && (j.selection.group || `${(j.selection.messages || []).length} message(s)`))],
    ['Target', (j) => fmt(j.target)],
    ['Progress', (j) => countsText(j)],
    ['Dry run', (j) => (j.dryRun ? 'yes' : 'no')],
    ['Asked by', (j) => fmt(j.actor)],
    ['Requested', (j) => fmtTime(j.requestedAt)],
  ], jobs, { empty: 'No replay jobs in the last 30 days.' });
}

// ------------------------------------------------------------------------------ groups

export async function groups(main) {
  append(main, [h('h1', {}, 'Dead letters'),
    h('p', { class: 'lead' }, 'Failed messages, grouped by entity and cause. Open a group to filter, view, edit, replay, archive or purge its messages.')]);
  const scanStatus = h('span', { role: 'status', class: 'inline-status' });
  append(main, [h('div', { class: 'toolbar' },
    actionButton('Scan sources now', 'Operator', async () => {
      if (!await confirmAction('Scan dead-letter sources now?',
        ['pitcrew reads every dead-letter source the policy names and copies new messages into the failed-message store before settling them at the source.'], 'Operator')) return;
      try {
        let scan = await post('/api/dlq/scan', {});
        scanStatus.textContent = `Scan ${scan.id}: ${scan.status}`;
        for (let i = 0; i < 60 && !TERMINAL.includes(scan.status); i++) {
          await new Promise((r) => setTimeout(r, 1000));
          scan = await get(`/api/dlq/scans/${seg(scan.id)}`);
          scanStatus.textContent = `Scan ${scan.id}: ${scan.status}`;
        }
        const kind = scan.status === 'succeeded' ? 'ok' : scan.status === 'failed' ? 'error' : 'info';
        say(['Scan ', bdi(scan.id), `: ${scan.status}.`], kind);
        // Show the new groups only if this view is still the one shown (the operator may have
        // moved on while the scan ran: their view and what they typed there stay as they are).
        if (TERMINAL.includes(scan.status) && scanStatus.isConnected) {
          window.dispatchEvent(new HashChangeEvent('hashchange'));
        }
      } catch (error) { reportError(error); }
    }), scanStatus)]);
  const groupsSection = h('section', { 'aria-labelledby': 'groups-h' }, h('h2', { id: 'groups-h' }, 'Groups'));
  const jobsSection = h('section', { 'aria-labelledby': 'jobs-h' }, h('h2', { id: 'jobs-h' }, 'Replay jobs'));
  append(main, [groupsSection, jobsSection]);
  await Promise.all([
    listPager(groupsSection, '/api/dlq/groups', 'groups', { limit: 50 }, (items) => table('Dead-letter groups', [
      ['Group', groupLink],
      ['Source', (g) => fmt(g.source)],
      ['Entity', (g) => fmt(g.entity)],
      ['Cause', (g) => fmt(g.cause)],
      ['Count', (g) => fmt(g.count)],
      ['First seen', (g) => fmtTime(g.firstSeen)],
      ['Last seen', (g) => fmtTime(g.lastSeen)],
    ], items, { empty: 'No dead letters. Nothing has failed, or everything was handled.' })),
    listPager(jobsSection, '/api/dlq/replays', 'jobs', { limit: 20 }, jobsTable),
  ]);
}

// ------------------------------------------------------------------------------ one group

// The replay form of a group (the selection or the whole group) or of one message: a dry run
// unless the operator unticks it.
function replayForm(selection, describe, { legend = 'Replay', label = 'Replay…', id = 'replay-go' } = {}) {
  const rate = h('input', { type: 'number', min: '0.1', step: 'any', inputmode: 'decimal', name: 'rate', id: 'replay-rate' });
  const dry = h('input', { type: 'checkbox', name: 'dryRun', id: 'replay-dry', checked: true });
  const form = h('fieldset', { class: 'replay' },
    h('legend', {}, legend),
    field('Rate (messages a second)', rate, 'Empty: the policy default.'),
    h('div', { class: 'check' }, dry, h('label', { for: 'replay-dry' }, 'Dry run: plan only, send nothing')),
    actionButton(label, 'Operator', async () => {
      const chosen = selection();
      if (!chosen) { say('Select messages first, or replay the whole group.', 'error'); return; }
      const body = { ...chosen, dryRun: dry.checked };
      if (rate.value) body.rate = Number(rate.value);
      const verb = dry.checked ? 'Plan a replay of' : 'Replay';
      if (!await confirmAction([`${verb} `, describe(chosen), '?'], [
        dry.checked ? 'Dry run: pitcrew counts what it would send and sends nothing.'
          : 'The messages go back to the target the policy names for their source (their own entity unless replay_to says otherwise).',
        `Rate: ${body.rate ?? 'the policy default'} a second.`,
      ], 'Operator')) return;
      try {
        const job = await post('/api/dlq/replays', body);
        say(['Replay job ', bdi(job.id), ` ${job.status}.`], 'ok');
        location.hash = `#/dlq/job/${seg(job.id)}`;
      } catch (error) { reportError(error); }
    }, { id }));
  return form;
}

export async function group(main, id) {
  const filters = { status: '', text: '', since: '', until: '' };
  const first = await get(`/api/dlq/groups/${id}`, { limit: 1 });
  append(main, [h('h1', {}, 'Group ', h('span', { class: 'mono', text: id })),
    h('p', {}, h('a', { href: '#/dlq' }, '← All groups')),
    facts({
      source: first.source, entity: first.entity, cause: first.cause, count: first.count,
      'first seen': fmtTime(first.firstSeen), 'last seen': fmtTime(first.lastSeen),
      statuses: Object.entries(first.statuses || {}).map(([k, v]) => `${k} ${v}`).join(', '),
    }, 'group facts')]);

  const status = h('select', { name: 'status', id: 'filter-status' },
    MESSAGE_STATUSES.map((s) => h('option', { value: s }, s || 'any')));
  const text = h('input', { type: 'search', name: 'text', id: 'filter-text', maxlength: '200' });
  const since = h('input', { type: 'datetime-local', name: 'since', id: 'filter-since' });
  const until = h('input', { type: 'datetime-local', name: 'until', id: 'filter-until' });
  const filterForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter messages' },
    field('Status', status), field('Text in body or description', text),
    field('Ingested since (UTC)', since), field('Until (UTC)', until),
    h('button', { type: 'submit' }, 'Filter'));
  const selected = new Set();
  const list = h('section', { 'aria-labelledby': 'messages-h' }, h('h2', { id: 'messages-h' }, 'Messages'));
  const selectionNote = h('p', { class: 'hint', 'aria-live': 'polite' }, 'No message selected: actions apply to the whole group.');
  const noteSelection = () => {
    selectionNote.textContent = selected.size
      ? `${selected.size} message(s) selected.` : 'No message selected: actions apply to the whole group.';
  };
  const toIso = (v) => (v ? new Date(`${v}Z`).toISOString() : '');

  async function load() {
    clear(list);
    append(list, [h('h2', { id: 'messages-h' }, 'Messages')]);
    selected.clear();
    noteSelection();
    await listPager(list, `/api/dlq/groups/${id}`, 'messages', () => ({
      limit: 50, status: filters.status, text: filters.text,
      since: toIso(filters.since), until: toIso(filters.until),
    }), (items) => table(`Messages of group ${id}`, [
      ['Select', (m) => h('input', {
        type: 'checkbox', 'aria-label': `Select ${m.id}`, dataset: { id: m.id },
        onchange: (e) => { if (e.target.checked) selected.add(m.id); else selected.delete(m.id); noteSelection(); },
      })],
      ['Message', (m) => h('a', { href: `#/dlq/m/${seg(m.id)}`, class: 'mono' }, m.id)],
      ['Status', (m) => h('span', { class: `badge ${m.status}`, text: m.status })],
      ['Enqueued', (m) => fmtTime(m.enqueuedTime)],
      ['Body preview', (m) => h('code', { class: 'preview', text: m.preview ?? '' })],
    ], items, { empty: 'No message matches.' }));
  }
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    Object.assign(filters, { status: status.value, text: text.value, since: since.value, until: until.value });
    load();
  });

  const chosen = () => (selected.size ? { messages: [...selected] } : { group: id });
  const describe = (c) => (c.group ? ['all of group ', bdi(c.group)] : `${c.messages.length} selected message(s)`);
  const actions = h('section', { 'aria-labelledby': 'actions-h', class: 'actions-panel' },
    h('h2', { id: 'actions-h' }, 'Act on this group'), selectionNote,
    replayForm(chosen, describe),
    h('div', { class: 'toolbar' },
      actionButton('Archive selected…', 'Operator', async () => {
        if (!selected.size) { say('Select the messages to archive first.', 'error'); return; }
        const ids = [...selected];
        if (!await confirmAction(`Archive ${ids.length} message(s)?`,
          ['Archived messages are kept (until retention) but never replayed.'], 'Operator')) return;
        try {
          const result = await post('/api/dlq/archive', { messages: ids });
          say(`Archived ${result.archived}, skipped ${result.skipped}.`, 'ok');
          await load();
        } catch (error) { reportError(error); }
      }, { id: 'archive-go' }),
      actionButton('Purge group…', 'Operator', async () => {
        try {
          const plan = await post('/api/dlq/purge', { group: id, dryRun: true });
          if (!await confirmAction([`Purge ${plan.count} message(s) of group `, bdi(id), '?'], [
            'This deletes the stored messages and their bodies now. It cannot be undone.',
            plan.more ? 'There are more than one request purges; purge again for the rest.' : '',
          ], 'Operator')) return;
          const done = await post('/api/dlq/purge', { group: id });
          if (done.groupDeleted) {
            // The group is gone with its last message: back to the list of groups.
            say(['Purged ', String(done.count), ' message(s); group ', bdi(id), ' is gone.'], 'ok');
            location.hash = '#/dlq';
            return;
          }
          say(`Purged ${done.count} message(s).`, 'ok');
          await load();
        } catch (error) { reportError(error); }
      }, { danger: true, id: 'purge-go' })));
  append(main, [filterForm, actions, list]);
  await load();
}

// ------------------------------------------------------------------------------ one message

export async function message(main, id) {
  const m = await get(`/api/dlq/messages/${seg(id)}`);
  append(main, [h('h1', {}, 'Message ', h('span', { class: 'mono', text: m.id })),
    h('p', {}, h('a', { href: `#/dlq/g/${m.group}` }, `← Group ${m.group}`)),
    facts({
      status: m.status, source: m.source, entity: m.entity, reason: m.reason,
      description: m.description, 'delivery count': m.deliveryCount,
      enqueued: fmtTime(m.enqueuedTime), ingested: fmtTime(m.ingestedAt),
      'body size': m.bodySize, 'edit of': m.editOf, 'edited as': m.editedAs,
      replay: m.replay,
    }, 'message facts'),
    h('h2', {}, 'Properties'), facts(m.properties, 'properties'),
    h('h2', {}, 'Application properties'), facts(m.applicationProperties, 'application properties'),
    h('h2', {}, 'Body'), h('p', { class: 'preview-line' }, h('code', { text: m.preview ?? '' }))]);

  const bodyBox = h('pre', { class: 'body', id: 'message-body', tabindex: '0', 'aria-label': 'Decoded body' });
  const editText = h('textarea', { id: 'edit-body', rows: '8', spellcheck: 'false' });
  const editProps = h('textarea', { id: 'edit-props', rows: '4', spellcheck: 'false' });
  editProps.value = JSON.stringify(m.applicationProperties || {}, null, 2);
  append(main, [h('div', { class: 'toolbar' },
    actionButton('Show decoded body', 'Reader', async () => {
      try {
        const full = await get(`/api/dlq/messages/${seg(id)}`, { body: 'true' });
        const b = full.body || {};
        bodyBox.textContent = b.format === 'json' ? JSON.stringify(b.json, null, 2) : (b.text ?? `(${b.format}, ${b.decodedSize} bytes, not text)`);
        if (b.text !== undefined) editText.value = b.text;
        say('Body shown. Viewing a body is audited (dlq.view-body).', 'ok');
      } catch (error) { reportError(error); }
    }, { id: 'body-go' })), bodyBox]);

  append(main, [h('section', { 'aria-labelledby': 'edit-h' },
    h('h2', { id: 'edit-h' }, 'Edit and resubmit'),
    h('p', { class: 'hint' }, 'Editing keeps the original (status superseded) and creates a new failed message you can replay.'),
    field('New body (text; empty: keep the body)', editText),
    field('Application properties (JSON object)', editProps),
    actionButton('Save edit…', 'Operator', async () => {
      const body = {};
      if (editText.value) body.body = { text: editText.value };
      try { body.applicationProperties = JSON.parse(editProps.value || '{}'); } catch {
        say('Application properties: not a JSON object.', 'error'); return;
      }
      if (!await confirmAction(['Edit message ', bdi(id), '?'], ['A new message is created with your changes; the original is kept.'], 'Operator')) return;
      try {
        const edited = await post(`/api/dlq/messages/${seg(id)}/edit`, body);
        say(['Saved as ', bdi(edited.id), '.'], 'ok');
        location.hash = `#/dlq/m/${seg(edited.id)}`;
      } catch (error) { reportError(error); }
    }, { id: 'edit-go' })),
  h('section', { 'aria-labelledby': 'replay-one-h' },
    h('h2', { id: 'replay-one-h' }, 'Replay this message'),
    replayForm(() => ({ messages: [id] }), () => ['message ', bdi(id)],
      { legend: 'Replay', label: 'Replay this message…', id: 'replay-one' }))]);
}

// ------------------------------------------------------------------------------ one job

export async function job(main, id) {
  append(main, [h('h1', {}, 'Replay job ', h('span', { class: 'mono', text: id })),
    h('p', {}, h('a', { href: '#/dlq' }, '← Dead letters'))]);
  const progress = h('progress', { id: 'job-progress', max: '1', value: '0', 'aria-label': 'Replay progress' });
  const summary = h('p', { id: 'job-summary', role: 'status', 'aria-live': 'polite' });
  const details = h('div');
  const controls = h('div', { class: 'toolbar' });
  append(main, [progress, summary, controls, details]);
  let stopped = false;
  document.addEventListener('pitcrew:leave', () => { stopped = true; }, { once: true });

  const control = (action, label) => actionButton(label, 'Operator', async () => {
    if (!await confirmAction(`${label} replay job ${id}?`, [
      action === 'cancel' ? 'Messages already sent stay sent; the rest stay failed and can be replayed later.' : `The job is ${action}d at its next batch.`,
    ], 'Operator')) return;
    try { show(await post(`/api/dlq/replays/${seg(id)}/${action}`, {})); } catch (error) { reportError(error); }
  }, { id: `job-${action}`, danger: action === 'cancel' });

  function show(j) {
    const c = j.counts || {};
    const done = (c.sent ?? 0) + (c.skipped ?? 0) + (c.failed ?? 0) + (j.dryRun ? (c.planned ?? 0) : 0);
    progress.max = Math.max(j.total ?? 1, 1);
    progress.value = TERMINAL.includes(j.status) && j.status === 'succeeded' ? progress.max : Math.min(done, progress.max);
    summary.textContent = `${j.status}${j.dryRun ? ' (dry run)' : ''}: ${countsText(j)}${j.stale ? ' — stale: no heartbeat for ' + j.heartbeatAgeSeconds + ' s' : ''}`;
    summary.dataset.status = j.status;
    clear(controls);
    if (!TERMINAL.includes(j.status)) {
      append(controls, [j.status === 'paused' ? control('resume', 'Resume') : control('pause', 'Pause'),
        control('cancel', 'Cancel')]);
    }
    clear(details);
    append(details, [facts({
      target: j.target, rate: j.rate, 'batch size': j.batchSize, 'message id': j.messageId,
      selection: j.selection, 'skipped by': j.skippedBy, error: j.error, 'asked by': j.actor,
      requested: fmtTime(j.requestedAt), updated: fmtTime(j.updatedAt),
    }, 'job facts'), j.failures && j.failures.length ? table('Failures', [
      ['Message', (f) => fmt(f.message || f.id)], ['Error', (f) => fmt(f.error || f.reason || f)],
    ], j.failures) : null]);
    return j;
  }

  let j = show(await get(`/api/dlq/replays/${seg(id)}`));
  (async () => {
    while (!stopped && !TERMINAL.includes(j.status)) {
      await new Promise((r) => setTimeout(r, 1000));
      if (stopped) return;
      try { j = show(await get(`/api/dlq/replays/${seg(id)}`)); } catch (error) {
        append(details, [problem(error)]); return;
      }
      if (TERMINAL.includes(j.status)) say(['Replay job ', bdi(id), ` ${j.status}: ${countsText(j)}.`], j.status === 'succeeded' ? 'ok' : 'error');
    }
  })();
}
