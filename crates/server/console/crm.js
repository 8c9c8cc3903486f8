// The CRM: customers (search, filters, CSV in and out), a customer's page, projects, and a
// project's kanban board, whose cards move by drag and drop or by keyboard.

import {
  api, h, status, navigate, render, link, can, READ_ONLY, form, progressBar, memberNames, importCsv,
  attempt, filtersGo, day, paged, customerField, customerNames,
} from './app.js';

const CUSTOMER_STATUSES = [['lead', 'Lead'], ['prospect', 'Prospect'], ['active', 'Active'], ['churned', 'Churned']];
const SOURCES = [['website', 'Website'], ['referral', 'Referral'], ['social', 'Social'], ['email', 'Email'], ['other', 'Other']];
const PROJECT_STATUSES = [['planning', 'Planning'], ['active', 'Active'], ['on_hold', 'On hold'], ['completed', 'Completed'], ['cancelled', 'Cancelled']];
const PRIORITIES = [['low', 'Low'], ['medium', 'Medium'], ['high', 'High'], ['critical', 'Critical']];
const COLUMNS = [['todo', 'To do'], ['in_progress', 'In progress'], ['review', 'Review'], ['done', 'Done'], ['cancelled', 'Cancelled']];
const SORTS = [['', 'Best match, else name'], ['name', 'Name'], ['-updated', 'Recently changed'], ['-created', 'Newest']];

const text = (pairs) => Object.fromEntries(pairs);
const STATUS_TEXT = text(CUSTOMER_STATUSES);
const SOURCE_TEXT = text(SOURCES);
const PROJECT_TEXT = text(PROJECT_STATUSES);
const PRIORITY_TEXT = text(PRIORITIES);
const COLUMN_TEXT = text(COLUMNS);


/** Tags typed as `a, b; c`: the list the API takes. */
function tagList(raw) {
  return raw.split(/[,;]/).map((t) => t.trim()).filter(Boolean);
}

/** Select options, with the current value kept when it is not among them (a list shows the
 *  first 100: saving must not clear what it could not list). */
function withCurrent(options, current, words) {
  return current && !options.some(([value]) => value === current) ? [...options, [current, words]] : options;
}

function customerFields(customer, members) {
  const value = (name) => (customer ? customer[name] ?? undefined : undefined);
  return [
    { name: 'name', label: 'Name', required: true, value: value('name') },
    { name: 'email', label: 'Email', type: 'email', value: value('email'), clearable: Boolean(customer) },
    { name: 'phone', label: 'Phone', type: 'tel', value: value('phone'), clearable: Boolean(customer) },
    { name: 'company', label: 'Company', value: value('company'), clearable: Boolean(customer) },
    { name: 'status', label: 'Status', options: CUSTOMER_STATUSES, value: value('status') },
    { name: 'source', label: 'Source', options: SOURCES, value: value('source') || 'other' },
    {
      name: 'tags', label: 'Tags', hint: 'Separated by commas.', value: customer ? customer.tags.join(', ') : undefined,
      parse: tagList, clearable: Boolean(customer), cleared: [],
    },
    {
      name: 'assigned_to',
      label: 'Assigned to',
      options: withCurrent([['', 'Nobody'], ...members], value('assigned_to'), 'Another member'),
      value: value('assigned_to') || '',
      clearable: Boolean(customer),
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Customers

export async function customersPage(view, org) {
  const query = new URLSearchParams(location.search);
  const [organization, names] = await Promise.all([view.bar(org), memberNames(org)]);
  const writer = can(organization, 'member');
  const params = new URLSearchParams();
  for (const key of ['q', 'status', 'source', 'assigned_to', 'sort']) {
    if (query.get(key)) params.set(key, query.get(key));
  }
  params.set('limit', '50');
  const first = await api('GET', `/v1/orgs/${org}/customers?${params}`);

  const body = h('tbody', {});
  const more = paged(`/v1/orgs/${org}/customers?${params}`, first, body, (c) => h('tr', {},
    h('td', {}, link(`/orgs/${org}/customers/${c.id}`, c.name)),
    h('td', {}, c.company || '—'),
    h('td', {}, c.email || '—'),
    h('td', {}, STATUS_TEXT[c.status]),
    h('td', {}, c.tags.join(', ') || '—'),
    h('td', {}, c.assigned_to ? names.get(c.assigned_to) || 'Another member' : '—')), ['customer', 'customers']);

  // The search is a plain GET form: its answer has an address to bookmark and share.
  // A value the address holds that no option names (a list, a member's id) stays chosen.
  const select = (name, label, options) => h('div', { class: 'field' },
    h('label', { for: `filter-${name}` }, label),
    h('select', { id: `filter-${name}`, name }, withCurrent(options, query.get(name), query.get(name))
      .map(([value, words]) => h('option', { value, selected: (query.get(name) || '') === value }, words))));
  const search = h('form', { class: 'filters', role: 'search', method: 'get', action: location.pathname },
    h('div', { class: 'field' }, h('label', { for: 'filter-q' }, 'Search'),
      h('input', { id: 'filter-q', name: 'q', type: 'search', value: query.get('q') || '', placeholder: 'Name, email or company' })),
    select('status', 'Status', [['', 'Any'], ...CUSTOMER_STATUSES]),
    select('source', 'Source', [['', 'Any'], ...SOURCES]),
    select('assigned_to', 'Assigned to', [['', 'Anyone'], ['me', 'Me']]),
    select('sort', 'Order', SORTS),
    h('button', { type: 'submit' }, 'Search'));
  filtersGo(search);

  const filtered = ['q', 'status', 'source', 'assigned_to'].some((key) => query.get(key));
  const report = h('div', { class: 'import-report' });
  const file = h('input', { type: 'file', id: 'customers-csv', accept: '.csv,text/csv' });
  file.addEventListener('change', async () => {
    if (!file.files[0]) return;
    const imported = await importCsv(`/v1/orgs/${org}/customers/import`, file.files[0], report,
      (answer) => `${answer.created} customers imported.`);
    file.value = '';
    if (imported) render();
  });
  view.show('Customers',
    search,
    first.items.length === 0
      ? h('p', { class: 'empty' }, filtered
        ? 'No customer matches. Try fewer filters or another spelling.'
        : 'No customers yet. Add the first below, or import a CSV file.')
      : h('div', { class: 'scroll' }, h('table', { class: 'values customers' },
        h('thead', {}, h('tr', {}, ['Name', 'Company', 'Email', 'Status', 'Tags', 'Assigned to'].map((t) => h('th', { scope: 'col' }, t)))),
        body)),
    more,
    writer ? null : h('p', { class: 'hint' }, READ_ONLY),
    !writer ? null : h('details', { class: 'new' }, h('summary', {}, 'New customer'),
      form(customerFields(null, names), 'Add customer', async (values) => {
        const created = await api('POST', `/v1/orgs/${org}/customers`, values);
        navigate(`/orgs/${org}/customers/${created.id}`);
      })),
    h('section', { 'aria-labelledby': 'customers-csv-heading' },
      h('h2', { id: 'customers-csv-heading' }, 'CSV'),
      !writer ? null : h('div', { class: 'field' },
        h('label', { for: 'customers-csv' }, 'Import customers from a CSV file'),
        h('p', { class: 'hint' }, 'A header line naming columns: name (required), email, phone, company, status, source, tags (separated by ;), assigned_to, custom.<key>. All rows or none are imported.'),
        file),
      report,
      h('p', {}, h('a', { href: `/v1/orgs/${org}/customers.csv`, download: 'customers.csv' }, 'Download every customer as CSV'))));
}

export async function customerPage(view, org, id) {
  const [organization, customer, names, projects] = await Promise.all([
    view.bar(org), api('GET', `/v1/orgs/${org}/customers/${id}`), memberNames(org),
    api('GET', `/v1/orgs/${org}/projects?customer_id=${id}&limit=50`)]);
  const writer = can(organization, 'member');
  const facts = [
    ['Email', customer.email], ['Phone', customer.phone], ['Company', customer.company],
    ['Status', STATUS_TEXT[customer.status]], ['Source', SOURCE_TEXT[customer.source]],
    ['Tags', customer.tags.join(', ')],
    ['Assigned to', customer.assigned_to ? names.get(customer.assigned_to) || 'Another member' : null],
    ...Object.entries(customer.custom_fields || {}).map(([key, value]) => [key, String(value)]),
    ['Added', day.format(new Date(customer.created_at))],
  ].filter(([, value]) => value);
  view.show(customer.name,
    h('p', {}, link(`/orgs/${org}/customers`, 'All customers')),
    h('dl', { class: 'facts' }, facts.flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value)])),
    !writer ? h('p', { class: 'hint' }, READ_ONLY) : h('details', { class: 'new' }, h('summary', {}, 'Edit'),
      form(customerFields(customer, names), 'Save', async (values) => {
        await api('PATCH', `/v1/orgs/${org}/customers/${id}`, values);
        status('Customer saved.');
        render();
      }, 'edit')),
    h('section', { 'aria-labelledby': 'customer-projects-heading' },
      h('h2', { id: 'customer-projects-heading' }, 'Projects'),
      projects.items.length === 0 ? h('p', { class: 'empty' }, 'No projects for this customer yet.')
        : projectTable(org, `/v1/orgs/${org}/projects?customer_id=${id}&limit=50`, projects, customerNames(org, [customer])),
      !writer ? null : h('details', { class: 'new' }, h('summary', {}, 'New project for this customer'),
        form(projectFields(null, null), 'Add project', async (values) => {
          const created = await api('POST', `/v1/orgs/${org}/projects`, { ...values, customer_id: id });
          navigate(`/orgs/${org}/projects/${created.id}`);
        }, 'project'))),
    !can(organization, 'admin') ? null : h('button', {
      type: 'button',
      class: 'secondary',
      onclick: () => attempt(async () => {
        if (!window.confirm(`Delete ${customer.name}? This cannot be undone.`)) return;
        await api('DELETE', `/v1/orgs/${org}/customers/${id}`);
        status(`${customer.name} deleted.`);
        navigate(`/orgs/${org}/customers`);
      }),
    }, 'Delete customer'));
}

// ---------------------------------------------------------------------------------------------
// Projects

/** A project's fields; `customer` is its customer's field (none on a customer's own page),
 *  from `customerField`. */
function projectFields(project, customer) {
  const value = (name) => (project ? project[name] ?? undefined : undefined);
  const clearable = Boolean(project);
  return [
    { name: 'name', label: 'Name', required: true, value: value('name') },
    customer ? { ...customer, clearable } : null,
    { name: 'status', label: 'Status', options: PROJECT_STATUSES, value: value('status') },
    { name: 'priority', label: 'Priority', options: PRIORITIES, value: value('priority') || 'medium' },
    { name: 'start_date', label: 'Starts', type: 'date', value: value('start_date'), clearable },
    { name: 'due_date', label: 'Due', type: 'date', value: value('due_date'), clearable },
    { name: 'budget', label: 'Budget', hint: 'A decimal number, e.g. 12500.00.', value: value('budget'), clearable },
    { name: 'description', label: 'Description', type: 'textarea', value: value('description'), clearable },
  ].filter(Boolean);
}

/** The projects of `first` (a page of `path`) as a table, with "Show more" for the rest. */
function projectTable(org, path, first, nameOf) {
  const body = h('tbody', {});
  const more = paged(path, first, body, (p) => h('tr', {},
    h('td', {}, link(`/orgs/${org}/projects/${p.id}`, p.name)),
    h('td', {}, p.customer_id ? nameOf(p.customer_id) : '—'),
    h('td', {}, PROJECT_TEXT[p.status]),
    h('td', {}, PRIORITY_TEXT[p.priority]),
    h('td', {}, p.due_date || '—'),
    h('td', {}, `${p.progress_percentage} %`)), ['project', 'projects']);
  return [h('div', { class: 'scroll' }, h('table', { class: 'values projects' },
    h('thead', {}, h('tr', {}, ['Project', 'Customer', 'Status', 'Priority', 'Due', 'Progress'].map((t) => h('th', { scope: 'col' }, t)))),
    body)), more];
}

export async function projectsPage(view, org) {
  const chosen = new URLSearchParams(location.search).get('status') || '';
  const projectsPath = `/v1/orgs/${org}/projects?limit=50${chosen ? `&status=${encodeURIComponent(chosen)}` : ''}`;
  const [organization, projects] = await Promise.all([view.bar(org), api('GET', projectsPath)]);
  const filter = (value, words) => link(`/orgs/${org}/projects${value ? `?status=${value}` : ''}`, words,
    { 'aria-current': chosen === value ? 'page' : null });
  view.show('Projects',
    h('nav', { class: 'filter-links', 'aria-label': 'Projects by status' },
      filter('', 'All'), PROJECT_STATUSES.map(([value, words]) => filter(value, words))),
    projects.items.length === 0
      ? h('p', { class: 'empty' }, chosen ? 'No project has this status.' : 'No projects yet. Start one below; its tasks go on its board.')
      : projectTable(org, projectsPath, projects, customerNames(org)),
    !can(organization, 'member') ? h('p', { class: 'hint' }, READ_ONLY) : h('details', { class: 'new' }, h('summary', {}, 'New project'),
      form(projectFields(null, customerField(org, null)), 'Add project', async (values) => {
        const created = await api('POST', `/v1/orgs/${org}/projects`, values);
        navigate(`/orgs/${org}/projects/${created.id}`);
      })));
}

// ---------------------------------------------------------------------------------------------
// A project's board: five columns of cards. Cards move by drag and drop, or from the keyboard
// with each card's move buttons; either way the API places the card (POST …/move) and the board
// is drawn again as the API answers it.

function card(task, names, controls) {
  return h('li', { class: 'task', 'data-id': task.id, draggable: controls ? 'true' : null },
    h('p', { class: 'task-title' }, task.title),
    h('p', { class: 'hint' }, [
      PRIORITY_TEXT[task.priority],
      task.assigned_to ? names.get(task.assigned_to) || 'Another member' : 'Unassigned',
      task.due_date ? `due ${day.format(new Date(task.due_date))}` : null,
    ].filter(Boolean).join(' · ')),
    controls);
}

/** Draws the board into `box` as the API answers it; `focus` ({task, key}) names the arrow
 *  button to focus afterwards (or, when that one is now disabled, the card's first enabled one). */
async function drawBoard(box, org, project, names, writer, focus) {
  const url = `/v1/orgs/${org}/projects/${project}`;
  const board = await api('GET', `${url}/board`);
  let busy = false;
  // One move at a time: each is placed among the neighbours the previous one left.
  const move = (task, body, words, again) => attempt(async () => {
    if (busy) return;
    busy = true;
    for (const button of box.querySelectorAll('button.move')) button.disabled = true;
    try {
      await api('POST', `${url}/tasks/${task.id}/move`, body);
      status(`${task.title}: ${words}.`);
    } finally {
      await drawBoard(box, org, project, names, writer, again);
    }
  });
  const columns = board.columns.map((column, c) => {
    const list = h('ol', { class: 'cards-in-column', 'aria-labelledby': `column-${column.status}` });
    list.append(...column.tasks.map((task, i) => {
      const button = (key, words, label, body, said) => h('button', {
        type: 'button',
        class: 'small move',
        'data-move': key,
        'aria-label': label,
        disabled: body === null,
        onclick: () => move(task, body, said, { task: task.id, key }),
      }, words);
      const left = board.columns[c - 1];
      const right = board.columns[c + 1];
      const above = column.tasks[i - 1];
      const below = column.tasks[i + 1];
      const controls = !writer ? null : h('div', { class: 'moves' },
        button('left', '←', left ? `Move “${task.title}” to ${COLUMN_TEXT[left.status]}` : `“${task.title}” is in the first column`,
          left ? { status: left.status } : null, left && `moved to ${COLUMN_TEXT[left.status]}`),
        button('up', '↑', `Move “${task.title}” up`, above ? { before: above.id } : null, above && `moved above ${above.title}`),
        button('down', '↓', `Move “${task.title}” down`, below ? { after: below.id } : null, below && `moved below ${below.title}`),
        button('right', '→', right ? `Move “${task.title}” to ${COLUMN_TEXT[right.status]}` : `“${task.title}” is in the last column`,
          right ? { status: right.status } : null, right && `moved to ${COLUMN_TEXT[right.status]}`));
      const element = card(task, names, controls);
      if (writer) {
        element.addEventListener('dragstart', (event) => {
          event.dataTransfer.setData('text/plain', task.id);
          event.dataTransfer.effectAllowed = 'move';
        });
      }
      return element;
    }));
    if (writer) {
      list.addEventListener('dragover', (event) => event.preventDefault());
      list.addEventListener('drop', (event) => {
        event.preventDefault();
        const id = event.dataTransfer.getData('text/plain');
        const task = board.columns.flatMap((col) => col.tasks).find((t) => t.id === id);
        const target = event.target.closest('li.task');
        if (!task || (target && target.dataset.id === id)) return;
        // Above the card dropped on (below it, in its lower half), else at the column's end.
        const body = { status: column.status };
        let words = `moved to ${COLUMN_TEXT[column.status]}`;
        if (target) {
          const { top, height } = target.getBoundingClientRect();
          const below = event.clientY > top + height / 2;
          body[below ? 'after' : 'before'] = target.dataset.id;
          words += `, ${below ? 'below' : 'above'} ${target.querySelector('.task-title').textContent}`;
        }
        move(task, body, words, null);
      });
    }
    return h('section', { class: 'column' },
      h('h3', { id: `column-${column.status}` }, `${COLUMN_TEXT[column.status]} (${column.tasks.length})`),
      list);
  });
  box.replaceChildren(...columns);
  if (focus) {
    const moved = box.querySelector(`[data-id="${focus.task}"]`);
    const wanted = moved && moved.querySelector(`[data-move="${focus.key}"]`);
    (wanted && !wanted.disabled ? wanted : moved && moved.querySelector('button.move:not(:disabled)'))?.focus();
  }
}

export async function projectPage(view, org, id) {
  const url = `/v1/orgs/${org}/projects/${id}`;
  const [organization, project, names] = await Promise.all([view.bar(org), api('GET', url), memberNames(org)]);
  const writer = can(organization, 'member');
  const customer = project.customer_id
    ? await api('GET', `/v1/orgs/${org}/customers/${project.customer_id}`) : null;
  const board = h('div', { class: 'board' });
  view.show(project.name,
    h('p', {}, link(`/orgs/${org}/projects`, 'All projects'),
      customer ? [' · for ', link(`/orgs/${org}/customers/${customer.id}`, customer.name)] : null),
    h('p', { class: 'hint' }, [
      PROJECT_TEXT[project.status], `${PRIORITY_TEXT[project.priority]} priority`,
      project.due_date ? `due ${project.due_date}` : null,
      project.budget ? `budget ${project.budget}` : null,
    ].filter(Boolean).join(' · ')),
    progressBar(project.progress_percentage, `${project.name}: done`),
    project.description ? h('p', {}, project.description) : null,
    h('section', { 'aria-labelledby': 'board-heading' },
      h('h2', { id: 'board-heading' }, 'Board'),
      writer ? h('p', { class: 'hint' }, 'Drag a card to another place, or use its arrows: ← → change its column, ↑ ↓ its place.') : null,
      board),
    !writer ? h('p', { class: 'hint' }, READ_ONLY) : h('details', { class: 'new' }, h('summary', {}, 'New task'),
      form([
        { name: 'title', label: 'Task', required: true },
        { name: 'status', label: 'Column', options: COLUMNS },
        { name: 'priority', label: 'Priority', options: PRIORITIES, value: 'medium' },
        { name: 'assigned_to', label: 'Assigned to', options: [['', 'Nobody'], ...names] },
        { name: 'due_date', label: 'Due', type: 'date', parse: (date) => new Date(`${date}T17:00:00`).toISOString() },
        { name: 'estimated_hours', label: 'Estimate (hours)', hint: 'A decimal number, e.g. 1.5.' },
      ], 'Add task', async (values, taskForm) => {
        const task = await api('POST', `${url}/tasks`, values);
        status(`${task.title} added to ${COLUMN_TEXT[task.status]}.`);
        // The form stays open for the next task; only the board is drawn again.
        taskForm.reset();
        taskForm.querySelector('input').focus();
        await drawBoard(board, org, id, names, writer, null);
      }, 'task')),
    !writer ? null : h('details', { class: 'new' }, h('summary', {}, 'Edit project'),
      form(projectFields(project, customerField(org, customer)), 'Save', async (values) => {
        await api('PATCH', url, values);
        status('Project saved.');
        render();
      }, 'edit')));
  await drawBoard(board, org, id, names, writer, null);
}
