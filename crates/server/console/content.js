// Content: pages, posts, documentation and templates. A list by type and status, and an editor
// with a live preview rendered by the API exactly as the public page will be, publishing,
// scheduling, archiving, versions and their restoring.

import {
  api, h, status, navigate, render, link, can, READ_ONLY, form, memberNames, attempt, toSignIn, ApiError,
  saidAt, when, every, paged,
} from './app.js';

const TYPES = [['page', 'Page'], ['blog_post', 'Blog post'], ['documentation', 'Documentation'], ['template', 'Template']];
const STATUSES = [['draft', 'Draft'], ['published', 'Published'], ['archived', 'Archived']];
const TYPE_TEXT = Object.fromEntries(TYPES);
const STATUS_TEXT = Object.fromEntries(STATUSES);


/** Whether I publish in this organization: admins and owners, and members granted
 *  `content.publish` (the API decides; this only leaves out what it would refuse). */
async function mayPublish(org, organization, me) {
  if (can(organization, 'admin')) return true;
  if (!can(organization, 'member')) return false;
  const members = await every(`/v1/orgs/${org}/members?limit=200`);
  const mine = members.items.find((m) => m.user_id === me);
  return Boolean(mine && mine.permissions && mine.permissions['content.publish'] === true);
}

export async function contentListPage(view, org) {
  const query = new URLSearchParams(location.search);
  const params = new URLSearchParams({ limit: '50' });
  for (const key of ['type', 'status']) if (query.get(key)) params.set(key, query.get(key));
  const [organization, pages] = await Promise.all([view.bar(org), api('GET', `/v1/orgs/${org}/content?${params}`)]);
  const body = h('tbody', {});
  const more = paged(`/v1/orgs/${org}/content?${params}`, pages, body, (p) => h('tr', {},
    h('td', {}, link(`/orgs/${org}/content/${p.id}`, p.title)),
    h('td', {}, TYPE_TEXT[p.content_type]),
    h('td', {}, p.publish_at && p.status === 'draft' ? `Scheduled for ${when.format(new Date(p.publish_at))}` : STATUS_TEXT[p.status]),
    h('td', {}, when.format(new Date(p.updated_at)))), ['page', 'pages']);
  const filter = (key, value, words) => {
    const next = new URLSearchParams(query);
    if (value) next.set(key, value);
    else next.delete(key);
    return link(`/orgs/${org}/content${String(next) ? `?${next}` : ''}`, words,
      { 'aria-current': (query.get(key) || '') === value ? 'page' : null });
  };
  view.show('Content',
    h('nav', { class: 'filter-links', 'aria-label': 'Content by type' },
      filter('type', '', 'Every type'), TYPES.map(([value, words]) => filter('type', value, words))),
    h('nav', { class: 'filter-links', 'aria-label': 'Content by status' },
      filter('status', '', 'Any status'), STATUSES.map(([value, words]) => filter('status', value, words))),
    pages.items.length === 0
      ? h('p', { class: 'empty' }, query.get('type') || query.get('status')
        ? 'Nothing of this kind.' : 'No content yet. Write the first page below: it stays a draft until it is published.')
      : [h('div', { class: 'scroll' }, h('table', { class: 'values content' },
        h('thead', {}, h('tr', {}, ['Title', 'Type', 'Status', 'Last change'].map((t) => h('th', { scope: 'col' }, t)))),
        body)), more],
    !can(organization, 'member') ? h('p', { class: 'hint' }, READ_ONLY) : h('details', { class: 'new' },
      h('summary', {}, 'New page'),
      form([
        { name: 'title', label: 'Title', required: true },
        { name: 'content_type', label: 'Type', options: TYPES },
      ], 'Start writing', async (values) => {
        const created = await api('POST', `/v1/orgs/${org}/content`, values);
        navigate(`/orgs/${org}/content/${created.id}`);
      })));
}

// ---------------------------------------------------------------------------------------------
// The preview: the API's HTML (raw HTML already text, links already safe), taken apart in an
// inert document and built again from the elements and attributes a page may hold, so that
// nothing from it runs or is parsed into the console's own page.

const ALLOWED = new Set(['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'em', 'strong', 'del', 'code', 'pre',
  'blockquote', 'ul', 'ol', 'li', 'a', 'hr', 'br', 'table', 'thead', 'tbody', 'tr', 'th', 'td',
  'input', 'sup', 'div', 'span']);
const ATTRIBUTES = { a: ['href', 'title'], ol: ['start'], input: ['type', 'checked'] };
const ALIGNMENTS = new Set(['left', 'center', 'right']);
// A footnote's id, kept apart from the console's own ids.
const noteId = (id) => `preview-note-${id}`;

function rebuilt(node) {
  if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.textContent);
  if (node.nodeType !== Node.ELEMENT_NODE) return null;
  const tag = node.tagName.toLowerCase();
  // The console loads no image from elsewhere (its policy): an image is named, not shown.
  if (tag === 'img') return h('span', { class: 'hint' }, `[image: ${node.getAttribute('alt') || node.getAttribute('src') || ''}]`);
  const children = [...node.childNodes].map(rebuilt).filter(Boolean);
  if (!ALLOWED.has(tag)) return children.length ? h('span', {}, children) : null;
  const element = document.createElement(tag);
  for (const name of ATTRIBUTES[tag] || []) {
    const value = node.getAttribute(name);
    if (value !== null) element.setAttribute(name, value);
  }
  if (tag === 'a') linkTarget(element);
  // A table column's alignment, the one style a page's HTML holds (set as a property: the
  // console's policy refuses style attributes).
  if (tag === 'th' || tag === 'td') {
    const align = node.getAttribute('data-align');
    if (ALIGNMENTS.has(align)) element.style.textAlign = align;
  }
  if (tag === 'div' && node.id) element.id = noteId(node.id);
  if (tag === 'input') element.setAttribute('disabled', '');
  element.append(...children);
  return element;
}

/** A link of the preview: a footnote's stays on the page; one elsewhere opens apart; one the API
 *  made harmless (`#`), or of any other kind, is text. */
function linkTarget(element) {
  const href = element.getAttribute('href') || '';
  if (href.length > 1 && href.startsWith('#')) {
    element.setAttribute('href', `#${noteId(href.slice(1))}`);
  } else if (/^(https?:|mailto:|\/)/i.test(href)) {
    element.setAttribute('target', '_blank');
    element.setAttribute('rel', 'noopener noreferrer');
  } else {
    element.removeAttribute('href');
  }
}

function previewOf(html) {
  // A column's alignment comes as a style attribute, which even an inert document of this page
  // is refused (its policy): read as data instead, in the cells' own tags only (raw HTML in the
  // text is already escaped, so no text reads as a tag).
  const aligned = html.replace(/<(t[hd]) style="text-align: (left|center|right)">/g, '<$1 data-align="$2">');
  const inert = new DOMParser().parseFromString(aligned, 'text/html');
  return [...inert.body.childNodes].map(rebuilt).filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// The editor

export async function contentPage(view, org, id) {
  const url = `/v1/orgs/${org}/content/${id}`;
  const [organization, me, page, versions, names] = await Promise.all([
    view.bar(org), api('GET', '/v1/me'), api('GET', url), api('GET', `${url}/versions`), memberNames(org)]);
  const editor = await mayPublish(org, organization, me.user.id);
  // Members change plain drafts; editors change anything.
  const writable = editor || (can(organization, 'member') && page.status === 'draft' && !page.publish_at);
  const preview = h('div', { class: 'preview', 'aria-live': 'polite', id: 'preview' });
  const general = h('p', { class: 'form-error', role: 'alert' });

  let previewTimer;
  let previewSeq = 0;
  const showPreview = async (markdown) => {
    const seq = ++previewSeq;
    try {
      const answer = await api('POST', `/v1/orgs/${org}/content/preview`, { content: markdown });
      // A later keystroke's preview wins over an earlier one still on its way.
      if (seq === previewSeq) preview.replaceChildren(...previewOf(answer.html));
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) toSignIn();
      else if (seq === previewSeq) preview.replaceChildren(h('p', { class: 'hint' }, `No preview: ${error.message}`));
    }
  };

  const fields = form([
    { name: 'title', label: 'Title', required: true, value: page.title },
    { name: 'slug', label: 'Address', value: page.slug, hint: 'Lowercase letters and digits joined by dashes. Changing it keeps the old address leading here.' },
    { name: 'content_type', label: 'Type', options: TYPES, value: page.content_type },
    { name: 'excerpt', label: 'Excerpt', type: 'textarea', value: page.excerpt, clearable: true },
    { name: 'content', label: 'Text (Markdown)', type: 'textarea', value: page.content },
  ], 'Save', async (values) => {
    // The text is sent as typed (an emptied text is an empty page, not a missing field).
    const body = { ...values, content: fields.querySelector('[name="content"]').value };
    await api('PATCH', url, body);
    await render();
    status('Saved.');
  }, 'page');
  const text = fields.querySelector('[name="content"]');
  // Whether the form differs from the page as saved.
  const edited = () => ['title', 'slug', 'content_type', 'excerpt', 'content']
    .some((name) => (fields.querySelector(`[name="${name}"]`).value || '') !== (page[name] || ''));
  text.rows = 16;
  text.addEventListener('input', () => {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(() => showPreview(text.value), 300);
  });

  const act = (words, body, done) => h('button', {
    type: 'button',
    class: body.status === 'archived' ? 'secondary' : null,
    onclick: () => attempt(async () => {
      general.textContent = '';
      if (edited()) {
        general.textContent = 'Save your changes first: this acts on the page as it was last saved.';
        return;
      }
      try {
        await api('PATCH', url, body);
      } catch (error) {
        // Named problems (a slug taken, a time in the past) are said here.
        if (saidAt(general, error)) return;
        throw error;
      }
      status(done);
      render();
    }),
  }, words);
  const publicUrl = `/v1/public/${organization.slug}/content/${page.slug}`;
  const scheduled = page.status === 'draft' && page.publish_at;
  const schedule = h('form', { class: 'inline-form', 'aria-label': 'Schedule publishing' },
    h('label', { for: 'publish-at' }, 'Publish at'),
    h('input', { id: 'publish-at', type: 'datetime-local', required: true }),
    h('button', { type: 'submit', class: 'secondary' }, 'Schedule'));
  schedule.addEventListener('submit', (event) => {
    event.preventDefault();
    const at = schedule.querySelector('input').value;
    if (!at) return;
    if (edited()) {
      general.textContent = 'Save your changes first: this acts on the page as it was last saved.';
      return;
    }
    schedule.querySelector('button').disabled = true;
    attempt(async () => {
      try {
        await api('PATCH', url, { publish_at: new Date(at).toISOString() });
        status(`Scheduled for ${when.format(new Date(at))}.`);
        render();
      } catch (error) {
        if (!saidAt(general, error)) throw error;
      } finally {
        schedule.querySelector('button').disabled = false;
      }
    });
  });

  view.show(page.title,
    h('p', {}, link(`/orgs/${org}/content`, 'All content')),
    h('p', { class: 'hint' }, [
      TYPE_TEXT[page.content_type],
      scheduled ? `Draft, scheduled for ${when.format(new Date(page.publish_at))}` : STATUS_TEXT[page.status],
      page.published_at ? `first published ${when.format(new Date(page.published_at))}` : null,
      page.author_id ? `by ${names.get(page.author_id) || 'another member'}` : null,
    ].filter(Boolean).join(' · ')),
    page.status === 'published'
      ? h('p', {}, h('a', { href: publicUrl, target: '_blank', rel: 'noopener' }, 'The public page, as the public API serves it')) : null,
    !editor ? null : h('div', { class: 'moves' },
      page.status !== 'published' ? act('Publish now', { status: 'published' }, 'Published.') : null,
      page.status === 'published' ? act('Unpublish', { status: 'draft' }, 'Back to a draft.') : null,
      scheduled ? act('Cancel the schedule', { publish_at: null }, 'No longer scheduled.') : null,
      page.status !== 'archived' ? act('Archive', { status: 'archived' }, 'Archived.') : null),
    editor && page.status === 'draft' ? schedule : null,
    general,
    writable ? null : h('p', { class: 'hint' }, can(organization, 'member')
      ? 'Only editors change a page that is published, archived or scheduled.' : READ_ONLY),
    h('div', { class: 'editor' },
      h('section', { 'aria-labelledby': 'write-heading' },
        h('h2', { id: 'write-heading' }, 'Write'),
        writable ? fields : h('pre', { class: 'source' }, page.content)),
      h('section', { 'aria-labelledby': 'preview-heading' },
        h('h2', { id: 'preview-heading' }, 'Preview'),
        h('p', { class: 'hint' }, 'As the public page shows it.'),
        preview)),
    h('section', { 'aria-labelledby': 'versions-heading' },
      h('h2', { id: 'versions-heading' }, 'Published versions'),
      versions.length === 0 ? h('p', { class: 'empty' }, 'Not published yet: every publish keeps a version here.')
        : h('ol', { class: 'history', reversed: true }, versions.map((v) => h('li', {},
          h('p', { class: 'when' }, `Version ${v.version} · ${when.format(new Date(v.published_at))} · ${names.get(v.published_by) || 'another member'}`),
          h('p', {}, v.title),
          !editor ? null : h('button', {
            type: 'button',
            class: 'link',
            'aria-label': `Restore version ${v.version}`,
            onclick: () => attempt(async () => {
              await api('POST', `${url}/versions/${v.version}/restore`);
              status(`Version ${v.version} restored.`);
              render();
            }),
          }, 'Restore'))))),
    !(editor || (writable && !page.published_at)) ? null : h('button', {
      type: 'button',
      class: 'secondary',
      onclick: () => attempt(async () => {
        if (!window.confirm(`Delete “${page.title}”${page.published_at ? ' and its published versions' : ''}?`)) return;
        await api('DELETE', url);
        status(`${page.title} deleted.`);
        navigate(`/orgs/${org}/content`);
      }),
    }, 'Delete'));
  await showPreview(page.content);
}
