// Fast Track tools: the catalog with my progress, a tool's entries, an entry's form built from
// the tool's JSON Schema (GET …/tools/{tool}), status moves, history with what changed, version
// conflicts explained, the tool's own tables, grants and the report for admins.

import {
  api, ApiError, h, status, navigate, render, link, number, can, READ_ONLY, form, progressBar,
  memberNames, attempt, toSignIn, when, every, paged,
} from './app.js';

const STATUS_TEXT = {
  draft: 'Draft', in_progress: 'In progress', completed: 'Completed', submitted: 'Submitted',
  not_started: 'Not started',
};
const ACCESS_TEXT = {
  view: 'You can read your entries.',
  edit: 'You can fill it in.',
  admin: 'You administer it: you see everyone’s entries.',
};
// The moves the database allows from each status, each with its button's words.
const MOVES = {
  draft: [['in_progress', 'Start working on it']],
  in_progress: [['completed', 'Mark as completed']],
  completed: [['submitted', 'Submit (final)'], ['in_progress', 'Reopen']],
  submitted: [],
};
const LEVELS = [['view', 'View'], ['edit', 'Edit'], ['admin', 'Admin']];


function humanize(name) {
  const words = name.replace(/_id$/, '').replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A field's label: the schema's title for it, else its name in words. */
function fieldLabel(schema, name) {
  const field = schema.properties && schema.properties[name];
  return (field && field.title) || humanize(name);
}

function toolUrl(org, slug) {
  return `/v1/orgs/${org}/tools/${slug}`;
}

function entryPath(org, slug, id) {
  return `/orgs/${org}/tools/${slug}/entries/${id}`;
}

/** What an entry is called: its first filled-in text field, else when it was started. */
function entryTitle(schema, entry) {
  for (const [name, field] of Object.entries(schema.properties || {})) {
    const value = entry.data && entry.data[name];
    if (field.type === 'string' && !field.format && typeof value === 'string' && value.trim()) {
      const text = value.trim();
      return text.length > 60 ? `${text.slice(0, 59)}…` : text;
    }
  }
  return `Entry started ${when.format(new Date(entry.created_at))}`;
}

// ---------------------------------------------------------------------------------------------
// The catalog

function toolCard(org, tool) {
  return h('li', { class: 'card' },
    h('h2', {}, link(`/orgs/${org}/tools/${tool.slug}`, tool.name)),
    h('p', { class: 'hint' }, `Sprint ${tool.sprint} · ${STATUS_TEXT[tool.progress_status] || tool.progress_status}`),
    progressBar(tool.progress_percentage, tool.name),
    h('p', {}, tool.description),
    h('p', { class: 'hint' }, tool.access ? ACCESS_TEXT[tool.access] : 'No access yet: an admin can grant it.'));
}

export async function toolsPage(view, org) {
  const [organization, tools, mine] = await Promise.all([
    view.bar(org), api('GET', `/v1/orgs/${org}/tools`), api('GET', `/v1/orgs/${org}/tool-entries?limit=10`)]);
  const names = new Map(tools.map((t) => [t.slug, t.name]));
  view.show('Tools',
    h('p', {}, 'Coaching tools, filled in step by step. Your entries are yours; a tool’s admins read everyone’s.'),
    can(organization, 'admin')
      ? h('p', {}, link(`/orgs/${org}/tool-grants`, 'Who may use which tool'), ' · ', link(`/orgs/${org}/tool-report`, 'Report'))
      : null,
    h('ul', { class: 'cards tools' }, tools.map((tool) => toolCard(org, tool))),
    h('section', { 'aria-labelledby': 'latest-heading' },
      h('h2', { id: 'latest-heading' }, 'Your latest entries'),
      mine.length === 0
        ? h('p', { class: 'empty' }, 'None yet. Open a tool you can fill in and start an entry.')
        : h('ul', {}, mine.map((e) => h('li', {},
          link(entryPath(org, e.tool, e.id), names.get(e.tool) || e.tool),
          ` · ${STATUS_TEXT[e.status]} · ${when.format(new Date(e.updated_at))}`)))));
}

// ---------------------------------------------------------------------------------------------
// A tool and its entries

export async function toolPage(view, org, slug) {
  const everyone = new URLSearchParams(location.search).get('all') === 'true';
  const [, tool] = await Promise.all([view.bar(org), api('GET', toolUrl(org, slug))]);
  const admin = tool.access === 'admin';
  const all = everyone && admin;
  const entriesPath = `${toolUrl(org, slug)}/entries?limit=50${all ? '&all=true' : ''}`;
  const [entries, names] = await Promise.all([
    tool.access ? api('GET', entriesPath) : { items: [] },
    all ? memberNames(org) : new Map(),
  ]);
  const writer = tool.access === 'edit' || admin;
  const rows = h('tbody', {});
  const more = paged(entriesPath, entries, rows, (entry) => h('tr', {},
    h('td', {}, link(entryPath(org, slug, entry.id), entryTitle(tool.data_schema, entry))),
    all ? h('td', {}, names.get(entry.user_id) || 'Another member') : null,
    h('td', {}, STATUS_TEXT[entry.status]),
    h('td', {}, when.format(new Date(entry.updated_at)))), ['entry', 'entries']);
  view.show(tool.name,
    h('p', {}, tool.description),
    h('p', { class: 'hint' }, tool.access ? ACCESS_TEXT[tool.access] : 'You have no access to this tool yet: an admin can grant it.'),
    progressBar(tool.progress_percentage, `Your progress on ${tool.name}`),
    !writer ? null : h('button', {
      type: 'button',
      onclick: async (event) => {
        event.target.disabled = true;
        try {
          const entry = await api('POST', `${toolUrl(org, slug)}/entries`, { data: {} });
          navigate(entryPath(org, slug, entry.id));
        } catch (error) {
          event.target.disabled = false;
          status(error.message);
        }
      },
    }, 'Start a new entry'),
    h('section', { 'aria-labelledby': 'entries-heading' },
      h('h2', { id: 'entries-heading' }, all ? 'Everyone’s entries' : 'Your entries'),
      !admin ? null : h('p', {}, all
        ? link(`/orgs/${org}/tools/${slug}`, 'Show only yours')
        : link(`/orgs/${org}/tools/${slug}?all=true`, 'Show everyone’s'),
      ' · ', link(`/orgs/${org}/tools/${slug}/archive`, 'Archived entries')),
      entries.items.length === 0
        ? h('p', { class: 'empty' }, writer ? 'No entries yet: start one above.' : 'No entries to show.')
        : [h('table', { class: 'values entries' },
          h('thead', {}, h('tr', {}, ['Entry', all ? 'By' : null, 'Status', 'Last change']
            .filter(Boolean).map((t) => h('th', { scope: 'col' }, t)))),
          rows), more]));
}

// ---------------------------------------------------------------------------------------------
// An entry's form, built from the tool's JSON Schema. Each field's path is the JSON path the
// API names in its errors (`data/initiatives/1/priority`), so an error lands at its field.

/** A button removing item `i` of a repeated group: the rest is drawn again (renumbered, so
 *  each field keeps the path the API names) and focus goes to the group's Add button. */
function removeButton(words, i, current, draw, add) {
  return h('button', {
    type: 'button',
    class: 'link',
    onclick: () => {
      const rest = current();
      rest.splice(i, 1);
      draw(rest);
      add.focus();
    },
  }, words);
}

/** The ids of a path's field, its error line and its hint (JSON paths may hold any character;
 *  the three prefixes keep them apart). */
function ids(path) {
  const safe = path.replace(/[^A-Za-z0-9_]/g, '-');
  return { id: `f-${safe}`, error: `e-${safe}`, hint: `h-${safe}` };
}

/** The field editing `value` against `schema` at `path`: {element, read()}; read() gives the
 *  value to send (undefined: leave the field out). Every check registered in `ctx.checks`
 *  answers [path, message] pairs, and none once its field has left the page. */
function editor(schema, path, value, label, ctx) {
  const { id, error, hint: hintId } = ids(path);
  const line = h('p', { id: error, class: 'field-error' });
  const required = ctx.required.has(path) ? ' (required)' : '';
  const field = (input, hint) => {
    input.setAttribute('aria-describedby', hint ? `${error} ${hintId}` : error);
    ctx.errors.set(path, { line, target: input });
    return h('div', { class: 'field' },
      h('label', { for: id }, label + required),
      hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
      input, line);
  };
  const group = (content, add) => {
    const element = h('fieldset', { class: 'group', 'aria-describedby': error },
      h('legend', {}, label + required), content, add, line);
    ctx.errors.set(path, { line, target: element });
    return element;
  };
  const check = (element, problems) => ctx.checks.push(() => (element.isConnected ? problems() : []));
  const type = schema.type;
  const top = path.split('/').length === 2 ? path.split('/')[1] : null;
  if (type === 'string' && top && ctx.refs[top]) {
    const tool = ctx.refs[top];
    const choices = ctx.refChoices[tool] || [];
    const select = h('select', { id },
      h('option', { value: '' }, 'None'),
      choices.map(([v, text]) => h('option', { value: v, selected: v === value }, text)));
    // An entry this reader cannot list (another member's, when an admin reads) stays as it is.
    if (value && !choices.some(([v]) => v === value)) select.append(h('option', { value, selected: true }, 'An entry that is not yours'));
    return { element: field(select, `One of your ${humanize(tool)} entries.`), read: () => select.value || undefined };
  }
  if (type === 'string') {
    const long = !schema.maxLength || schema.maxLength > 300;
    const input = long
      ? h('textarea', { id, rows: 4, maxlength: schema.maxLength })
      : h('input', { id, type: 'text', maxlength: schema.maxLength });
    input.value = typeof value === 'string' ? value : '';
    return { element: field(input), read: () => (input.value.trim() === '' ? undefined : input.value) };
  }
  if (type === 'integer' || type === 'number') {
    const input = h('input', { id, type: 'number', step: type === 'integer' ? 1 : 'any', min: schema.minimum, max: schema.maximum });
    input.value = typeof value === 'number' ? String(value) : '';
    // A browser gives '' for what it cannot read as a number: said here, nothing sent.
    check(input, () => (input.validity.badInput ? [[path, 'Enter a number.']] : []));
    const range = schema.minimum !== undefined && schema.maximum !== undefined
      ? `From ${schema.minimum} to ${schema.maximum}.` : null;
    return { element: field(input, range), read: () => (input.value === '' ? undefined : Number(input.value)) };
  }
  if (type === 'boolean') {
    const input = h('input', { id, type: 'checkbox', checked: value === true, 'aria-describedby': error });
    ctx.errors.set(path, { line, target: input });
    return {
      element: h('div', { class: 'field check' }, input, h('label', { for: id }, label), line),
      read: () => input.checked,
    };
  }
  if (type === 'array' && schema.items && schema.items.type === 'string') {
    const input = h('textarea', { id, rows: 4 });
    input.value = Array.isArray(value) ? value.join('\n') : '';
    const most = schema.maxItems ? ` At most ${schema.maxItems}.` : '';
    return {
      element: field(input, `One per line; empty lines are left out.${most}`),
      read: () => {
        const lines = input.value.split('\n').map((l) => l.trim()).filter(Boolean);
        return lines.length ? lines : undefined;
      },
    };
  }
  if (type === 'array' && schema.items && schema.items.type === 'object') {
    const singular = schema.items.title || label.replace(/s$/, '');
    const box = h('div', { class: 'items' });
    let items = [];
    const current = () => items.map((item) => item.read() || {});
    const add = h('button', { type: 'button', class: 'small' }, `Add ${singular.toLowerCase()}`);
    const draw = (values) => {
      items = values.map((item, i) => editor(schema.items, `${path}/${i}`, item, `${singular} ${i + 1}`, ctx));
      box.replaceChildren(...items.map((item, i) => h('div', { class: 'item' }, item.element,
        removeButton(`Remove ${singular.toLowerCase()} ${i + 1}`, i, current, draw, add))));
      if (values.length === 0) box.append(h('p', { class: 'hint' }, `No ${label.toLowerCase()} yet.`));
    };
    add.addEventListener('click', () => {
      const values = current();
      if (schema.maxItems && values.length >= schema.maxItems) {
        status(`${label}: at most ${schema.maxItems}.`);
        return;
      }
      draw([...values, {}]);
      box.lastElementChild.querySelector('input, textarea, select').focus();
    });
    draw(Array.isArray(value) ? value : []);
    // An item left empty is not dropped (the API names items by their place): it is said.
    check(box, () => items.flatMap((item, i) => (item.read() === undefined
      ? [[`${path}/${i}`, `Fill in or remove ${singular.toLowerCase()} ${i + 1}.`]] : [])));
    return { element: group(box, add), read: () => (items.length ? current() : undefined) };
  }
  if (type === 'object' && schema.properties) {
    for (const name of schema.required || []) ctx.required.add(`${path}/${name}`);
    const fields = Object.entries(schema.properties).map(([name, sub]) =>
      [name, editor(sub, `${path}/${name}`, value && value[name], fieldLabel(schema, name), ctx)]);
    const read = () => {
      const out = {};
      for (const [name, sub] of fields) {
        const v = sub.read();
        if (v !== undefined) out[name] = v;
      }
      return Object.keys(out).length ? out : undefined;
    };
    const content = fields.map(([, sub]) => sub.element);
    // The entry's data itself has no field of its own: its errors go to the form's alert.
    if (path === 'data') return { element: h('div', {}, content), read: () => read() || {} };
    return { element: group(content, null), read };
  }
  if (type === 'object' && schema.additionalProperties && typeof schema.additionalProperties === 'object') {
    // Named texts (a name of my choosing with its text): one row each.
    const box = h('div', { class: 'items' });
    let pairs = [];
    const current = () => pairs.map(([key, text]) => [key.value.trim(), text.value]);
    const add = h('button', { type: 'button', class: 'small' }, `Add to ${label.toLowerCase()}`);
    const draw = (entries) => {
      pairs = entries.map(([k, v], i) => {
        const row = ids(`${path}/#${i}`);
        const key = h('input', { id: `${row.id}-name`, type: 'text', value: k });
        const text = h('textarea', { id: row.id, rows: 2, 'aria-describedby': row.error });
        text.value = v;
        const rowLine = h('p', { id: row.error, class: 'field-error' });
        if (k) ctx.errors.set(`${path}/${k}`, { line: rowLine, target: text });
        return [key, text, rowLine];
      });
      box.replaceChildren(...pairs.map(([key, text, rowLine], i) => h('div', { class: 'item' },
        h('div', { class: 'field' }, h('label', { for: key.id }, `Name ${i + 1}`), key),
        h('div', { class: 'field' }, h('label', { for: text.id }, `Text ${i + 1}`), text, rowLine),
        removeButton(`Remove ${label.toLowerCase()} ${i + 1}`, i, current, draw, add))));
    };
    add.addEventListener('click', () => {
      draw([...current(), ['', '']]);
      box.lastElementChild.querySelector('input').focus();
    });
    draw(Object.entries(value && typeof value === 'object' ? value : {}));
    check(box, () => {
      const keys = current().filter(([k, v]) => k || v.trim()).map(([k]) => k);
      if (keys.some((k) => !k)) return [[path, 'Give each text a name.']];
      if (new Set(keys).size !== keys.length) return [[path, 'Each name once.']];
      return [];
    });
    return {
      element: group(box, add),
      read: () => {
        const filled = current().filter(([k]) => k);
        return filled.length ? Object.fromEntries(filled) : undefined;
      },
    };
  }
  // Anything else the schema allows, as JSON.
  const input = h('textarea', { id, rows: 4 });
  input.value = value === undefined ? '' : JSON.stringify(value, null, 2);
  check(input, () => {
    try {
      if (input.value.trim()) JSON.parse(input.value);
      return [];
    } catch {
      return [[path, 'Not valid JSON.']];
    }
  });
  return { element: field(input, 'As JSON.'), read: () => (input.value.trim() ? JSON.parse(input.value) : undefined) };
}

/** A JSON Pointer's segments, unescaped (`~1` is `/`, `~0` is `~`). */
function segments(path) {
  return path.split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The form of an entry's data: {element, read(), check(), showErrors(errors), clear()}. */
function schemaForm(schema, data, refs, refChoices) {
  const ctx = { errors: new Map(), checks: [], required: new Set(), refs, refChoices };
  const root = editor(schema, 'data', data, null, ctx);
  const placed = () => [...ctx.errors.values()].filter(({ line }) => line.isConnected);
  // Each error at its field, or at the nearest enclosing one on the page (a list's line, a
  // named text renamed since): the rest of its path is said before the message.
  const mark = (errors) => {
    let first = null;
    const unplaced = [];
    for (const [path, message] of errors) {
      const parts = segments(path);
      let depth = parts.length;
      let place = null;
      for (; depth > 1; depth -= 1) {
        place = ctx.errors.get(parts.slice(0, depth).join('/'));
        if (place && place.line.isConnected) break;
        place = null;
      }
      const rest = parts.slice(depth).map((p) => (/^\d+$/.test(p) ? `item ${Number(p) + 1}` : p)).join(', ');
      const said = rest ? `${rest}: ${message}` : message;
      if (!place) {
        unplaced.push(said);
        continue;
      }
      place.line.textContent = place.line.textContent ? `${place.line.textContent} ${said}` : said;
      place.target.setAttribute('aria-invalid', 'true');
      first = first || (place.target.matches('input, select, textarea')
        ? place.target : place.target.querySelector('input, select, textarea, button'));
    }
    return { first, unplaced };
  };
  return {
    element: root.element,
    read: root.read,
    clear: () => {
      for (const { line, target } of placed()) {
        line.textContent = '';
        target.removeAttribute('aria-invalid');
      }
    },
    /** Problems found here, before anything is sent. */
    check: () => mark(ctx.checks.flatMap((c) => c())),
    /** The API's errors, each at its field. */
    showErrors: (errors) => mark(errors.map((e) => [e.field, e.message])),
  };
}

/** A value for a history line: short, readable text. */
function brief(value) {
  if (value === undefined || value === null) return '(empty)';
  const plain = (v) => (v && typeof v === 'object' && !Array.isArray(v)
    ? Object.entries(v).map(([k, x]) => `${humanize(k)}: ${typeof x === 'string' ? x : JSON.stringify(x)}`).join(', ')
    : (typeof v === 'string' ? v : JSON.stringify(v)));
  const text = Array.isArray(value)
    ? value.map(plain).join(value.some((v) => v && typeof v === 'object') ? ' | ' : ', ')
    : plain(value);
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}

/** What one change did, field by field. */
function changeLines(changes, schema) {
  const out = [];
  if (changes.status) {
    const { from, to } = changes.status;
    out.push(from ? `Status: ${STATUS_TEXT[from] || from} → ${STATUS_TEXT[to] || to}` : `Started as ${STATUS_TEXT[to] || to}`);
  }
  if (changes.data) {
    const from = changes.data.from || {};
    const to = changes.data.to || {};
    // In the form's order, then anything the schema no longer names.
    for (const name of new Set([...Object.keys(schema.properties || {}), ...Object.keys(from), ...Object.keys(to)])) {
      if (!(name in from) && !(name in to)) continue;
      if (JSON.stringify(from[name]) === JSON.stringify(to[name])) continue;
      const label = fieldLabel(schema, name);
      out.push(name in from ? `${label}: ${brief(from[name])} → ${brief(to[name])}` : `${label}: ${brief(to[name])}`);
    }
  }
  return out;
}

function historySection(history, schema, names) {
  const items = [...history].reverse().map((item) => h('li', {},
    h('p', { class: 'when' }, `Version ${item.version} · ${when.format(new Date(item.occurred_at))} · ${names.get(item.user_id) || 'another member'}`),
    h('ul', {}, changeLines(item.changes, schema).map((text) => h('li', {}, text)))));
  return h('section', { 'aria-labelledby': 'history-heading' },
    h('h2', { id: 'history-heading' }, 'History'),
    items.length ? h('ol', { class: 'history', reversed: true }, items) : h('p', { class: 'empty' }, 'No changes yet.'));
}

// ---------------------------------------------------------------------------------------------
// A tool's own table (hypotheses, team assessments): rows of the entry, added and removed.

/** A form field for a column, and how its text becomes the value sent. */
function columnField(column) {
  const field = {
    name: column.name,
    label: humanize(column.name),
    required: !column.nullable && !column.has_default,
  };
  switch (column.data_type) {
    case 'integer':
    case 'smallint':
    case 'bigint':
    case 'numeric':
      return { ...field, type: 'number', step: column.data_type === 'numeric' ? 'any' : 1 };
    case 'boolean':
      return {
        ...field,
        options: [['', '—'], ['false', 'No'], ['true', 'Yes']].filter(([v]) => v !== '' || column.nullable || column.has_default),
        parse: (text) => text === 'true',
      };
    case 'jsonb':
    case 'json':
      return {
        ...field,
        type: 'textarea',
        hint: 'A list, one per line, or JSON starting with [ or {.',
        parse: (text) => (/^[[{]/.test(text) ? JSON.parse(text) : text.split('\n').map((l) => l.trim()).filter(Boolean)),
      };
    default:
      return { ...field, type: column.max_length && column.max_length <= 255 ? 'text' : 'textarea' };
  }
}

function cell(value) {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'boolean') return value ? 'Yes' : 'No';
  return brief(value);
}

/** One of the tool's own tables: the entry's rows, added and removed. Only this section is
 *  drawn again after a change, so the entry's form above keeps what is typed in it. */
function ownTable(table, rows, url, writable) {
  const columns = table.columns;
  const title = humanize(table.name);
  const headingId = `table-${table.name}-heading`;
  let section = null;
  const redraw = async (message) => {
    const latest = await api('GET', url);
    section.replaceWith(ownTable(table, latest, url, writable));
    status(message);
    document.getElementById(headingId).focus();
  };
  const body = rows.map((row) => h('tr', {},
    columns.map((c) => h('td', {}, cell(row[c.name]))),
    !writable ? null : h('td', {}, h('button', {
      type: 'button',
      class: 'link',
      'aria-label': `Remove the row ${brief(row[columns[0].name])}`,
      onclick: () => attempt(async () => {
        await api('DELETE', `${url}/${row.id}`);
        await redraw('Row removed.');
      }),
    }, 'Remove'))));
  section = h('section', { 'aria-labelledby': headingId },
    h('h2', { id: headingId, tabindex: '-1' }, title),
    rows.length === 0
      ? h('p', { class: 'empty' }, writable ? 'None yet: add the first below.' : 'None.')
      : h('div', { class: 'scroll' }, h('table', { class: 'values rows' },
        h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, humanize(c.name))),
          writable ? h('th', { scope: 'col' }, 'Row') : null)),
        h('tbody', {}, body))),
    !writable ? null : h('details', { class: 'new' },
      h('summary', {}, `Add to ${title.toLowerCase()}`),
      form(columns.map(columnField), 'Add', async (values) => {
        await api('POST', url, values);
        await redraw('Row added.');
      }, `row-${table.name}`)));
  return section;
}

// ---------------------------------------------------------------------------------------------
// An entry

export async function entryPage(view, org, slug, id) {
  const url = `${toolUrl(org, slug)}/entries/${id}`;
  const [organization, me, tool, first, history, names] = await Promise.all([
    view.bar(org), api('GET', '/v1/me'), api('GET', toolUrl(org, slug)), api('GET', url),
    api('GET', `${url}/history`), memberNames(org)]);
  // My entries of the tools this one refers to, to choose from.
  const refChoices = {};
  await Promise.all([...new Set(Object.values(tool.refs))].map(async (ref) => {
    try {
      const [other, list] = await Promise.all([
        api('GET', toolUrl(org, ref)), every(`${toolUrl(org, ref)}/entries?limit=200`)]);
      refChoices[ref] = list.items.map((e) => [e.id, entryTitle(other.data_schema, e)]);
    } catch (error) {
      if (!(error instanceof ApiError) || (error.status !== 403 && error.status !== 404)) throw error;
      refChoices[ref] = [];
    }
  }));
  const tableUrl = (name) => `${url}/${name}`;
  const rows = await Promise.all(tool.tables.map((t) => api('GET', tableUrl(t.name))));

  let entry = first;
  const mine = entry.user_id === me.user.id;
  const mayWrite = mine && (tool.access === 'edit' || tool.access === 'admin');
  const writable = mayWrite && entry.status !== 'submitted';
  const editorForm = schemaForm(tool.data_schema, entry.data, tool.refs, refChoices);
  let saved = JSON.stringify(editorForm.read());
  const dirty = () => JSON.stringify(editorForm.read()) !== saved;

  const meta = h('p', { class: 'hint', id: 'entry-meta', tabindex: '-1' });
  const moves = h('div', { class: 'moves' });
  const general = h('p', { class: 'form-error', role: 'alert' });
  const conflict = h('div', { class: 'conflict', tabindex: '-1' });
  const save = h('button', { type: 'submit' }, 'Save');

  const describe = () => {
    meta.textContent = [
      STATUS_TEXT[entry.status],
      `version ${entry.version}`,
      `last change ${when.format(new Date(entry.updated_at))}`,
      mine ? null : `by ${names.get(entry.user_id) || 'another member'}`,
    ].filter(Boolean).join(' · ');
    moves.replaceChildren(...(mayWrite ? MOVES[entry.status] : []).map(([to, words]) => h('button', {
      type: 'button',
      class: to === 'submitted' ? 'final' : null,
      onclick: () => move(to),
    }, words)));
    if (entry.status === 'submitted') moves.append(h('p', { class: 'hint' }, 'Submitted: this entry is final and no longer changes.'));
  };

  // A save or move named a version that is no longer the entry's: say what happened, show the
  // fields that differ, and let the person choose. Until then no status move is offered.
  const explainConflict = async (mineNow) => {
    const theirs = await api('GET', url);
    moves.replaceChildren();
    const differing = Object.keys({ ...theirs.data, ...(mineNow || {}) })
      .filter((name) => JSON.stringify(theirs.data[name]) !== JSON.stringify((mineNow || {})[name]));
    conflict.replaceChildren(
      h('h2', {}, 'This entry changed since you opened it'),
      h('p', {}, `You started from version ${entry.version}; it is now at version ${theirs.version} (${STATUS_TEXT[theirs.status]}), saved ${when.format(new Date(theirs.updated_at))}. Nothing of yours was saved.`),
      mineNow && differing.length ? h('table', { class: 'values diff' },
        h('caption', {}, 'Where the saved entry and your form differ'),
        h('thead', {}, h('tr', {}, ['Field', 'Saved now', 'Yours'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, differing.map((name) => h('tr', {},
          h('th', { scope: 'row' }, fieldLabel(tool.data_schema, name)),
          h('td', {}, brief(theirs.data[name])), h('td', {}, brief(mineNow[name])))))) : null,
      h('div', { class: 'moves' },
        mineNow && theirs.status !== 'submitted' ? h('button', {
          type: 'button',
          onclick: async () => {
            // Mine replaces theirs, knowingly: based on the version now saved.
            entry = theirs;
            conflict.replaceChildren();
            save.focus();
            await submit();
          },
        }, 'Save mine over it') : null,
        h('button', { type: 'button', class: 'secondary', onclick: () => render() },
          mineNow ? 'Discard mine and load the saved version' : 'Load the saved version')));
    conflict.focus();
  };

  const refreshHistory = async () => {
    const latest = await api('GET', `${url}/history`);
    historyBox.replaceChildren(historySection(latest, tool.data_schema, names));
  };

  const failed = async (error, mineNow) => {
    if (error instanceof ApiError && error.status === 401) {
      toSignIn();
      return;
    }
    if (!(error instanceof ApiError)) {
      general.textContent = 'The service did not answer. Check the connection and try again.';
      return;
    }
    if (error.status === 409 && error.problem.code === 'stale_version') {
      await explainConflict(mineNow).catch((e) => { general.textContent = e.message; });
      return;
    }
    if (error.status === 422 && error.problem.errors) {
      const { first: field, unplaced } = editorForm.showErrors(error.problem.errors);
      general.textContent = unplaced.join(' ');
      if (field) field.focus();
      return;
    }
    general.textContent = error.message;
  };

  const submit = async () => {
    editorForm.clear();
    general.textContent = '';
    const local = editorForm.check();
    if (local.first || local.unplaced.length) {
      general.textContent = local.unplaced.join(' ');
      if (local.first) local.first.focus();
      return;
    }
    const data = editorForm.read();
    save.disabled = true;
    try {
      entry = await api('PATCH', url, { version: entry.version, data });
      saved = JSON.stringify(data);
      conflict.replaceChildren();
      describe();
      status(`Saved: version ${entry.version}.`);
      await refreshHistory();
    } catch (error) {
      await failed(error, data);
    } finally {
      save.disabled = false;
    }
  };

  const move = async (to) => {
    general.textContent = '';
    if (dirty()) {
      general.textContent = 'Save your changes first: a status change keeps the entry as it was saved.';
      return;
    }
    if (to === 'submitted' && !window.confirm('Submit this entry? It cannot be changed afterwards.')) return;
    // One move at a time: a second click would name the version the first one changes.
    for (const button of moves.querySelectorAll('button')) button.disabled = true;
    try {
      entry = await api('POST', `${url}/status`, { version: entry.version, status: to });
      status(`${STATUS_TEXT[entry.status]}.`);
      // Submitting ends editing: draw the page again as it now is.
      if (entry.status === 'submitted') {
        render();
        return;
      }
      describe();
      (moves.querySelector('button') || meta).focus();
      await refreshHistory();
    } catch (error) {
      describe();
      await failed(error, null);
    }
  };

  const body = h('form', { class: 'entry', novalidate: true },
    h('fieldset', { class: 'plain', disabled: !writable }, editorForm.element),
    general,
    writable ? save : null);
  body.addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
  const historyBox = h('div', {}, historySection(history, tool.data_schema, names));
  describe();
  view.show(`${tool.name}: ${entryTitle(tool.data_schema, entry)}`,
    h('p', {}, link(`/orgs/${org}/tools/${slug}`, `All ${tool.name} entries`)),
    meta,
    moves,
    conflict,
    mayWrite || can(organization, 'member') ? null : h('p', { class: 'hint' }, READ_ONLY),
    !mine ? h('p', { class: 'hint' }, 'Another member’s entry: you read it as the tool’s admin; only its author changes it.') : null,
    body,
    h('div', {}, tool.tables.map((table, i) => ownTable(table, rows[i], tableUrl(table.name), writable))),
    historyBox);
}

// ---------------------------------------------------------------------------------------------
// Grants and the report (organization admins)

export async function grantsPage(view, org) {
  const [, grants, tools, members] = await Promise.all([
    view.bar(org), api('GET', `/v1/orgs/${org}/tool-grants`), api('GET', `/v1/orgs/${org}/tools`),
    every(`/v1/orgs/${org}/members?limit=200`)]);
  const names = new Map(members.items.map((m) => [m.user_id, m.name || m.email]));
  const toolNames = new Map(tools.map((t) => [t.slug, t.name]));
  const now = Date.now();
  const rows = grants.map((g) => {
    const expired = g.expires_at && Date.parse(g.expires_at) <= now;
    const who = names.get(g.user_id) || 'Another member';
    return h('tr', {},
      h('td', {}, who),
      h('td', {}, toolNames.get(g.tool) || g.tool),
      h('td', {}, g.access_level),
      h('td', {}, g.expires_at ? `${expired ? 'Expired' : 'Until'} ${when.format(new Date(g.expires_at))}` : 'Until revoked'),
      h('td', {}, h('button', {
        type: 'button',
        class: 'link',
        'aria-label': `Revoke ${who}’s grant on ${toolNames.get(g.tool) || g.tool}`,
        onclick: () => attempt(async () => {
          await api('DELETE', `/v1/orgs/${org}/tool-grants/${g.id}`);
          status('Grant revoked.');
          render();
        }),
      }, 'Revoke')));
  });
  view.show('Tool grants',
    h('p', {}, 'Who may use which tool. Organization admins administer every tool without a grant.'),
    rows.length === 0 ? h('p', { class: 'empty' }, 'No grants yet: members see no tool until you grant one below.')
      : h('div', { class: 'scroll' }, h('table', { class: 'values grants' },
        h('thead', {}, h('tr', {}, ['Member', 'Tool', 'Access', 'Expires', 'Grant'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, rows))),
    h('section', { 'aria-labelledby': 'grant-heading' },
      h('h2', { id: 'grant-heading' }, 'Grant access'),
      form([
        { name: 'user_id', label: 'Member', options: members.items.map((m) => [m.user_id, m.name || m.email]) },
        { name: 'tool', label: 'Tool', options: tools.map((t) => [t.slug, t.name]) },
        { name: 'access_level', label: 'Access', options: LEVELS, value: 'edit', hint: 'View reads their own entries; edit fills the tool in; admin reads everyone’s.' },
        { name: 'expires_at', label: 'Until', type: 'date', hint: 'Empty: until revoked. A member’s earlier grant on the tool is replaced.' },
      ], 'Grant', async (values) => {
        const body = { ...values };
        if (body.expires_at) body.expires_at = new Date(`${body.expires_at}T23:59:59`).toISOString();
        await api('PUT', `/v1/orgs/${org}/tool-grants`, body);
        status(`${names.get(values.user_id)} may now ${values.access_level} ${toolNames.get(values.tool)}.`);
        render();
      })));
}

// ---------------------------------------------------------------------------------------------
// The archive (admins): entries taken out of use, with their own tables' rows, to read.

export async function archivePage(view, org, slug) {
  const path = `${toolUrl(org, slug)}/archive?limit=50`;
  const [, tool, first, names] = await Promise.all([
    view.bar(org), api('GET', toolUrl(org, slug)), api('GET', path), memberNames(org)]);
  const list = h('ol', { class: 'archive' });
  const more = paged(path, first, list, (archived) => h('li', {},
    h('details', {},
      h('summary', {}, `${entryTitle(tool.data_schema, archived)} · ${names.get(archived.user_id) || 'A former member'} · archived ${when.format(new Date(archived.archived_at))}`),
      h('p', { class: 'hint' }, `${STATUS_TEXT[archived.status]} · version ${archived.version} · last changed ${when.format(new Date(archived.updated_at))}`),
      h('dl', { class: 'facts' }, Object.keys(tool.data_schema.properties || {})
        .filter((name) => archived.data && name in archived.data)
        .flatMap((name) => [h('dt', {}, fieldLabel(tool.data_schema, name)), h('dd', {}, brief(archived.data[name]))])),
      Object.entries(archived.rows || {}).filter(([, rows]) => rows.length).map(([table, rows]) => {
        // Its own columns, not the keys that tied it to the entry and organization.
        const columns = Object.keys(rows[0]).filter((c) => c !== 'id' && !c.endsWith('_id'));
        // A wide table scrolls, and so is reachable from the keyboard.
        return h('div', { class: 'scroll', tabindex: '0', role: 'region', 'aria-label': humanize(table) },
          h('table', { class: 'values' },
            h('caption', {}, humanize(table)),
            h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, humanize(c))))),
            h('tbody', {}, rows.map((row) => h('tr', {}, columns.map((c) => h('td', {}, cell(row[c]))))))));
      }))),
  ['archived entry', 'archived entries']);
  view.show(`${tool.name}: archived entries`,
    h('p', {}, link(`/orgs/${org}/tools/${slug}?all=true`, `Everyone’s entries of ${tool.name}`)),
    h('p', { class: 'hint' }, 'Completed entries older than two years, moved here (compressed) by the operator’s tenantry tools archive, to read; tenantry tools restore brings them back.'),
    first.items.length === 0 ? h('p', { class: 'empty' }, 'Nothing archived.') : [list, more]);
}

export async function reportPage(view, org) {
  const [, report, tools] = await Promise.all([
    view.bar(org), api('GET', `/v1/orgs/${org}/tool-report`), api('GET', `/v1/orgs/${org}/tools`)]);
  const byTool = new Map(report.map((line) => [line.tool_slug, line]));
  const rows = tools.map((tool) => {
    const line = byTool.get(tool.slug) || {};
    const count = (n) => number.format(n || 0);
    return h('tr', {},
      h('td', {}, link(`/orgs/${org}/tools/${tool.slug}?all=true`, tool.name)),
      h('td', {}, count(line.draft)), h('td', {}, count(line.in_progress)), h('td', {}, count(line.completed)),
      h('td', {}, count(line.submitted)),
      h('td', {}, `${count(line.members_completed)} of ${count(line.members)}`),
      h('td', {}, line.average_progress === null || line.average_progress === undefined ? '—' : `${number.format(line.average_progress)} %`),
      h('td', {}, line.last_change ? when.format(new Date(line.last_change)) : '—'));
  });
  view.show('Tools report',
    h('p', { class: 'hint' }, 'Counted every hour at five past (the service’s refresh-reports schedule), not live.'),
    h('div', { class: 'scroll' }, h('table', { class: 'values report' },
      h('thead', {}, h('tr', {}, ['Tool', 'Draft', 'In progress', 'Completed', 'Submitted', 'Members done', 'Average progress', 'Last change']
        .map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows))));
}
