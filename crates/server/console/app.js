// The Tenantry console: a client of the API (/v1) like any other, signed in with the API's own
// session (the HttpOnly cookie, and the CSRF token its writes send). Every value is put on the
// page as text (never as HTML), and the server's Content-Security-Policy allows no inline script.

const CSRF_KEY = 'tenantry.csrf';
const ID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

// ---------------------------------------------------------------------------------------------
// The API

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Sends a request of the console's session (its writes with the CSRF token); a refusal is an
 *  ApiError with the problem the API answered. Answers the response, body unread. */
export async function send(method, path, body, accept = 'application/json') {
  const once = () => {
    const headers = { accept };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (method !== 'GET') headers['x-csrf-token'] = localStorage.getItem(CSRF_KEY) || '';
    return fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  };
  let response = await once();
  if (response.status === 403 && method !== 'GET') {
    // A session this page did not open (signed in with Google, or in another tab) has a CSRF
    // token the page does not hold yet: read it back with the cookie, and try once more.
    const refusal = readJson(await response.text()) || {};
    if (refusal.code !== 'csrf_failed') throw new ApiError(403, refusal);
    await refreshCsrf();
    response = await once();
  }
  if (!response.ok) throw new ApiError(response.status, readJson(await response.text()) || {});
  return response;
}

/** Reads the session's CSRF token back (by its cookie); without a session, an ApiError (401). */
async function refreshCsrf() {
  localStorage.setItem(CSRF_KEY, (await api('GET', '/v1/auth/csrf')).csrf_token);
}

/** A request whose answer is JSON (or nothing). */
export async function api(method, path, body) {
  return readJson(await (await send(method, path, body)).text());
}

function readJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text };
  }
}

/** `path` with `after` added to its query: the next page of a list. */
function afterCursor(path, cursor) {
  return `${path}${path.includes('?') ? '&' : '?'}after=${encodeURIComponent(cursor)}`;
}

/** Every item of a list, page after page (`path` names its page size). For lists a page must
 *  hold whole: members to name, a week of appointments, a conversation's turns. */
export async function every(path) {
  const items = [];
  let cursor = null;
  do {
    const page = await api('GET', cursor ? afterCursor(path, cursor) : path);
    items.push(...page.items);
    // A cursor that does not move on would never end.
    cursor = page.next_cursor === cursor ? null : page.next_cursor;
  } while (cursor);
  return { items };
}

/**
 * A list's first page (`first`, of `path`) as `row(item)` elements in `container`, and the
 * "Show more" button that appends each next page's: focus goes to the first item added, and the
 * button hides once there are no more. `[one, many]` name the items. Answers the button.
 */
export function paged(path, first, container, row, [one, many]) {
  container.append(...first.items.map(row));
  let cursor = first.next_cursor;
  const more = h('button', { type: 'button', class: 'secondary more', hidden: !cursor }, 'Show more');
  more.addEventListener('click', () => attempt(async () => {
    more.disabled = true;
    try {
      const next = await api('GET', afterCursor(path, cursor));
      const added = next.items.map(row);
      container.append(...added);
      cursor = next.next_cursor;
      status(`${added.length} more ${added.length === 1 ? one : many} shown.`);
      added[0]?.querySelector('a, summary, button')?.focus();
      more.hidden = !cursor;
    } finally {
      more.disabled = false;
    }
  }));
  return more;
}

/** A customer as a choice names them: their name, with their company and email to tell two
 *  of one name apart. */
function customerText(customer) {
  const other = [customer.company, customer.email].filter(Boolean).join(', ');
  return other ? `${customer.name} (${other})` : customer.name;
}

// A text two different choices read alike: it chooses neither.
const AMBIGUOUS = Symbol('ambiguous');

function remember(choices, text, value) {
  const known = choices.get(text);
  choices.set(text, known === undefined || known === value ? value : AMBIGUOUS);
}

/** A form field choosing one of the organization's customers, however many there are: the
 *  matches of what is typed come from the API's search. `current` is the customer chosen now. */
export function customerField(org, current, extra = {}) {
  return {
    name: 'customer_id',
    label: 'Customer',
    hint: 'Type a name; choose among the matches.',
    find: async (text) => {
      const query = text ? `q=${encodeURIComponent(text)}` : 'sort=name';
      const found = await api('GET', `/v1/orgs/${org}/customers?${query}&limit=10`);
      return found.items.map((c) => [c.id, customerText(c)]);
    },
    value: current ? current.id : null,
    shown: current ? customerText(current) : '',
    ...extra,
  };
}

/**
 * Customers' names by id, read when first asked for (a page names only its own rows' ones):
 * `nameOf(id)` answers an element whose text becomes the name once read.
 */
export function customerNames(org, known = []) {
  const names = new Map(known.map((c) => [c.id, Promise.resolve(c.name)]));
  return (id) => {
    if (!names.has(id)) {
      names.set(id, api('GET', `/v1/orgs/${org}/customers/${id}`).then((c) => c.name, () => 'a customer'));
    }
    const element = h('span', {}, '…');
    names.get(id).then((name) => { element.textContent = name; });
    return element;
  };
}

/** A moment, and a day, as the browser's language writes them. */
export const when = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export const day = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

// ---------------------------------------------------------------------------------------------
// The page

/** An element with attributes (`on…` ones are listeners) and children (text stays text). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

const SVG = 'http://www.w3.org/2000/svg';

let statusTimer;

/** Says `message` in the corner (and to screen readers) for a few seconds. */
export function status(message) {
  const element = document.getElementById('status');
  element.textContent = message;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { element.textContent = ''; }, 4000);
}

function show(title, ...content) {
  dropChart();
  document.title = `${title} · Tenantry`;
  const main = document.getElementById('main');
  main.replaceChildren(h('h1', { tabindex: '-1' }, title), ...content.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

export function navigate(path) {
  history.pushState(null, '', path);
  render();
}

export function link(path, text, attributes = {}) {
  return h('a', { href: path, ...attributes }, text);
}

/**
 * `text` when it is a web address (http or https) to leave the console for — Stripe's pages, Google's
 * consent, an invoice — and null otherwise: an address another service made is never followed, nor
 * linked, as a `javascript:` or `data:` one.
 */
export function webAddress(text) {
  try {
    const address = new URL(text);
    return address.protocol === 'https:' || address.protocol === 'http:' ? address.href : null;
  } catch {
    return null;
  }
}

/** Leaves the console for a web address the API answered with, or says why it does not. */
export function leaveFor(text) {
  const address = webAddress(text);
  if (address) location.assign(address);
  else status('The service answered with an address that is not a web page; nothing was opened.');
}

/**
 * A secret shown once (an API key, a feed's address): `intro`, the secret, a button to copy it
 * and one to take it off the page once kept (it goes with the page in any case: nothing stores it).
 */
export function shownOnce(intro, secret) {
  const box = h('div', { class: 'issued' });
  box.append(
    h('p', {}, intro),
    h('p', {}, h('code', { class: 'secret' }, secret)),
    h('p', { class: 'moves' },
      h('button', {
        type: 'button',
        class: 'secondary',
        onclick: () => (navigator.clipboard ? navigator.clipboard.writeText(secret) : Promise.reject()).then(
          () => status('Copied.'),
          () => status('The browser did not let the console copy it: select it and copy it.')),
      }, 'Copy'),
      h('button', {
        type: 'button',
        class: 'secondary',
        onclick: () => {
          const heading = document.querySelector('main > h1');
          box.remove();
          heading?.focus();
          status('Taken off the page; it is not shown again.');
        },
      }, 'Hide it')));
  return box;
}

export const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

export function formatValue(value, unit) {
  if (value === null || value === undefined) return 'No data yet';
  return unit ? `${number.format(value)} ${unit}` : number.format(value);
}

/** Members' names by user id (every member of the organization). */
export async function memberNames(org) {
  const members = await every(`/v1/orgs/${org}/members?limit=200`);
  return new Map(members.items.map((m) => [m.user_id, m.name || m.email]));
}

const RANK = { viewer: 0, member: 1, admin: 2, owner: 3 };

/** Whether `organization`'s caller has `role` or a higher one (the API decides; the console
 *  only leaves out what the API would refuse). */
export function can(organization, role) {
  return Boolean(organization) && RANK[organization.my_role] >= RANK[role];
}

export const READ_ONLY = 'You can read this organization; your role (viewer) does not change it. An admin can change your role.';

/** A path inside the console to go to after signing in (never another origin). */
function nextPath() {
  const next = new URLSearchParams(location.search).get('next');
  if (!next) return null;
  try {
    const url = new URL(next, location.origin);
    // A path of this console only (`/.//host` resolves here, to a path the browser reads as
    // another host's).
    return url.origin === location.origin && !url.pathname.startsWith('//') ? url.pathname + url.search : null;
  } catch {
    return null;
  }
}

/** Makes a filter form a link: submitting it goes to this page with its non-empty fields as
 *  the query, an address to bookmark and share. */
export function filtersGo(element) {
  element.addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const [key, value] of new FormData(element)) if (value) chosen.set(key, value);
    navigate(`${location.pathname}${String(chosen) ? `?${chosen}` : ''}`);
  });
  return element;
}

/** The session ended: sign in again, then come back here. The entry is replaced, not pushed:
 *  Back must not return to the page that asked for a sign-in. */
export function toSignIn() {
  localStorage.removeItem(CSRF_KEY);
  const back = location.pathname === '/' ? '' : `?next=${encodeURIComponent(location.pathname + location.search)}`;
  history.replaceState(null, '', `/sign-in${back}`);
  render();
}

/** Runs a button's action: an ended session leads to sign-in; any other failure is said. */
export async function attempt(action) {
  try {
    await action();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) toSignIn();
    else status(error instanceof ApiError ? problemText(error) : 'The service did not answer. Check the connection and try again.');
  }
}

/** Says a refusal (409 or 422) at `element` and answers true; any other failure is left to the
 *  caller (false). */
export function saidAt(element, error) {
  if (!(error instanceof ApiError) || (error.status !== 409 && error.status !== 422)) return false;
  element.textContent = problemText(error);
  return true;
}

/** What a refusal says: its named problems when it has them, else its detail. */
export function problemText(error) {
  const named = (error.problem && error.problem.errors) || [];
  return named.length ? named.map((e) => `${e.field}: ${e.message}`).join(' ') : error.message;
}

// ---------------------------------------------------------------------------------------------
// Forms: labelled fields, each with its own error line that the API's `errors` fill.

/**
 * A form of `fields` ({name, label, type, required, autocomplete, step, options, hint, value,
 * parse, clearable}) that calls `submit(values)`; a 422's errors are shown next to the fields they name,
 * anything else above the button. `type: 'textarea'` is a text area; `value` fills the field;
 * `parse(text)` turns a non-empty field's text into the value sent, or throws an Error whose
 * message is shown at the field and nothing is sent. An empty `clearable` field is sent as
 * `cleared` (default null). `find(text)` makes a field of one among many: it answers the
 * matches of what is typed as [value, text] pairs, offered as one types; `value` is then the
 * current choice and `shown` its text. `submit` gets the values and the form. `idPrefix` keeps
 * the ids of two forms on one page apart.
 */
export function form(fields, submitLabel, submit, idPrefix = 'field') {
  const inputs = {};
  const errors = {};
  // Of each `find` field: the value of each text offered so far.
  const choices = {};
  const general = h('p', { class: 'form-error', role: 'alert' });
  const rows = fields.map((field) => {
    const id = `${idPrefix}-${field.name}`;
    const errorId = `${id}-error`;
    const attributes = {
      id,
      name: field.name,
      required: field.required,
      autocomplete: field.autocomplete,
      step: field.step,
      'aria-describedby': errorId,
    };
    let input;
    let offered = null;
    if (field.options) {
      input = h('select', attributes,
        field.options.map(([value, text]) => h('option', { value, selected: value === field.value }, text)));
    } else if (field.find) {
      // One among many (a customer): typed, with matches offered as one types.
      offered = h('datalist', { id: `${id}-matches` });
      input = h('input', { type: 'text', list: offered.id, autocomplete: 'off', ...attributes });
      choices[field.name] = new Map(field.value ? [[field.shown, field.value]] : []);
      let timer;
      input.addEventListener('input', () => {
        clearTimeout(timer);
        timer = setTimeout(() => field.find(input.value.trim()).then((matches) => {
          for (const [value, text] of matches) remember(choices[field.name], text, value);
          offered.replaceChildren(...matches.map(([, text]) => h('option', { value: text })));
        }, () => {}), 200);
      });
    } else if (field.type === 'textarea') {
      input = h('textarea', { rows: 3, ...attributes });
    } else {
      input = h('input', { type: field.type || 'text', ...attributes });
    }
    if (field.value !== undefined && field.value !== null && !field.options) input.value = field.find ? field.shown : field.value;
    inputs[field.name] = input;
    errors[field.name] = h('p', { id: errorId, class: 'field-error' });
    return h('div', { class: 'field' },
      h('label', { for: id }, field.label),
      field.hint ? h('p', { class: 'hint' }, field.hint) : null,
      input,
      offered,
      errors[field.name]);
  });
  const button = h('button', { type: 'submit' }, submitLabel);
  const element = h('form', { novalidate: true }, rows, general, button);
  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    // One submission at a time: a field may wait for the API (a customer's search) before
    // anything is sent.
    if (button.disabled) return;
    button.disabled = true;
    try {
      await submitted();
    } finally {
      button.disabled = false;
    }
  });
  const submitted = async () => {
    general.textContent = '';
    for (const name of Object.keys(errors)) {
      errors[name].textContent = '';
      inputs[name].removeAttribute('aria-invalid');
    }
    const values = {};
    let local = false;
    for (const field of fields) {
      // A password is taken as typed; other text without the spaces around it.
      const raw = field.type === 'password' ? inputs[field.name].value : inputs[field.name].value.trim();
      if (field.type === 'number' && (inputs[field.name].validity.badInput || (raw === '' && field.required))) {
        // A browser gives '' for what it cannot read as a number: say so here, send nothing.
        errors[field.name].textContent = 'Enter a number.';
        inputs[field.name].setAttribute('aria-invalid', 'true');
        local = true;
        continue;
      }
      // An empty optional field is left out (or cleared, when the form changes a record: sent
      // as null); an empty required one is sent, for the API to say what it needs.
      if (raw === '' && !field.required) {
        if (field.clearable) values[field.name] = 'cleared' in field ? field.cleared : null;
        continue;
      }
      if (field.find) {
        // What was offered, or else the one match the text names exactly.
        let value = choices[field.name].get(raw);
        if (value === undefined) {
          const exact = await field.find(raw).then(
            (matches) => matches.filter(([, text]) => text.toLowerCase() === raw.toLowerCase()), () => []);
          if (exact.length === 1) [[value]] = exact;
          else if (exact.length > 1) value = AMBIGUOUS;
        }
        if (value === AMBIGUOUS) {
          errors[field.name].textContent = 'More than one reads exactly so: tell them apart first (an email or company of their own).';
          inputs[field.name].setAttribute('aria-invalid', 'true');
          local = true;
        } else if (value === undefined) {
          errors[field.name].textContent = 'Choose one of the matches offered as you type.';
          inputs[field.name].setAttribute('aria-invalid', 'true');
          local = true;
        } else {
          values[field.name] = value;
        }
        continue;
      }
      if (field.parse && raw !== '') {
        try {
          values[field.name] = field.parse(raw);
        } catch (problem) {
          errors[field.name].textContent = problem.message;
          inputs[field.name].setAttribute('aria-invalid', 'true');
          local = true;
        }
        continue;
      }
      values[field.name] = field.type === 'number' ? Number(raw) : raw;
    }
    if (local) return;
    try {
      await submit(values, element);
    } catch (error) {
      if (!(error instanceof ApiError)) {
        general.textContent = 'The service did not answer. Check the connection and try again.';
        return;
      }
      if (error.status === 401 && location.pathname !== '/sign-in') {
        toSignIn();
        return;
      }
      const named = (error.problem.errors || []).filter((e) => errors[e.field]);
      for (const e of named) {
        errors[e.field].textContent = e.message;
        inputs[e.field].setAttribute('aria-invalid', 'true');
      }
      // Errors of fields this form does not show (a required custom field) are listed above
      // the button.
      const others = (error.problem.errors || []).filter((e) => !errors[e.field]);
      general.textContent = others.length > 0
        ? others.map((e) => `${e.field}: ${e.message}`).join(' ')
        : (named.length > 0 ? '' : error.message);
      if (named.length > 0) inputs[named[0].field].focus();
    }
  };
  return element;
}

// ---------------------------------------------------------------------------------------------
// Signing in and out

function signedIn(answer) {
  localStorage.setItem(CSRF_KEY, answer.session.csrf_token);
}

// Where to go once back from Google (the provider's redirect brings the browser to `/`).
const NEXT_KEY = 'tenantry.next';

async function signInPage(view) {
  // Without an answer, the password form alone.
  const methods = await api('GET', '/v1/auth/methods').catch(() => ({ oidc: null }));
  view.plainBar();
  const failed = new URLSearchParams(location.search).get('failed') === 'oidc';
  view.show('Sign in',
    failed ? h('p', { class: 'form-error', role: 'alert' }, 'Signing in with Google did not complete. Try again, or sign in with your password.') : null,
    methods.oidc ? h('p', {}, h('a', {
      href: '/v1/auth/oidc/start',
      class: 'button',
      onclick: () => {
        const next = nextPath();
        if (next) sessionStorage.setItem(NEXT_KEY, JSON.stringify({ next, at: Date.now() }));
        else sessionStorage.removeItem(NEXT_KEY);
      },
    }, `Sign in with ${methods.oidc === 'google' ? 'Google' : methods.oidc}`)) : null,
    form([
      { name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'username' },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password' },
    ], 'Sign in', async (values) => {
      signedIn(await api('POST', '/v1/auth/signin', values));
      navigate(nextPath() || '/');
    }),
    h('p', {}, 'New here? ', link(`/sign-up${location.search}`, 'Create an account')));
}

function signUpPage(view) {
  view.plainBar();
  view.show('Create an account',
    form([
      { name: 'name', label: 'Your name', autocomplete: 'name' },
      { name: 'email', label: 'Email', type: 'email', required: true, autocomplete: 'username' },
      { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'new-password', hint: 'At least 8 characters.' },
      { name: 'organization_name', label: 'Organization', autocomplete: 'organization', hint: 'Your first organization; you can create more later.' },
    ], 'Create account', async (values) => {
      const answer = await api('POST', '/v1/auth/signup', values);
      signedIn(answer);
      navigate(nextPath() || `/orgs/${answer.organization.id}`);
    }),
    h('p', {}, 'Have an account? ', link(`/sign-in${location.search}`, 'Sign in')));
}

async function signOut() {
  try {
    await api('POST', '/v1/auth/signout');
  } finally {
    localStorage.removeItem(CSRF_KEY);
    navigate('/sign-in');
  }
}

// ---------------------------------------------------------------------------------------------
// The bar: where I am, my organizations, signing out

function brand() {
  return link('/', 'Tenantry', { class: 'brand' });
}

async function bar(org, current) {
  // The organization itself (with the caller's role), whichever page of the list it is on.
  const [me, organization, orgs] = await Promise.all([
    api('GET', '/v1/me'), api('GET', `/v1/orgs/${org}`), every('/v1/orgs?limit=200')]);
  if (!current()) return organization;
  const choices = orgs.items.some((o) => o.id === org) ? orgs.items : [organization, ...orgs.items];
  const switcher = h('select', { id: 'org-switcher', 'aria-label': 'Organization' },
    choices.map((o) => h('option', { value: o.id, selected: o.id === org }, o.name)));
  // A button, not the select's change: arrow keys on a closed select change it at each press.
  const go = h('form', { class: 'switch' }, switcher, h('button', { type: 'submit' }, 'Open'));
  go.addEventListener('submit', (event) => {
    event.preventDefault();
    if (switcher.value !== org) navigate(`/orgs/${switcher.value}`);
  });
  const here = location.pathname;
  // The section's own page is the current page; a page inside a section marks it too.
  const section = (path, text) => link(path, text, {
    'aria-current': here === path ? 'page' : (path !== `/orgs/${org}` && here.startsWith(`${path}/`) ? 'true' : null),
  });
  document.getElementById('bar').replaceChildren(
    brand(),
    h('nav', { 'aria-label': 'Sections' },
      section(`/orgs/${org}`, 'Dashboard'),
      section(`/orgs/${org}/tools`, 'Tools'),
      section(`/orgs/${org}/customers`, 'Customers'),
      section(`/orgs/${org}/projects`, 'Projects'),
      section(`/orgs/${org}/calendar`, 'Calendar'),
      section(`/orgs/${org}/content`, 'Content'),
      section(`/orgs/${org}/assistant`, 'Assistant'),
      section(`/orgs/${org}/members`, 'Members')),
    go,
    link('/me', me.user.name || me.user.email, { class: 'me', 'aria-current': here === '/me' ? 'page' : null }),
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
  return organization;
}

// ---------------------------------------------------------------------------------------------
// Pages of an organization

async function homePage(view) {
  // Back from Google: on to the page that asked for a sign-in (a path of this console only).
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(NEXT_KEY));
  } catch {
    saved = null;
  }
  sessionStorage.removeItem(NEXT_KEY);
  // Only a sign-in of the last ten minutes (one given up leaves it behind).
  const back = saved && Date.now() - saved.at < 600000 && new URL(saved.next, location.origin);
  if (back && back.origin === location.origin && !back.pathname.startsWith('//') && back.pathname !== '/') {
    history.replaceState(null, '', back.pathname + back.search);
    return render();
  }
  const orgs = await api('GET', '/v1/orgs?limit=1');
  if (orgs.items.length > 0) {
    history.replaceState(null, '', `/orgs/${orgs.items[0].id}`);
    return render();
  }
  view.plainBar();
  view.show('No organization yet',
    h('p', {}, 'Create one to start: it holds your KPIs, goals and everything else.'),
    form([{ name: 'name', label: 'Organization name', required: true }], 'Create organization',
      async (values) => {
        const created = await api('POST', '/v1/orgs', values);
        navigate(`/orgs/${created.id}`);
      }));
}

/** A line of the last values, as a small SVG (no library needed for a sparkline). */
function sparkline(values, label) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 100 30');
  svg.setAttribute('class', 'sparkline');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  if (values.length < 2) return svg;
  const low = Math.min(...values);
  const span = Math.max(...values) - low || 1;
  const points = values.map((v, i) =>
    `${(i / (values.length - 1)) * 100},${28 - ((v - low) / span) * 26}`);
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('points', points.join(' '));
  svg.append(line);
  return svg;
}

function kpiCard(org, kpi) {
  const change = kpi.change_30d;
  let changeText = 'No change to compare yet';
  let changeClass = 'change';
  if (change && change.absolute !== null && change.absolute !== undefined) {
    const sign = change.absolute > 0 ? '+' : '';
    const percent = change.percent === null || change.percent === undefined
      ? '' : ` (${sign}${number.format(change.percent)} %)`;
    changeText = `${sign}${number.format(change.absolute)}${percent} in 30 days`;
    if (change.improving === true) changeClass += ' better';
    if (change.improving === false) changeClass += ' worse';
  }
  const progress = kpi.progress === null || kpi.progress === undefined ? null : kpi.progress;
  return h('li', { class: 'card' },
    h('h2', {}, link(`/orgs/${org}/kpis/${kpi.id}`, kpi.name)),
    h('p', { class: 'value' }, formatValue(kpi.current_value, kpi.unit)),
    kpi.target_value === null || kpi.target_value === undefined
      ? h('p', { class: 'hint' }, 'No target')
      : h('p', { class: 'hint' }, `Target ${formatValue(kpi.target_value, kpi.unit)}`),
    progress === null ? null : h('progress', {
      max: 100, value: progress, 'aria-label': `${kpi.name}: ${number.format(progress)} % of target`,
    }),
    h('p', { class: changeClass }, changeText),
    sparkline(kpi.sparkline || [], `${kpi.name}, last ${(kpi.sparkline || []).length} values`));
}

export function progressBar(progress, label) {
  if (progress === null || progress === undefined) return h('p', { class: 'hint' }, 'No progress to show yet');
  return h('progress', { max: 100, value: progress, 'aria-label': `${label}: ${number.format(progress)} %` });
}

function goalCard(org, goal) {
  const linked = goal.kpis.filter((k) => !k.deleted).length;
  return h('li', { class: 'card' },
    h('h2', {}, link(`/orgs/${org}/goals/${goal.id}`, goal.title)),
    h('p', { class: 'value' }, goal.progress === null || goal.progress === undefined
      ? '—' : `${number.format(goal.progress)} %`),
    progressBar(goal.progress, goal.title),
    h('p', { class: 'hint' }, [
      goal.status === 'completed' ? 'Completed' : null,
      goal.target_date ? `Due ${goal.target_date}` : 'No due date',
      linked === 1 ? '1 KPI' : `${linked} KPIs`,
    ].filter(Boolean).join(' · ')));
}

async function dashboardPage(view, org) {
  const [organization, dashboard, goals] = await Promise.all([
    view.bar(org), api('GET', `/v1/orgs/${org}/dashboard`), every(`/v1/orgs/${org}/goals?limit=200`)]);
  const cards = dashboard.kpis.length === 0
    ? h('p', { class: 'empty' }, 'No KPIs yet. Add the first one below: a name is enough, a target shows progress.')
    : h('ul', { class: 'cards kpis' }, dashboard.kpis.map((kpi) => kpiCard(org, kpi)));
  const goalCards = goals.items.length === 0
    ? h('p', { class: 'empty' }, 'No goals yet. A goal gathers KPIs, each with a weight, into one progress figure.')
    : h('ul', { class: 'cards goals' }, goals.items.map((goal) => goalCard(org, goal)));
  view.show(organization ? organization.name : 'Dashboard',
    h('section', { 'aria-labelledby': 'kpis-heading' },
      h('h2', { id: 'kpis-heading' }, 'KPIs'),
      cards),
    can(organization, 'member') ? null : h('p', { class: 'hint' }, READ_ONLY),
    !can(organization, 'member') ? null : h('section', { 'aria-labelledby': 'new-kpi-heading' },
      h('h2', { id: 'new-kpi-heading' }, 'New KPI'),
      form([
        { name: 'name', label: 'Name', required: true },
        { name: 'unit', label: 'Unit', hint: 'For example €, users or %.' },
        { name: 'target_value', label: 'Target', type: 'number', step: 'any' },
        { name: 'initial_value', label: 'Current value', type: 'number', step: 'any' },
        { name: 'direction', label: 'Better when', options: [['higher_is_better', 'higher'], ['lower_is_better', 'lower']] },
      ], 'Add KPI', async (values) => {
        const created = await api('POST', `/v1/orgs/${org}/kpis`, values);
        status(`${created.name} added.`);
        render();
      })),
    h('section', { 'aria-labelledby': 'goals-heading' },
      h('h2', { id: 'goals-heading' }, 'Goals'),
      goalCards,
      !can(organization, 'member') ? null : h('details', { class: 'new' }, h('summary', {}, 'New goal'),
        form([
          { name: 'title', label: 'Goal', required: true },
          { name: 'target_date', label: 'Due', type: 'date' },
        ], 'Add goal', async (values) => {
          const created = await api('POST', `/v1/orgs/${org}/goals`, values);
          navigate(`/orgs/${org}/goals/${created.id}`);
        }))));
}

// ---------------------------------------------------------------------------------------------
// A KPI: its series as a chart (uPlot, loaded with the first chart), recording a value, CSV in
// and out.

let uPlotLoaded;
/** The chart on the page, destroyed before another is drawn or the page changes (uPlot keeps
 *  every live chart in a set it updates on resize). */
let liveChart = null;

function dropChart() {
  if (liveChart) liveChart.destroy();
  liveChart = null;
}

/** uPlot and its style sheet, fetched once, from this build's assets. */
function loadUPlot() {
  if (!uPlotLoaded) {
    document.head.append(h('link', { rel: 'stylesheet', href: new URL('./uplot.css', import.meta.url).href }));
    uPlotLoaded = import(new URL('./uplot.js', import.meta.url).href).then((m) => m.default);
  }
  return uPlotLoaded;
}

const BUCKETS = {
  day: { label: 'Days', days: 90 },
  week: { label: 'Weeks', days: 365 },
  month: { label: 'Months', days: 3 * 365 },
};

function myTimeZone(me) {
  const profile = me && me.profile && me.profile.timezone;
  return profile && profile !== 'UTC' ? profile : Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

async function drawSeries(box, table, org, kpi, bucket, timeZone) {
  const since = new Date(Date.now() - BUCKETS[bucket].days * 86400000).toISOString();
  const query = new URLSearchParams({ bucket, timezone: timeZone, since });
  const series = await api('GET', `/v1/orgs/${org}/kpis/${kpi.id}/series?${query}`);
  const dates = new Intl.DateTimeFormat(undefined, {
    timeZone, year: 'numeric', month: 'short', day: bucket === 'month' ? undefined : 'numeric',
  });
  table.replaceChildren(
    h('caption', {}, `${kpi.name} by ${bucket} (${timeZone})`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'From'), h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col' }, 'Points'))),
    h('tbody', {}, series.map((p) => h('tr', {},
      h('td', {}, dates.format(new Date(p.start))),
      h('td', {}, formatValue(p.value, kpi.unit)),
      h('td', {}, number.format(p.points))))));
  if (series.length === 0) {
    box.replaceChildren(h('p', { class: 'empty' }, 'No values in this range yet. Record one below, or import a CSV file.'));
    return;
  }
  const uPlot = await loadUPlot();
  dropChart();
  box.replaceChildren();
  const padding = parseFloat(getComputedStyle(box).paddingLeft) + parseFloat(getComputedStyle(box).paddingRight);
  const width = Math.max(260, (box.clientWidth || 600) - padding);
  // uPlot draws on a canvas; the table above says the same in words.
  const chart = new uPlot({
    width,
    height: 260,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), timeZone),
    scales: { x: { time: true } },
    series: [{}, { label: kpi.name, stroke: '#1f5fbf', width: 2, points: { show: series.length < 60 } }],
    axes: [{}, { values: (u, ticks) => ticks.map((t) => number.format(t)) }],
  }, [series.map((p) => Date.parse(p.start) / 1000), series.map((p) => p.value)], box);
  liveChart = chart;
  // The canvas is a picture of the table below; the legend stays reachable.
  const canvas = chart.root.querySelector('canvas');
  if (canvas) {
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-label', `Chart of ${kpi.name} by ${bucket}; the table below lists the values`);
  }
}

/** A CSV file's header and its other non-blank records, each with the line of the file it
 *  starts on (so that errors name the file's own lines); a quoted cell may hold line breaks
 *  (RFC 4180), so records are split outside quotes only. Null for an empty file. */
function csvLines(text) {
  const records = [];
  let start = 0;
  let line = 1;
  let first = 1;
  let quoted = false;
  const body = text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  for (let i = 0; i <= body.length; i += 1) {
    const c = body[i];
    if (c === '"') quoted = !quoted;
    if (i === body.length || (c === '\n' && !quoted)) {
      const record = body.slice(start, i);
      if (record.trim() !== '') records.push([record, first]);
      start = i + 1;
      first = line + 1;
    }
    if (c === '\n') line += 1;
  }
  if (records.length === 0) return null;
  const [[header], ...rows] = records;
  return { header, rows };
}

/**
 * Sends a CSV file's records to `url` (all rows or none are taken), `rewrite` ({header, row})
 * turning each into the one sent; reports `done(answer)` or each bad row by its line in the
 * file. True when the rows were taken.
 */
/** POSTs a CSV text with the session's CSRF token, telling `sent(share)` how much has gone up
 *  (XMLHttpRequest: fetch says nothing of an upload's progress). Answers {status, answer}. */
function upload(url, body, sent) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open('POST', url);
    request.setRequestHeader('content-type', 'text/csv');
    request.setRequestHeader('accept', 'application/json');
    request.setRequestHeader('x-csrf-token', localStorage.getItem(CSRF_KEY) || '');
    request.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) sent(event.loaded / event.total);
    });
    request.upload.addEventListener('load', () => sent(1));
    request.addEventListener('load', () => resolve({ status: request.status, answer: readJson(request.responseText) || {} }));
    for (const failure of ['error', 'abort', 'timeout']) request.addEventListener(failure, reject);
    request.send(body);
  });
}

export async function importCsv(url, file, report, done, rewrite = { header: (r) => r, row: (r) => r }) {
  const failed = (message) => {
    report.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, message));
    return false;
  };
  // How much of the file has gone up, then (its rows being checked and recorded) no measure.
  const progress = h('progress', { max: 1, value: 0, 'aria-label': `Sending ${file.name}` });
  const said = h('p', {}, `Sending ${file.name}…`);
  report.replaceChildren(said, progress);
  let csv;
  let response;
  try {
    csv = csvLines(await file.text());
    if (!csv) return failed('The file is empty.');
    const body = [rewrite.header(csv.header), ...csv.rows.map(([row]) => rewrite.row(row))].join('\n') + '\n';
    const sent = (share) => {
      progress.value = share;
      if (share >= 1) {
        said.textContent = `Recording the rows of ${file.name}…`;
        progress.removeAttribute('value');
        progress.setAttribute('aria-label', `Recording ${file.name}`);
      }
    };
    response = await upload(url, body, sent);
    if (response.status === 403 && response.answer.code === 'csrf_failed' && await refreshCsrf()) {
      response = await upload(url, body, sent);
    }
  } catch {
    return failed('The file could not be read or sent. Check the connection and try again.');
  }
  if (response.status === 401) {
    toSignIn();
    return false;
  }
  const { answer } = response;
  if (response.status >= 200 && response.status < 300) {
    const message = done(answer);
    report.replaceChildren(h('p', {}, message));
    status(message);
    return true;
  }
  // Bad rows are named rows[i] (0 is the first after the header), maybe with a field after.
  const rowErrors = (answer.errors || []).map((e) => {
    const match = /^rows\[(\d+)\]\.?/.exec(e.field || '');
    if (!match) return h('li', {}, `${e.field || 'File'}: ${e.message}`);
    const line = csv.rows[Number(match[1])]?.[1] ?? Number(match[1]) + 2;
    const field = (e.field || '').slice(match[0].length);
    return h('li', {}, `Line ${line}${field ? ` (${field})` : ''}: ${e.message}`);
  });
  report.replaceChildren(
    h('p', { class: 'form-error', role: 'alert' }, `Nothing was imported: ${answer.detail || `HTTP ${response.status}`}`),
    rowErrors.length ? h('ul', { class: 'row-errors' }, rowErrors) : null);
  return false;
}

async function kpiPage(view, org, id) {
  const [organization, me, kpi] = await Promise.all([
    view.bar(org), api('GET', '/v1/me'), api('GET', `/v1/orgs/${org}/kpis/${id}`)]);
  const writer = can(organization, 'member');
  const timeZone = myTimeZone(me);
  const chartBox = h('div', { class: 'chart' });
  const table = h('table', { class: 'values' });
  const bucketSelect = h('select', { id: 'bucket' },
    Object.entries(BUCKETS).map(([value, b]) => h('option', { value }, b.label)));
  const redraw = () => drawSeries(chartBox, table, org, kpi, bucketSelect.value, timeZone)
    .catch((error) => chartBox.replaceChildren(h('p', { role: 'alert' }, error.message)));
  bucketSelect.addEventListener('change', redraw);
  const report = h('div', { class: 'import-report' });
  const file = h('input', { type: 'file', id: 'csv-file', accept: '.csv,text/csv' });
  file.addEventListener('change', async () => {
    if (!file.files[0]) return;
    // Bulk ingest's format: this KPI's id in a first column (as `points.csv` plus `kpi_id`).
    const imported = await importCsv(`/v1/orgs/${org}/kpi-points`, file.files[0], report,
      (answer) => `${answer.rows} rows read, ${answer.written} values recorded.`,
      { header: (line) => `kpi_id,${line}`, row: (line) => `${id},${line}` });
    if (imported) redraw();
    file.value = '';
  });
  view.show(kpi.name,
    h('p', { class: 'value' }, formatValue(kpi.current_value, kpi.unit)),
    kpi.target_value === null || kpi.target_value === undefined ? null
      : h('p', { class: 'hint' }, `Target ${formatValue(kpi.target_value, kpi.unit)}`
        + (kpi.progress === null || kpi.progress === undefined ? '' : `, ${number.format(kpi.progress)} % of the way`)),
    kpi.description ? h('p', {}, kpi.description) : null,
    h('section', { 'aria-labelledby': 'series-heading' },
      h('h2', { id: 'series-heading' }, 'History'),
      h('div', { class: 'field inline' }, h('label', { for: 'bucket' }, 'By'), bucketSelect),
      chartBox,
      h('details', {}, h('summary', {}, 'Values as a table'), table)),
    writer ? null : h('p', { class: 'hint' }, READ_ONLY),
    !writer ? null : h('section', { 'aria-labelledby': 'record-heading' },
      h('h2', { id: 'record-heading' }, 'Record a value'),
      form([
        { name: 'value', label: 'Value', type: 'number', step: 'any', required: true },
        { name: 'observed_at', label: 'Observed at', type: 'datetime-local', hint: 'Empty: now.' },
      ], 'Record', async (values) => {
        const point = { value: values.value };
        if (values.observed_at) point.observed_at = new Date(values.observed_at).toISOString();
        try {
          await api('POST', `/v1/orgs/${org}/kpis/${id}/points`, [point]);
        } catch (error) {
          // The API names the point's fields points[0].value, points[0].observed_at.
          if (error instanceof ApiError && error.problem.errors) {
            for (const e of error.problem.errors) e.field = e.field.replace(/^points\[0\]\./, '');
          }
          throw error;
        }
        status('Value recorded.');
        render();
      })),
    h('section', { 'aria-labelledby': 'csv-heading' },
      h('h2', { id: 'csv-heading' }, 'CSV'),
      !writer ? null : h('div', { class: 'field' },
        h('label', { for: 'csv-file' }, 'Import values from a CSV file'),
        h('p', { class: 'hint' }, 'Columns observed_at (RFC 3339, e.g. 2026-11-30T09:00:00Z) and value, with a header line; source is optional. All rows or none are recorded.'),
        file),
      report,
      h('p', {}, h('a', { href: `/v1/orgs/${org}/kpis/${id}/points.csv`, download: 'points.csv' }, 'Download every value as CSV'))));
  await redraw();
}

// ---------------------------------------------------------------------------------------------
// A goal: its KPIs with their weights, linking and unlinking, completing.

async function goalPage(view, org, id) {
  const [organization, goal, dashboard] = await Promise.all([
    view.bar(org), api('GET', `/v1/orgs/${org}/goals/${id}`), api('GET', `/v1/orgs/${org}/dashboard`)]);
  const writer = can(organization, 'member');
  const linked = new Set(goal.kpis.map((k) => k.kpi_id));
  const unlinked = dashboard.kpis.filter((k) => !linked.has(k.id));
  const rows = goal.kpis.map((k) => h('tr', {},
    h('td', {}, k.deleted ? `${k.name} (deleted)` : link(`/orgs/${org}/kpis/${k.kpi_id}`, k.name)),
    h('td', {}, number.format(k.weight)),
    h('td', {}, k.progress === null || k.progress === undefined ? '—' : `${number.format(k.progress)} %`),
    !writer ? null : h('td', {}, h('button', {
      type: 'button',
      class: 'link',
      'aria-label': `Unlink ${k.name}`,
      onclick: () => attempt(async () => {
        await api('DELETE', `/v1/orgs/${org}/goals/${id}/kpis/${k.kpi_id}`);
        status(`${k.name} unlinked.`);
        render();
      }),
    }, 'Unlink'))));
  const complete = goal.status === 'completed';
  view.show(goal.title,
    h('p', { class: 'value' }, goal.progress === null || goal.progress === undefined ? 'No progress yet' : `${number.format(goal.progress)} %`),
    progressBar(goal.progress, goal.title),
    h('p', { class: 'hint' }, `${complete ? 'Completed' : 'Active'}${goal.target_date ? ` · due ${goal.target_date}` : ''}`),
    goal.description ? h('p', {}, goal.description) : null,
    !writer ? h('p', { class: 'hint' }, READ_ONLY) : h('button', {
      type: 'button',
      onclick: () => attempt(async () => {
        await api('PATCH', `/v1/orgs/${org}/goals/${id}`, { status: complete ? 'active' : 'completed' });
        status(complete ? 'Goal reopened.' : 'Goal completed.');
        render();
      }),
    }, complete ? 'Reopen goal' : 'Mark as completed'),
    h('section', { 'aria-labelledby': 'goal-kpis-heading' },
      h('h2', { id: 'goal-kpis-heading' }, 'KPIs of this goal'),
      rows.length === 0
        ? h('p', { class: 'empty' }, 'No KPIs linked yet: link one below. Its weight says how much it counts.')
        : h('table', { class: 'values' },
          h('thead', {}, h('tr', {}, ['KPI', 'Weight', 'Progress', writer ? 'Link' : null]
            .filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, rows))),
    unlinked.length === 0 || !writer ? null : h('section', { 'aria-labelledby': 'link-heading' },
      h('h2', { id: 'link-heading' }, 'Link a KPI'),
      form([
        { name: 'kpi', label: 'KPI', options: unlinked.map((k) => [k.id, k.name]) },
        { name: 'weight', label: 'Weight', type: 'number', step: 'any', hint: 'Default 1.' },
      ], 'Link', async (values) => {
        const body = values.weight === undefined ? {} : { weight: values.weight };
        await api('PUT', `/v1/orgs/${org}/goals/${id}/kpis/${values.kpi}`, body);
        status('KPI linked.');
        render();
      })));
}

// ---------------------------------------------------------------------------------------------
// Members and invitations

/** The organization's pages beyond its members, linked from each of them. */
export function orgSettingsNav(org, organization) {
  const here = location.pathname;
  const item = (path, words) => link(path, words, { 'aria-current': here === path ? 'page' : null });
  return h('nav', { class: 'filter-links', 'aria-label': 'Organization' },
    item(`/orgs/${org}/members`, 'Members'),
    item(`/orgs/${org}/teams`, 'Teams'),
    can(organization, 'admin') ? item(`/orgs/${org}/api-keys`, 'API keys') : null,
    can(organization, 'admin') ? item(`/orgs/${org}/activity`, 'Activity') : null,
    item(`/orgs/${org}/billing`, 'Billing'),
    item(`/orgs/${org}/integrations`, 'Integrations'));
}

const ROLES = [['viewer', 'Viewer'], ['member', 'Member'], ['admin', 'Admin'], ['owner', 'Owner']];

/** The invitation just issued, shown once on the members page with its link. */
let justInvited = null;

async function membersPage(view, org) {
  const organization = await view.bar(org);
  const admin = can(organization, 'admin');
  const [me, members, invitations] = await Promise.all([
    api('GET', '/v1/me'),
    every(`/v1/orgs/${org}/members?limit=200`),
    admin ? every(`/v1/orgs/${org}/invitations?limit=200`) : Promise.resolve({ items: [] }),
  ]);
  const roleCell = (member) => {
    // Admins change roles below owner; owners change any (the API says no where it must).
    if (!admin || member.user_id === me.user.id || (member.role === 'owner' && !can(organization, 'owner'))) {
      return h('td', {}, member.role);
    }
    const who = member.name || member.email;
    const select = h('select', { 'aria-label': `Role of ${who}` },
      ROLES.filter(([value]) => value !== 'owner' || can(organization, 'owner'))
        .map(([value, text]) => h('option', { value, selected: value === member.role }, text)));
    // Changed by its button: arrow keys on a closed select would change it at each press.
    const change = h('form', { class: 'inline-form' }, select,
      h('button', { type: 'submit', class: 'small', 'aria-label': `Change the role of ${who}` }, 'Change'));
    change.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (select.value === member.role) return;
      try {
        await api('PATCH', `/v1/orgs/${org}/members/${member.user_id}`, { role: select.value });
        status(`${who} is now ${select.value}.`);
      } catch (error) {
        status(error.message);
      }
      render();
    });
    return h('td', {}, change);
  };
  const rows = members.items.map((member) => h('tr', {},
    h('td', {}, member.name || '—'),
    h('td', {}, member.email),
    roleCell(member),
    !admin ? null : h('td', {}, member.user_id === me.user.id ? '' : h('button', {
      type: 'button',
      class: 'link',
      'aria-label': `Remove ${member.name || member.email}`,
      onclick: () => attempt(async () => {
        if (!window.confirm(`Remove ${member.name || member.email} from ${organization.name}?`)) return;
        await api('DELETE', `/v1/orgs/${org}/members/${member.user_id}`);
        status(`${member.name || member.email} removed.`);
        render();
      }),
    }, 'Remove'))));
  const open = invitations.items.filter((i) => !i.accepted_at && !i.revoked_at);
  const issued = h('div', { class: 'issued', role: 'status' });
  if (justInvited) {
    issued.replaceChildren(
      h('p', {}, `Invitation for ${justInvited.invitation.email} sent. Its link works once, for that address:`),
      h('p', {}, h('a', { href: justInvited.accept_url, class: 'invite-link' }, justInvited.accept_url)));
    justInvited = null;
  }
  view.show('Members',
    orgSettingsNav(org, organization),
    can(organization, 'owner') ? h('p', {}, h('a', { href: `/v1/orgs/${org}/export`, download: `${organization.slug}.tar` },
      'Download the organization’s data (tar)')) : null,
    // Scrolls inside its box at a phone's width, reachable from the keyboard as a region.
    h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': 'Members' }, h('table', { class: 'values members' },
      h('thead', {}, h('tr', {}, ['Name', 'Email', 'Role', admin ? 'Membership' : null]
        .filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows))),
    !admin ? h('p', { class: 'hint' }, 'Admins invite people and change roles.') : h('section', { 'aria-labelledby': 'invite-heading' },
      h('h2', { id: 'invite-heading' }, 'Invite someone'),
      form([
        { name: 'email', label: 'Their email', type: 'email', required: true },
        { name: 'role', label: 'Role', options: ROLES.filter(([value]) => value !== 'owner') },
      ], 'Invite', async (values) => {
        justInvited = await api('POST', `/v1/orgs/${org}/invitations`, values);
        status(`Invitation for ${justInvited.invitation.email} sent.`);
        render();
      }),
      issued,
      h('h2', {}, 'Open invitations'),
      open.length === 0 ? h('p', { class: 'empty' }, 'None open.') : h('ul', {}, open.map((i) => h('li', {},
        `${i.email} as ${i.role}, until ${new Date(i.expires_at).toLocaleDateString()} `,
        h('button', {
          type: 'button',
          class: 'link',
          'aria-label': `Revoke the invitation of ${i.email}`,
          onclick: () => attempt(async () => {
            await api('DELETE', `/v1/orgs/${org}/invitations/${i.id}`);
            status(`Invitation of ${i.email} revoked.`);
            render();
          }),
        }, 'Revoke'))))));
}

async function acceptPage(view) {
  const token = new URLSearchParams(location.search).get('token') || '';
  view.plainBar();
  let me = null;
  try {
    me = await api('GET', '/v1/me');
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
  }
  const here = encodeURIComponent(location.pathname + location.search);
  if (!me) {
    view.show('You are invited',
      h('p', {}, 'Sign in, or create an account with the address the invitation was sent to, to join the organization.'),
      h('p', {}, link(`/sign-in?next=${here}`, 'Sign in'), ' · ', link(`/sign-up?next=${here}`, 'Create an account')));
    return;
  }
  const problem = h('p', { class: 'form-error', role: 'alert' });
  view.show('You are invited',
    h('p', {}, `Signed in as ${me.user.email}.`),
    h('button', {
      type: 'button',
      onclick: async () => {
        try {
          const accepted = await api('POST', '/v1/invitations/accept', { token });
          status(`Welcome to ${accepted.organization.name}.`);
          navigate(`/orgs/${accepted.organization.id}`);
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          problem.textContent = error.message;
        }
      },
    }, 'Accept invitation'),
    problem);
}

// ---------------------------------------------------------------------------------------------
// Routing: every page has its own URL, so links can be bookmarked and shared.

/** A page whose code is in another module of this build, fetched when first shown. A page
 *  loaded before a new version was deployed finds its build's modules gone: it loads the
 *  current page once. */
function lazy(file, name) {
  return async (...args) => {
    let module;
    try {
      module = await import(new URL(`./${file}`, import.meta.url).href);
    } catch (error) {
      if (sessionStorage.getItem('tenantry.reloaded')) throw error;
      sessionStorage.setItem('tenantry.reloaded', '1');
      location.reload();
      return new Promise(() => {});
    }
    sessionStorage.removeItem('tenantry.reloaded');
    return module[name](...args);
  };
}

const TOOL = '[a-z][a-z0-9_]*';

const ROUTES = [
  [/^\/sign-in$/, signInPage, false],
  [/^\/sign-up$/, signUpPage, false],
  [/^\/$/, homePage, true],
  [new RegExp(`^/orgs/(${ID})$`), dashboardPage, true],
  [new RegExp(`^/orgs/(${ID})/kpis/(${ID})$`), kpiPage, true],
  [new RegExp(`^/orgs/(${ID})/goals/(${ID})$`), goalPage, true],
  [new RegExp(`^/orgs/(${ID})/members$`), membersPage, true],
  [new RegExp(`^/orgs/(${ID})/tools$`), lazy('tools.js', 'toolsPage'), true],
  [new RegExp(`^/orgs/(${ID})/tools/(${TOOL})$`), lazy('tools.js', 'toolPage'), true],
  [new RegExp(`^/orgs/(${ID})/tools/(${TOOL})/entries/(${ID})$`), lazy('tools.js', 'entryPage'), true],
  [new RegExp(`^/orgs/(${ID})/tool-grants$`), lazy('tools.js', 'grantsPage'), true],
  [new RegExp(`^/orgs/(${ID})/tools/(${TOOL})/archive$`), lazy('tools.js', 'archivePage'), true],
  [new RegExp(`^/orgs/(${ID})/tool-report$`), lazy('tools.js', 'reportPage'), true],
  [new RegExp(`^/orgs/(${ID})/customers$`), lazy('crm.js', 'customersPage'), true],
  [new RegExp(`^/orgs/(${ID})/customers/(${ID})$`), lazy('crm.js', 'customerPage'), true],
  [new RegExp(`^/orgs/(${ID})/projects$`), lazy('crm.js', 'projectsPage'), true],
  [new RegExp(`^/orgs/(${ID})/projects/(${ID})$`), lazy('crm.js', 'projectPage'), true],
  [new RegExp(`^/orgs/(${ID})/calendar$`), lazy('calendar.js', 'calendarPage'), true],
  [new RegExp(`^/orgs/(${ID})/content$`), lazy('content.js', 'contentListPage'), true],
  [new RegExp(`^/orgs/(${ID})/content/(${ID})$`), lazy('content.js', 'contentPage'), true],
  [/^\/invitations\/accept$/, acceptPage, false],
  [/^\/me$/, lazy('settings.js', 'mePage'), true],
  [new RegExp(`^/orgs/(${ID})/teams$`), lazy('settings.js', 'teamsPage'), true],
  [new RegExp(`^/orgs/(${ID})/api-keys$`), lazy('settings.js', 'apiKeysPage'), true],
  [new RegExp(`^/orgs/(${ID})/activity$`), lazy('settings.js', 'activityPage'), true],
  [new RegExp(`^/orgs/(${ID})/billing$`), lazy('billing.js', 'billingPage'), true],
  [new RegExp(`^/orgs/(${ID})/integrations$`), lazy('integrations.js', 'integrationsPage'), true],
  [new RegExp(`^/orgs/(${ID})/integrations/(${ID})$`), lazy('integrations.js', 'integrationPage'), true],
  [new RegExp(`^/orgs/(${ID})/assistant$`), lazy('assistant.js', 'assistantPage'), true],
  [new RegExp(`^/orgs/(${ID})/assistant/(${ID})$`), lazy('assistant.js', 'conversationPage'), true],
];

// The control focused last: a button disabled while it works (Save) has lost focus by the time
// the page is drawn again.
let lastFocused = null;
document.addEventListener('focusin', (event) => { lastFocused = event.target; });

/** What names a focused control across a redraw: its id, or its kind, name and words. */
function focusMark(active) {
  const element = active && active !== document.body ? active : lastFocused;
  if (!element || !element.closest('main')) return null;
  return {
    id: element.id,
    tag: element.tagName,
    name: element.getAttribute('name'),
    text: element.textContent.trim(),
  };
}

function focusMarked(mark) {
  if (!mark) return null;
  if (mark.id) return document.getElementById(mark.id);
  return [...document.querySelectorAll(`main ${mark.tag}`)].find((element) =>
    element.getAttribute('name') === mark.name && element.textContent.trim() === mark.text
    && !element.disabled) || null;
}

let renderSeq = 0;
let renderedPath = null;
/** The path and query last drawn: Back to the same path with other filters is another page. */
let renderedAddress = null;

export async function render() {
  // A newer render (a click, Back, the switcher) wins: an older one still waiting for the API
  // changes nothing on the page when its answers come.
  const seq = ++renderSeq;
  const current = () => seq === renderSeq;
  const view = {
    show: (...args) => { if (current()) show(...args); },
    bar: (org) => bar(org, current),
    plainBar: () => { if (current()) document.getElementById('bar').replaceChildren(brand()); },
  };
  const path = location.pathname;
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  if (!route) {
    show('Not found', h('p', {}, 'Nothing lives at this address. ', link('/', 'Go to your dashboard')));
    return;
  }
  const [pattern, page] = route;
  const arrived = renderedPath !== path;
  const focused = arrived ? null : focusMark(document.activeElement);
  renderedPath = path;
  renderedAddress = path + location.search;
  try {
    await page(view, ...pattern.exec(path).slice(1));
    if (!current()) return;
    // Focus goes to the new page's heading when the page changed. A redraw of the same page
    // (after a Save) leaves it where it is, or, when the element that had it was drawn again,
    // puts it on the new one (the Save button again); else on the heading.
    const lost = !document.activeElement || document.activeElement === document.body;
    if (arrived) document.querySelector('main > h1')?.focus({ preventScroll: true });
    else if (lost) (focusMarked(focused) || document.querySelector('main > h1'))?.focus();
  } catch (error) {
    if (!current()) return;
    if (error instanceof ApiError && error.status === 401) {
      if (location.pathname !== '/sign-in') toSignIn();
      return;
    }
    if (error instanceof ApiError && (error.status === 404 || error.status === 403)) {
      show('Not available', h('p', {}, 'This does not exist, or your role does not show it. ', link('/', 'Go to your dashboard')));
      return;
    }
    show('Something went wrong', h('p', { role: 'alert' }, error.message));
  }
}

document.addEventListener('click', (event) => {
  const anchor = event.target.closest('a');
  if (!anchor || anchor.origin !== location.origin || anchor.target || anchor.hasAttribute('download')) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (anchor.pathname.startsWith('/docs') || anchor.pathname.startsWith('/v1/')) return;
  if (anchor.hash && anchor.pathname === location.pathname) return;
  event.preventDefault();
  navigate(anchor.pathname + anchor.search);
});
window.addEventListener('popstate', () => {
  // A change of fragment only (the skip link) is not another page.
  if (location.pathname + location.search === renderedAddress) return;
  render();
});
render();
