// My profile and sessions; an organization's teams, API keys (the secret shown once) and
// activity feed (admins).

import {
  api, h, status, navigate, render, link, can, form, memberNames, attempt, orgSettingsNav,
  filtersGo, shownOnce, when, every, paged,
} from './app.js';

const MODULES = ['orgs', 'kpis', 'fasttrack', 'crm', 'ai', 'billing', 'integrations', 'content'];

// ---------------------------------------------------------------------------------------------
// Me

export async function mePage(view) {
  view.plainBar();
  const [me, sessions] = await Promise.all([api('GET', '/v1/me'), api('GET', '/v1/me/sessions')]);
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  if (!zones.includes('UTC')) zones.unshift('UTC');
  if (!zones.includes(me.profile.timezone)) zones.unshift(me.profile.timezone);
  const rows = sessions.map((s) => h('tr', {},
    h('td', {}, s.current ? 'This browser' : (s.user_agent || 'Unknown client')),
    h('td', {}, s.ip_address || '—'),
    h('td', {}, when.format(new Date(s.last_seen_at))),
    h('td', {}, when.format(new Date(s.expires_at))),
    h('td', {}, s.current ? '' : h('button', {
      type: 'button',
      class: 'link',
      'aria-label': `Sign out the session last seen ${when.format(new Date(s.last_seen_at))}`,
      onclick: () => attempt(async () => {
        await api('DELETE', `/v1/me/sessions/${s.id}`);
        status('That session is signed out.');
        render();
      }),
    }, 'Sign out'))));
  view.show('Your profile',
    h('p', {}, link('/', 'Back to your organization')),
    h('p', { class: 'hint' }, `Signed in as ${me.user.email}.`),
    form([
      { name: 'name', label: 'Name', value: me.user.name, clearable: true, autocomplete: 'name' },
      { name: 'timezone', label: 'Time zone', options: zones.map((z) => [z, z]), value: me.profile.timezone, hint: 'KPI charts count days in it; reminders keep its local time.' },
      { name: 'language', label: 'Language', value: me.profile.language, hint: 'A language tag, e.g. en or pt-BR.' },
      { name: 'avatar_url', label: 'Picture', type: 'url', value: me.profile.avatar_url, clearable: true, hint: 'The address of an image (https).' },
    ], 'Save profile', async (values) => {
      await api('PATCH', '/v1/me', values);
      await render();
      status('Profile saved.');
    }, 'profile'),
    h('section', { 'aria-labelledby': 'password-heading' },
      h('h2', { id: 'password-heading' }, 'Password'),
      form([
        { name: 'current_password', label: 'Current password', type: 'password', required: true, autocomplete: 'current-password' },
        { name: 'new_password', label: 'New password', type: 'password', required: true, autocomplete: 'new-password', hint: 'At least 8 characters. Your other sessions end.' },
      ], 'Change password', async (values) => {
        await api('PUT', '/v1/me/password', values);
        status('Password changed; your other sessions ended.');
        render();
      }, 'password')),
    h('section', { 'aria-labelledby': 'sessions-heading' },
      h('h2', { id: 'sessions-heading' }, 'Where you are signed in'),
      h('div', { class: 'scroll' }, h('table', { class: 'values sessions' },
        h('thead', {}, h('tr', {}, ['Client', 'Address', 'Last seen', 'Ends', 'Session'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows))),
      h('button', {
        type: 'button',
        class: 'secondary',
        onclick: () => attempt(async () => {
          if (!window.confirm('Sign out everywhere, this browser included?')) return;
          await api('DELETE', '/v1/me/sessions');
          localStorage.removeItem('tenantry.csrf');
          navigate('/sign-in');
        }),
      }, 'Sign out everywhere')),
    h('section', { 'aria-labelledby': 'my-data-heading' },
      h('h2', { id: 'my-data-heading' }, 'Your data'),
      h('p', {}, h('a', { href: '/v1/me/export', download: 'my-data.json' }, 'Download everything about you (JSON)'),
        ' — your account and, in each organization, what you wrote.')));
}

// ---------------------------------------------------------------------------------------------
// Teams

export async function teamsPage(view, org) {
  const [organization, teams, names] = await Promise.all([
    view.bar(org), every(`/v1/orgs/${org}/teams?limit=200`), memberNames(org)]);
  const admin = can(organization, 'admin');
  const who = (id) => names.get(id) || 'another member';
  const cards = teams.items.map((team) => {
    const others = [...names].filter(([id]) => !team.member_ids.includes(id));
    const add = h('form', { class: 'inline-form' },
      h('label', { for: `add-${team.id}` }, 'Add'),
      h('select', { id: `add-${team.id}` }, others.map(([id, name]) => h('option', { value: id }, name))),
      h('button', { type: 'submit', class: 'small' }, 'Add to team'));
    add.addEventListener('submit', (event) => {
      event.preventDefault();
      const user = add.querySelector('select').value;
      attempt(async () => {
        await api('PUT', `/v1/orgs/${org}/teams/${team.id}/members/${user}`);
        status(`${who(user)} joined ${team.name}.`);
        render();
      });
    });
    return h('li', { class: 'card' },
      h('h2', {}, team.name),
      team.description ? h('p', {}, team.description) : null,
      h('p', { class: 'hint' }, team.lead_user_id ? `Led by ${who(team.lead_user_id)}` : 'No lead'),
      team.member_ids.length === 0 ? h('p', { class: 'hint' }, 'No members yet.') : h('ul', {}, team.member_ids.map((id) => h('li', {},
        who(id), ' ',
        !admin ? null : h('button', {
          type: 'button',
          class: 'link',
          'aria-label': `Remove ${who(id)} from ${team.name}`,
          onclick: () => attempt(async () => {
            await api('DELETE', `/v1/orgs/${org}/teams/${team.id}/members/${id}`);
            status(`${who(id)} left ${team.name}.`);
            render();
          }),
        }, 'Remove')))),
      admin && others.length > 0 ? add : null,
      !admin ? null : h('button', {
        type: 'button',
        class: 'link',
        'aria-label': `Delete team ${team.name}`,
        onclick: () => attempt(async () => {
          if (!window.confirm(`Delete the team ${team.name}? Its members stay in the organization.`)) return;
          await api('DELETE', `/v1/orgs/${org}/teams/${team.id}`);
          status(`${team.name} deleted.`);
          render();
        }),
      }, 'Delete team'));
  });
  view.show('Teams',
    orgSettingsNav(org, organization),
    cards.length === 0 ? h('p', { class: 'empty' }, admin ? 'No teams yet: make one below.' : 'No teams yet.')
      : h('ul', { class: 'cards teams' }, cards),
    !admin ? null : h('details', { class: 'new' }, h('summary', {}, 'New team'),
      form([
        { name: 'name', label: 'Name', required: true },
        { name: 'description', label: 'Description', type: 'textarea' },
        { name: 'lead_user_id', label: 'Lead', options: [['', 'None'], ...names] },
      ], 'Add team', async (values) => {
        const team = await api('POST', `/v1/orgs/${org}/teams`, values);
        status(`${team.name} added.`);
        render();
      }, 'team')));
}

// ---------------------------------------------------------------------------------------------
// API keys (admins): the secret is shown once, right after it is made.

let justMade = null;

export async function apiKeysPage(view, org) {
  const [organization, keys, names] = await Promise.all([
    view.bar(org), every(`/v1/orgs/${org}/api-keys?limit=200`), memberNames(org)]);
  const made = justMade
    && shownOnce(`The secret of “${justMade.key.name}”. Copy it now: it is not shown again.`, justMade.secret);
  justMade = null;
  const rows = keys.items.map((key) => h('tr', {},
    h('td', {}, key.name),
    h('td', {}, h('code', {}, `${key.prefix}…`)),
    h('td', {}, key.access),
    h('td', {}, key.modules ? key.modules.join(', ') : 'all'),
    h('td', {}, key.revoked_at ? `Revoked ${when.format(new Date(key.revoked_at))}`
      : (key.expires_at ? `Until ${when.format(new Date(key.expires_at))}` : 'Until revoked')),
    h('td', {}, key.last_used_at ? when.format(new Date(key.last_used_at)) : 'Never'),
    h('td', {}, key.created_by ? names.get(key.created_by) || 'another member' : '—'),
    h('td', {}, key.revoked_at ? '' : h('button', {
      type: 'button',
      class: 'link',
      'aria-label': `Revoke the key ${key.name}`,
      onclick: () => attempt(async () => {
        if (!window.confirm(`Revoke “${key.name}”? Whatever uses it stops working at once.`)) return;
        await api('DELETE', `/v1/orgs/${org}/api-keys/${key.id}`);
        status(`${key.name} revoked.`);
        render();
      }),
    }, 'Revoke'))));
  view.show('API keys',
    orgSettingsNav(org, organization),
    h('p', {}, 'A key lets a program use this organization’s API: read keys act as a viewer, write keys as a member. Neither manages members, keys or settings.'),
    made,
    rows.length === 0 ? h('p', { class: 'empty' }, 'No keys yet.') : h('div', { class: 'scroll' }, h('table', { class: 'values keys' },
      h('thead', {}, h('tr', {}, ['Name', 'Starts with', 'Access', 'Modules', 'Valid', 'Last used', 'Made by', 'Key'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows))),
    h('section', { 'aria-labelledby': 'new-key-heading' },
      h('h2', { id: 'new-key-heading' }, 'New key'),
      form([
        { name: 'name', label: 'Name', required: true, hint: 'What uses it, e.g. “Nightly export”.' },
        { name: 'access', label: 'Access', options: [['read', 'Read'], ['write', 'Read and write']] },
        {
          name: 'modules',
          label: 'Modules',
          hint: `Empty: all. Else some of ${MODULES.join(', ')}, separated by commas.`,
          parse: (text) => text.split(',').map((m) => m.trim()).filter(Boolean),
        },
        { name: 'expires_at', label: 'Until', type: 'date', hint: 'Empty: until revoked.', parse: (date) => new Date(`${date}T23:59:59`).toISOString() },
      ], 'Make key', async (values) => {
        justMade = await api('POST', `/v1/orgs/${org}/api-keys`, values);
        status(`${justMade.key.name} made; its secret is shown once.`);
        render();
      }, 'key')));
}

// ---------------------------------------------------------------------------------------------
// The activity feed (admins): every recorded change, newest first, with filters.

/** The fields a change touched: `field: old → new`. */
function changed(event) {
  const before = event.old_data || {};
  const after = event.new_data || {};
  const short = (v) => {
    const text = v === undefined || v === null ? '—' : (typeof v === 'string' ? v : JSON.stringify(v));
    return text.length > 80 ? `${text.slice(0, 79)}…` : text;
  };
  return Object.keys({ ...before, ...after })
    .filter((k) => !['updated_at', 'created_at'].includes(k) && JSON.stringify(before[k]) !== JSON.stringify(after[k]))
    .map((k) => (event.action === 'update' ? `${k}: ${short(before[k])} → ${short(after[k])}` : `${k}: ${short(event.action === 'delete' ? before[k] : after[k])}`));
}

export async function activityPage(view, org) {
  const query = new URLSearchParams(location.search);
  const params = new URLSearchParams({ limit: '50' });
  for (const key of ['entity_type', 'action', 'user_id']) if (query.get(key)) params.set(key, query.get(key));
  if (query.get('since')) params.set('since', new Date(`${query.get('since')}T00:00:00`).toISOString());
  const [organization, names, first] = await Promise.all([
    view.bar(org), memberNames(org), api('GET', `/v1/orgs/${org}/activity?${params}`)]);
  const body = h('tbody', {});
  const more = paged(`/v1/orgs/${org}/activity?${params}`, first, body, (e) => h('tr', {},
    h('td', {}, when.format(new Date(e.occurred_at))),
    h('td', {}, e.user_id ? names.get(e.user_id) || 'another member' : (e.api_key_id ? 'an API key' : 'the service')),
    h('td', {}, e.action),
    h('td', {}, e.entity_type),
    h('td', {}, h('details', {}, h('summary', {}, `${changed(e).length} fields`),
      h('ul', {}, changed(e).map((line) => h('li', {}, line)))))), ['change', 'changes']);
  const select = (name, label, options) => h('div', { class: 'field' },
    h('label', { for: `filter-${name}` }, label),
    h('select', { id: `filter-${name}`, name }, options.map(([value, words]) =>
      h('option', { value, selected: (query.get(name) || '') === value }, words))));
  const filters = h('form', { class: 'filters', role: 'search' },
    h('div', { class: 'field' }, h('label', { for: 'filter-entity_type' }, 'Table'),
      h('input', { id: 'filter-entity_type', name: 'entity_type', value: query.get('entity_type') || '', placeholder: 'e.g. kpis' })),
    select('action', 'Change', [['', 'Any'], ['insert', 'Added'], ['update', 'Changed'], ['delete', 'Removed']]),
    select('user_id', 'By', [['', 'Anyone'], ...names]),
    h('div', { class: 'field' }, h('label', { for: 'filter-since' }, 'Since'),
      h('input', { id: 'filter-since', name: 'since', type: 'date', value: query.get('since') || '' })),
    h('button', { type: 'submit' }, 'Filter'));
  filtersGo(filters);
  view.show('Activity',
    orgSettingsNav(org, organization),
    filters,
    first.items.length === 0 ? h('p', { class: 'empty' }, 'Nothing recorded matches.') : h('div', { class: 'scroll' },
      h('table', { class: 'values activity' },
        h('thead', {}, h('tr', {}, ['When', 'Who', 'Change', 'Table', 'Fields'].map((t) => h('th', { scope: 'col' }, t)))),
        body)),
    more);
}
