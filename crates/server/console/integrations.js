// Integrations: connecting Stripe, Google Analytics and Google Sheets, which KPI each metric
// feeds, syncing now with its progress followed until the run ends, and the sync log.

import {
  api, h, status, navigate, render, link, can, form, attempt, ApiError, orgSettingsNav, leaveFor,
  when, every,
} from './app.js';

const PROVIDERS = [['stripe', 'Stripe'], ['google_analytics', 'Google Analytics'], ['google_sheets', 'Google Sheets']];
const PROVIDER_TEXT = Object.fromEntries(PROVIDERS);
const METRICS = {
  stripe: ['mrr', 'active_subscriptions', 'new_customers', 'revenue'],
  google_analytics: ['active_users', 'sessions', 'conversions'],
  google_sheets: ['value'],
};
const STATE_TEXT = { pending: 'Waiting for its first sync', success: 'Synced', error: 'Failing' };


function stateLine(integration) {
  return [
    integration.is_active ? (STATE_TEXT[integration.sync_status] || integration.sync_status) : 'Switched off',
    integration.within_plan === false ? 'paused: the plan does not allow it' : null,
    integration.last_sync_at ? `last synced ${when.format(new Date(integration.last_sync_at))}` : null,
    integration.next_sync_at ? `next ${when.format(new Date(integration.next_sync_at))}` : (integration.is_active ? 'paused' : null),
  ].filter(Boolean).join(' · ');
}

export async function integrationsPage(view, org) {
  const [organization, list] = await Promise.all([view.bar(org), every(`/v1/orgs/${org}/integrations?limit=200`)]);
  const admin = can(organization, 'admin');
  view.show('Integrations',
    orgSettingsNav(org, organization),
    h('p', {}, 'Each integration feeds KPIs from another service, every hour by default.'),
    list.items.length === 0 ? h('p', { class: 'empty' }, admin ? 'None yet: connect one below.' : 'None yet: an admin connects them.')
      : h('ul', { class: 'cards integrations' }, list.items.map((i) => h('li', { class: 'card' },
        h('h2', {}, link(`/orgs/${org}/integrations/${i.id}`, i.name)),
        h('p', { class: 'hint' }, PROVIDER_TEXT[i.provider] || i.provider),
        h('p', {}, stateLine(i)),
        i.error_message ? h('p', { class: 'form-error' }, i.error_message) : null))),
    !admin ? null : h('details', { class: 'new' }, h('summary', {}, 'Connect a service'),
      form([
        { name: 'provider', label: 'Service', options: PROVIDERS },
        { name: 'name', label: 'Name', hint: 'Empty: the service’s name.' },
        { name: 'api_key', label: 'Stripe API key', type: 'password', autocomplete: 'off', hint: 'Stripe only: a restricted (rk_…) or secret (sk_…) key. Stored sealed; never shown again.' },
        { name: 'property_id', label: 'GA4 property', hint: 'Google Analytics only: the property’s number.' },
        { name: 'spreadsheet_id', label: 'Spreadsheet', hint: 'Google Sheets only: the id in its address.' },
      ], 'Connect', async ({ provider, name, api_key: apiKey, property_id: propertyId, spreadsheet_id: spreadsheetId }) => {
        const body = { provider, name };
        if (provider === 'stripe' && apiKey) body.credentials = { api_key: apiKey };
        if (provider === 'google_analytics' && propertyId) body.config = { property_id: propertyId };
        if (provider === 'google_sheets' && spreadsheetId) body.config = { spreadsheet_id: spreadsheetId };
        try {
          const made = await api('POST', `/v1/orgs/${org}/integrations`, body);
          navigate(`/orgs/${org}/integrations/${made.id}`);
        } catch (error) {
          // The API names nested fields (credentials.api_key, config.property_id): shown at ours.
          if (error instanceof ApiError && error.problem.errors) {
            for (const e of error.problem.errors) e.field = e.field.replace(/^(credentials|config)\./, '');
          }
          throw error;
        }
      }, 'connect')));
}

/** Follows the newest run until it ends, saying where it stands; a queued run waits for a
 *  worker of the service (`tenantry serve` runs them). */
async function follow(url, box, before) {
  let said = '';
  const say = (text, ...rest) => {
    // Said again only when it changes: a status region reads out every change.
    if (text === said) return;
    said = text;
    box.replaceChildren(h('p', {}, text), ...rest);
  };
  for (let i = 0; i < 150; i += 1) {
    const runs = await api('GET', `${url}/syncs?limit=1`);
    const run = runs.items[0];
    if (run && run.id !== before) {
      if (run.status === 'running') {
        say('Syncing…', h('progress', { 'aria-label': 'Syncing' }));
      } else {
        const result = run.status === 'error' ? `The sync failed: ${run.error}` : `Synced: ${run.points_written} values written.`;
        say(result);
        return result;
      }
    } else {
      say('Queued: waiting for a worker to start it…', h('progress', { 'aria-label': 'Queued' }));
    }
    await new Promise((resolve) => { setTimeout(resolve, 2000); });
    if (!box.isConnected) return null;
  }
  say('Still queued after five minutes: is a worker running (tenantry serve runs them)?');
  return null;
}

export async function integrationPage(view, org, id) {
  const url = `/v1/orgs/${org}/integrations/${id}`;
  const [organization, integration, mappings, syncs, kpis] = await Promise.all([
    view.bar(org), api('GET', url), api('GET', `${url}/mappings`), api('GET', `${url}/syncs?limit=20`),
    api('GET', `/v1/orgs/${org}/kpis?limit=200`)]);
  const admin = can(organization, 'admin');
  const metrics = [...new Set([...(METRICS[integration.provider] || []), ...Object.keys((integration.config && integration.config.metrics) || {})])];
  const mapped = Object.fromEntries(mappings.map((m) => [m.metric, m.kpi_id]));
  const progress = h('div', { class: 'issued', role: 'status' });
  const problem = h('p', { class: 'form-error', role: 'alert' });
  const google = integration.provider !== 'stripe';
  view.show(integration.name,
    h('p', {}, link(`/orgs/${org}/integrations`, 'All integrations')),
    h('p', { class: 'hint' }, `${PROVIDER_TEXT[integration.provider]} · ${stateLine(integration)}`),
    integration.credentials_hint ? h('p', { class: 'hint' }, `Credentials: ${integration.credentials_hint}`) : null,
    integration.error_message ? h('p', { class: 'form-error' }, integration.error_message) : null,
    !admin ? null : h('div', { class: 'moves' },
      google ? h('button', {
        type: 'button',
        onclick: () => attempt(async () => {
          try {
            const answer = await api('POST', `${url}/authorize`);
            leaveFor(answer.authorization_url);
          } catch (error) {
            if (!(error instanceof ApiError) || error.status !== 503) throw error;
            problem.textContent = 'Google sign-in is not set up on this service (TENANTRY_GOOGLE_CLIENT_ID).';
          }
        }),
      }, 'Connect with Google') : null,
      h('button', {
        type: 'button',
        onclick: (event) => attempt(async () => {
          problem.textContent = '';
          event.target.disabled = true;
          try {
            // The run to wait for is the first one newer than the newest now.
            const newest = (await api('GET', `${url}/syncs?limit=1`)).items[0];
            await api('POST', `${url}/sync`);
            status('Sync queued.');
            const result = await follow(url, progress, newest ? newest.id : null);
            if (result) {
              render();
              status(result);
            }
          } catch (error) {
            if (!(error instanceof ApiError) || (error.status !== 409 && error.status !== 402)) throw error;
            problem.textContent = error.message;
          } finally {
            event.target.disabled = false;
          }
        }),
      }, 'Sync now'),
      h('button', {
        type: 'button',
        class: 'secondary',
        onclick: () => attempt(async () => {
          await api('PATCH', url, { is_active: !integration.is_active });
          status(integration.is_active ? 'Switched off.' : 'Switched on.');
          render();
        }),
      }, integration.is_active ? 'Switch off' : 'Switch on'),
      h('button', {
        type: 'button',
        class: 'secondary',
        onclick: () => attempt(async () => {
          if (!window.confirm(`Remove ${integration.name} and its stored credentials? The KPIs keep their values.`)) return;
          await api('DELETE', url);
          status(`${integration.name} removed.`);
          navigate(`/orgs/${org}/integrations`);
        }),
      }, 'Remove')),
    problem,
    progress,
    h('section', { 'aria-labelledby': 'mappings-heading' },
      h('h2', { id: 'mappings-heading' }, 'Which KPI each metric feeds'),
      !admin ? h('ul', {}, metrics.map((m) => h('li', {}, `${m}: ${kpis.items.find((k) => k.id === mapped[m])?.name || 'not used'}`)))
        : form(metrics.map((m) => ({
          name: m,
          label: m.replace(/_/g, ' '),
          // A mapped KPI beyond the first 200 stays chosen: saving must not drop it.
          options: [['', 'Not used'], ...kpis.items.map((k) => [k.id, k.name]),
            ...(mapped[m] && !kpis.items.some((k) => k.id === mapped[m]) ? [[mapped[m], 'A KPI not listed here']] : [])],
          value: mapped[m] || '',
        })), 'Save mappings', async (values) => {
          try {
            await api('PUT', `${url}/mappings`, { mappings: values });
          } catch (error) {
            if (error instanceof ApiError && error.problem.errors) {
              for (const e of error.problem.errors) e.field = e.field.replace(/^mappings\./, '');
            }
            throw error;
          }
          // Said once the page is drawn again, so the words describe the page on screen.
          await render();
          status('Mappings saved: the next sync fills them.');
        }, 'mapping')),
    h('section', { 'aria-labelledby': 'syncs-heading' },
      h('h2', { id: 'syncs-heading' }, 'Sync log'),
      syncs.items.length === 0 ? h('p', { class: 'empty' }, 'No sync has run yet.') : h('div', { class: 'scroll' }, h('table', { class: 'values syncs' },
        h('thead', {}, h('tr', {}, ['Started', 'Why', 'Result', 'Days', 'Values written'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, syncs.items.map((run) => h('tr', {},
          h('td', {}, when.format(new Date(run.started_at))),
          h('td', {}, run.trigger),
          h('td', {}, run.status === 'error' ? `error: ${run.error}` : run.status),
          h('td', {}, run.range_from ? `${run.range_from} – ${run.range_to}` : '—'),
          h('td', {}, String(run.points_written)))))))));
}
