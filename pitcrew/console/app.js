// The pitcrew operator console: hash routes, one view module per area of the operator API.

import { get } from './api.js';
import { append, bdi, clear, h, problem, session } from './dom.js';
import * as dlq from './dlq.js';
import * as rotations from './rotations.js';
import * as alerts from './alerts.js';
import * as quota from './quota.js';
import * as audit from './audit.js';

const ROUTES = [
  [/^#\/dlq\/g\/([0-9a-f]{12})$/, (main, m) => dlq.group(main, m[1]), '#/dlq'],
  [/^#\/dlq\/m\/([^/]+)$/, (main, m) => dlq.message(main, decodeURIComponent(m[1])), '#/dlq'],
  [/^#\/dlq\/job\/([^/]+)$/, (main, m) => dlq.job(main, decodeURIComponent(m[1])), '#/dlq'],
  [/^#\/dlq$/, (main) => dlq.groups(main), '#/dlq'],
  [/^#\/rotations$/, (main) => rotations.view(main), '#/rotations'],
  [/^#\/alerts$/, (main) => alerts.view(main), '#/alerts'],
  [/^#\/notifications$/, (main) => alerts.notifications(main), '#/notifications'],
  [/^#\/quota$/, (main) => quota.view(main), '#/quota'],
  [/^#\/audit$/, (main) => audit.view(main), '#/audit'],
  [/^#\/rejected$/, (main) => audit.rejected(main), '#/rejected'],
];

let rendering = 0;

// Each render draws into its own container in <main>. A view still waiting for the API when
// the operator moves on keeps writing into its container, which is no longer in the page: a
// late answer never mixes into the view shown now.
async function render() {
  const main = document.getElementById('main');
  const hash = location.hash || '#/dlq';
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  const ticket = ++rendering;
  for (const link of document.querySelectorAll('#nav a')) {
    if (found && link.getAttribute('href') === found[2]) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const view = h('div', { class: 'view' });
  main.replaceChildren(view);
  document.dispatchEvent(new CustomEvent('pitcrew:leave'));
  if (!found) {
    append(view, [h('h1', {}, 'Not found'), h('p', {}, 'No such view. Pick one above.')]);
    return;
  }
  try {
    await found[1](view, hash.match(found[0]));
  } catch (error) {
    append(view, [problem(error)]);
  }
  if (ticket === rendering) {
    const heading = view.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      document.title = `${heading.textContent} · pitcrew console`;
    }
    document.body.dataset.view = found[2].slice(2);
    document.body.dataset.ready = 'true';
  }
}

async function whoAmI() {
  const who = document.getElementById('who');
  try {
    Object.assign(session, await get('/api/me'));
  } catch (error) {
    clear(who);
    append(who, [problem(error)]);
    return false;
  }
  clear(who);
  const roles = session.roles.length ? session.roles.join(', ') : 'no role';
  append(who, ['Signed in as ', h('strong', { id: 'who-name' }, bdi(session.name)),
    ' · roles: ', h('span', { id: 'who-roles' }, bdi(roles)), ' · ',
    h('a', { href: '/.auth/logout?post_logout_redirect_uri=/api/console/' }, 'Sign out')]);
  return true;
}

window.addEventListener('hashchange', () => {
  document.body.dataset.ready = 'false';
  render().then(() => document.querySelector('#main h1')?.focus());
});

if (await whoAmI()) {
  if (!location.hash) history.replaceState(null, '', '#/dlq');
  await render();
}
