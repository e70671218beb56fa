// Rotations: runs, their steps and history; rotate now (dry run first), force with a reason.

import { post } from './api.js';
import {
  actionButton, append, bdi, clear, confirmAction, facts, field, fmt, fmtTime, h, listPager,
  reportError, say, table,
} from './dom.js';

const STATUSES = ['', 'running', 'waiting', 'succeeded', 'failed', 'skipped'];

function history(run) {
  return table(`Steps of ${run.vault}/${run.secret}`, [
    ['Step', (s) => fmt(s.step)], ['Outcome', (s) => fmt(s.outcome)],
    ['At', (s) => fmtTime(s.at)], ['Detail', (s) => fmt(s.detail)],
  ], run.history || [], { empty: 'No step yet.' });
}

export async function view(main) {
  append(main, [h('h1', {}, 'Rotations'),
    h('p', { class: 'lead' }, 'Each run is a persisted state machine: prepare, store pending, test, promote, refresh consumers, done.')]);

  // Rotate now
  const vault = h('input', { id: 'rotate-vault', name: 'vault', required: true, autocomplete: 'off', pattern: '[A-Za-z0-9-]+' });
  const secret = h('input', { id: 'rotate-secret', name: 'secret', required: true, autocomplete: 'off', pattern: '[A-Za-z0-9-]+' });
  const dry = h('input', { type: 'checkbox', id: 'rotate-dry', checked: true });
  const force = h('input', { type: 'checkbox', id: 'rotate-force' });
  const both = h('input', { type: 'checkbox', id: 'rotate-both' });
  const reason = h('input', { id: 'rotate-reason', maxlength: '500' });
  const outcome = h('div', { id: 'rotate-outcome', 'aria-live': 'polite' });
  const form = h('fieldset', { class: 'rotate' }, h('legend', {}, 'Rotate now'),
    field('Vault', vault), field('Secret', secret),
    h('div', { class: 'check' }, dry, h('label', { for: 'rotate-dry' }, 'Dry run: show the plan, change nothing')),
    h('div', { class: 'check' }, force, h('label', { for: 'rotate-force' }, 'Force: skip the grace period')),
    h('div', { class: 'check' }, both, h('label', { for: 'rotate-both' }, 'Both keys (emergency: the current key is compromised)')),
    field('Reason (required with force or both; audited)', reason),
    actionButton('Rotate…', 'Rotator', async () => {
      if (!vault.value || !secret.value) { say('Give the vault and the secret.', 'error'); return; }
      if ((force.checked || both.checked) && !reason.value.trim()) {
        say('Say why: a reason is required with force or both.', 'error'); reason.focus(); return;
      }
      const body = { vault: vault.value.trim(), secret: secret.value.trim(), dryRun: dry.checked };
      if (force.checked) body.force = true;
      if (both.checked) body.both = true;
      if (reason.value.trim()) body.reason = reason.value.trim();
      const what = `${body.vault}/${body.secret}`;
      if (!await confirmAction(dry.checked ? ['Plan a rotation of ', bdi(what), '?'] : ['Rotate ', bdi(what), ' now?'], [
        dry.checked ? 'Dry run: pitcrew says what it would do and changes nothing.'
          : 'pitcrew regenerates the key the current version does not hold, tests it, then promotes it.',
        force.checked ? ['Forced, because: ', bdi(body.reason)] : '',
      ], 'Rotator')) return;
      clear(outcome);
      try {
        const result = await post('/api/rotations', body);
        if (result.dryRun) {
          append(outcome, [h('h3', {}, 'Plan for ', bdi(what)), h('ol', { id: 'rotate-plan' }, (result.plan.steps || []).map((s) => h('li', {}, bdi(s))))]);
          say('Dry run: nothing changed.', 'ok');
        } else {
          const run = result.run || {};
          append(outcome, [h('h3', {}, 'Run ', bdi(run.id)), facts({ status: run.status, step: run.step, outcome: run.outcome }, 'run')]);
          // Green only for a rotation done; a failure says why; a run another request is
          // advancing, or one waiting out its grace period, is neither.
          if (result.inProgress) {
            say(['Rotation in progress: ', bdi(result.message || 'another request is advancing it'), '.'], 'info');
          } else if (run.status === 'failed') {
            say(['Rotation failed at step ', bdi(run.step), ': ', bdi(run.outcome || run.lastError || 'no reason given'), '.'], 'error');
          } else {
            say(['Rotation ', bdi(run.status), '.'], run.status === 'succeeded' ? 'ok' : 'info');
          }
        }
      } catch (error) { reportError(error); }
    }, { id: 'rotate-go' }), outcome);
  append(main, [form]);

  // Runs
  const status = h('select', { id: 'rot-status' }, STATUSES.map((s) => h('option', { value: s }, s || 'any')));
  const filterSecret = h('input', { id: 'rot-secret', type: 'search', placeholder: 'vault/secret' });
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter rotations' },
    field('Status', status), field('Secret', filterSecret), h('button', { type: 'submit' }, 'Filter'));
  const runs = h('section', { 'aria-labelledby': 'runs-h' });
  append(main, [h('h2', { id: 'runs-h' }, 'Runs'), filters, runs]);
  const load = () => {
    clear(runs);
    return listPager(runs, '/api/rotations', 'rotations', () => ({
      limit: 25, status: status.value, secret: filterSecret.value.trim(),
    }), (items) => table('Rotation runs', [
      ['Secret', (r) => h('span', { class: 'mono' }, bdi(r.vault), '/', bdi(r.secret))],
      ['Status', (r) => h('span', { class: `badge ${r.status}`, text: r.status })],
      ['Step', (r) => fmt(r.step)],
      ['Outcome', (r) => fmt(r.outcome)],
      ['Strategy', (r) => fmt(r.strategy)],
      ['Asked by', (r) => fmt(r.requestedBy)],
      ['Reason', (r) => fmt(r.reason)],
      ['Updated', (r) => fmtTime(r.updatedAt)],
      ['History', (r) => h('details', {}, h('summary', {}, `${(r.history || []).length} step(s)`), history(r),
        r.lastError ? h('p', { class: 'error' }, 'Last error: ', bdi(r.lastError)) : null,
        r.waitReason ? h('p', {}, 'Waiting: ', bdi(r.waitReason), ` until ${fmtTime(r.notBefore)}`) : null)],
    ], items, { empty: 'No rotation runs.' }));
  };
  filters.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  await load();
}
