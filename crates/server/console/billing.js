// Billing: the plan in force and its standing, usage against the plan's limits, the plans on
// offer with Stripe Checkout to change (admins), the Customer Portal, and invoices.

import {
  api, h, status, can, ApiError, attempt, orgSettingsNav, leaveFor, webAddress, day,
} from './app.js';

const ENTITLEMENTS = {
  seats: 'Members', kpis: 'KPIs', api_calls: 'API calls this period', ai_tokens: 'AI tokens this period', storage: 'Storage',
};
const CYCLES = { month: 'a month', year: 'a year' };

function money(amount, currency) {
  return new Intl.NumberFormat(undefined, { style: 'currency', currency: (currency || 'usd').toUpperCase() })
    .format(amount / 100);
}

function quantity(entitlement, n) {
  if (entitlement !== 'storage') return new Intl.NumberFormat().format(n);
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 }).format(value)} ${units[unit]}`;
}

function usageLine(line) {
  const label = ENTITLEMENTS[line.entitlement] || line.entitlement;
  const words = line.limit === null || line.limit === undefined
    ? `${quantity(line.entitlement, line.used)} (no limit)`
    : `${quantity(line.entitlement, line.used)} of ${quantity(line.entitlement, line.limit)}`;
  const percent = Math.min(100, line.percent || 0);
  return h('li', { class: percent >= 100 ? 'usage full' : (percent >= 80 ? 'usage near' : 'usage') },
    h('p', {}, h('strong', {}, label), ` · ${words}`),
    line.limit === null || line.limit === undefined ? null
      : h('progress', { max: 100, value: percent, 'aria-label': `${label}: ${Math.round(percent)} % of the limit` }),
    line.measured_at ? h('p', { class: 'hint' }, `Measured ${day.format(new Date(line.measured_at))}`) : null);
}

/** Goes to a Stripe page the API made (Checkout, the portal); without Stripe the API says 404. */
async function toStripe(path, body, problem) {
  try {
    const answer = await api('POST', path, body);
    leaveFor(answer.url);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      problem.textContent = 'Payments are not set up on this service: its operator has not configured Stripe.';
    } else if (error instanceof ApiError && error.status === 409) {
      problem.textContent = 'There is no billing account yet: choose a paid plan first.';
    } else {
      throw error;
    }
  }
}

export async function billingPage(view, org) {
  const organization = await view.bar(org);
  const admin = can(organization, 'admin');
  const [subscription, usage, plans, invoices] = await Promise.all([
    api('GET', `/v1/orgs/${org}/subscription`), api('GET', `/v1/orgs/${org}/usage`), api('GET', '/v1/plans'),
    admin ? api('GET', `/v1/orgs/${org}/invoices?limit=50`) : Promise.resolve({ items: [] })]);
  const problem = h('p', { class: 'form-error', role: 'alert' });
  const here = `${location.origin}${location.pathname}`;
  const inForce = plans.find((p) => p.code === subscription.plan_in_force.code);
  const subscribed = plans.find((p) => p.code === subscription.plan_code);
  const returned = new URLSearchParams(location.search).get('checkout');
  if (returned === 'done') status('Thank you: the plan changes as soon as Stripe confirms the payment.');
  const planCard = (plan) => h('li', { class: plan.code === subscription.plan_in_force.code ? 'card current' : 'card' },
    h('h3', {}, plan.name),
    h('p', { class: 'hint' }, plan.code === subscription.plan_in_force.code ? 'Your plan' : `Tier: ${plan.tier}`),
    h('ul', {}, Object.entries(plan.prices || {}).map(([cycle, price]) => h('li', {}, `${money(price.amount, price.currency)} ${CYCLES[cycle] || cycle}`)),
      Object.keys(plan.prices || {}).length === 0 ? h('li', {}, 'Free') : null),
    h('p', {}, plan.features.length ? `With ${plan.features.join(', ')}` : 'The essentials'),
    h('p', { class: 'hint' }, Object.entries(plan.limits || {}).map(([k, v]) => `${ENTITLEMENTS[k] || k}: ${quantity(k, v)}`).join(' · ') || 'No limits'),
    !admin || plan.code === subscription.plan_in_force.code ? null : h('div', { class: 'moves' },
      Object.keys(plan.prices || {}).map((cycle) => h('button', {
        type: 'button',
        onclick: () => attempt(() => toStripe(`/v1/orgs/${org}/subscription/checkout`, {
          plan: plan.code, billing_cycle: cycle, success_url: `${here}?checkout=done`, cancel_url: here,
        }, problem)),
      }, `Choose ${plan.name}, billed ${CYCLES[cycle] || cycle}`))));
  view.show('Billing',
    orgSettingsNav(org, organization),
    h('section', { 'aria-labelledby': 'plan-heading' },
      h('h2', { id: 'plan-heading' }, 'Your plan'),
      h('p', { class: 'value' }, inForce ? inForce.name : subscription.plan_in_force.code),
      h('p', { class: 'hint' }, [
        `Subscription: ${subscribed ? subscribed.name : subscription.plan_code}, ${subscription.status.replace(/_/g, ' ')}`,
        subscription.trial_ends_at ? `trial until ${day.format(new Date(subscription.trial_ends_at))}` : null,
        subscription.current_period_end ? `period ends ${day.format(new Date(subscription.current_period_end))}` : null,
        subscription.cancel_at_period_end ? 'ends then (cancelled)' : null,
      ].filter(Boolean).join(' · ')),
      subscription.in_good_standing ? null
        : h('p', { class: 'form-error' }, 'The subscription is not in good standing: the default plan’s limits apply until it is. Your data stays readable.'),
      !admin ? null : h('button', {
        type: 'button',
        class: 'secondary',
        onclick: () => attempt(() => toStripe(`/v1/orgs/${org}/subscription/portal`, { return_url: here }, problem)),
      }, 'Payment methods and cancelling (Stripe)'),
      problem),
    h('section', { 'aria-labelledby': 'usage-heading' },
      h('h2', { id: 'usage-heading' }, 'Usage'),
      h('ul', { class: 'usage-list' }, usage.map(usageLine))),
    h('section', { 'aria-labelledby': 'plans-heading' },
      h('h2', { id: 'plans-heading' }, 'Plans'),
      admin ? null : h('p', { class: 'hint' }, 'Admins and owners change the plan.'),
      h('ul', { class: 'cards plans' }, plans.map(planCard))),
    !admin ? null : h('section', { 'aria-labelledby': 'invoices-heading' },
      h('h2', { id: 'invoices-heading' }, 'Invoices'),
      invoices.items.length === 0 ? h('p', { class: 'empty' }, 'No invoices yet.') : h('div', { class: 'scroll' }, h('table', { class: 'values invoices' },
        h('thead', {}, h('tr', {}, ['Invoice', 'Issued', 'Status', 'Due', 'Paid', 'Period'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, invoices.items.map((i) => h('tr', {},
          h('td', {}, webAddress(i.hosted_invoice_url) ? h('a', { href: webAddress(i.hosted_invoice_url), target: '_blank', rel: 'noopener noreferrer' }, i.number || 'Invoice') : (i.number || '—')),
          h('td', {}, day.format(new Date(i.issued_at))),
          h('td', {}, i.status),
          h('td', {}, money(i.amount_due, i.currency)),
          h('td', {}, i.paid_at ? `${money(i.amount_paid, i.currency)} on ${day.format(new Date(i.paid_at))}` : money(i.amount_paid, i.currency)),
          h('td', {}, i.period_start && i.period_end ? `${day.format(new Date(i.period_start))} – ${day.format(new Date(i.period_end))}` : '—'))))))));
}
