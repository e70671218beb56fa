// Quota: usage against limits, the forecast of when a limit is reached, increase requests.

import { get } from './api.js';
import { append, h, problem } from './dom.js';
import { autoTable, itemsOf } from './generic.js';

export async function view(main) {
  append(main, [h('h1', {}, 'Quota'),
    h('p', { class: 'lead' }, 'Usage against each limit, when the trend reaches it, and the increase requests pitcrew made.')]);
  const usage = h('section', { 'aria-labelledby': 'quota-h' }, h('h2', { id: 'quota-h' }, 'Usage and forecast'));
  const requests = h('section', { 'aria-labelledby': 'requests-h' }, h('h2', { id: 'requests-h' }, 'Increase requests'));
  append(main, [usage, requests]);
  try {
    const data = await get('/api/quota', { limit: 100 });
    append(usage, [autoTable('Quota usage', itemsOf(data, ['usages', 'quotas', 'items']), {
      prefer: ['resource', 'name', 'location', 'usage', 'current', 'limit', 'percent', 'forecast', 'reachesLimitAt'],
      empty: 'No quota tracked.',
    })]);
    const asked = Array.isArray(data?.requests) ? data.requests : null;
    if (asked) append(requests, [autoTable('Increase requests', asked, { empty: 'No increase requests.' })]);
    else {
      const more = await get('/api/quota/requests', { limit: 100 });
      append(requests, [autoTable('Increase requests', itemsOf(more, ['requests', 'items']), { empty: 'No increase requests.' })]);
    }
  } catch (error) {
    append(usage.childElementCount > 1 ? requests : usage, [problem(error)]);
  }
}
