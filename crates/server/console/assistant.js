// The assistant: my conversations, and a conversation whose replies stream in as the provider
// writes them (server-sent events read from the response's body).

import {
  api, h, status, navigate, link, can, READ_ONLY, form, attempt, ApiError, problemText,
  send, when, every, paged,
} from './app.js';

const MODELS = [['openai_gpt4', 'OpenAI GPT-4'], ['claude_sonnet', 'Claude Sonnet'], ['gemini', 'Gemini']];

export async function assistantPage(view, org) {
  const path = `/v1/orgs/${org}/conversations?limit=50`;
  const [organization, conversations] = await Promise.all([view.bar(org), api('GET', path)]);
  const list = h('ul', { class: 'conversations' });
  const more = paged(path, conversations, list, (c) => h('li', {},
    link(`/orgs/${org}/assistant/${c.id}`, c.title), ` · ${when.format(new Date(c.updated_at))}`), ['conversation', 'conversations']);
  view.show('Assistant',
    h('p', {}, 'Ask about your organization’s work. Your conversations are yours: nobody else reads them unless an owner lets admins.'),
    conversations.items.length === 0 ? h('p', { class: 'empty' }, 'No conversations yet: start one below.')
      : [list, more],
    !can(organization, 'member') ? h('p', { class: 'hint' }, READ_ONLY) : h('section', { 'aria-labelledby': 'new-conversation-heading' },
      h('h2', { id: 'new-conversation-heading' }, 'New conversation'),
      form([
        { name: 'title', label: 'Title', hint: 'Empty: your first message names it.' },
        { name: 'ai_model', label: 'Model', options: MODELS },
      ], 'Start', async (values) => {
        const made = await api('POST', `/v1/orgs/${org}/conversations`, values);
        navigate(`/orgs/${org}/assistant/${made.id}`);
      })));
}

function bubble(role, content, note) {
  return h('li', { class: `turn ${role}` },
    h('p', { class: 'who' }, role === 'user' ? 'You' : 'Assistant'),
    h('p', { class: 'said' }, content),
    note ? h('p', { class: 'hint' }, note) : null);
}

/** The server-sent events of a response's body, as {event, data} pairs, as they arrive. */
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let end = buffer.indexOf('\n\n');
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length) yield { event, data: JSON.parse(data.join('\n')) };
      end = buffer.indexOf('\n\n');
    }
  }
}

export async function conversationPage(view, org, id) {
  const url = `/v1/orgs/${org}/conversations/${id}`;
  const [organization, me, conversation, messages, tools, kpis] = await Promise.all([
    view.bar(org), api('GET', '/v1/me'), api('GET', url), every(`${url}/messages?limit=200`),
    api('GET', `/v1/orgs/${org}/ai-tools`), api('GET', `/v1/orgs/${org}/kpis?limit=200`)]);
  const mine = conversation.user_id === me.user.id && can(organization, 'member');
  const turns = h('ol', { class: 'turns', 'aria-label': 'Conversation' },
    messages.items.map((m) => bubble(m.role, m.content, m.status === 'partial' ? 'Cut off before the end.' : null)));
  const problem = h('p', { class: 'form-error', role: 'alert' });
  const text = h('textarea', { id: 'say', rows: 3, required: true, maxlength: 20000 });
  const usable = tools.filter((t) => !t.locked);
  const tool = h('select', { id: 'tool' }, usable.map((t) => h('option', { value: t.name }, t.description ? `${t.name}: ${t.description}` : t.name)));
  const kpi = h('select', { id: 'tool-kpi' }, h('option', { value: '' }, 'None'), kpis.items.map((k) => h('option', { value: k.id }, k.name)));
  const sendButton = h('button', { type: 'submit' }, 'Send');
  const composer = h('form', { class: 'composer' },
    h('div', { class: 'field' }, h('label', { for: 'say' }, 'Your message'), text),
    h('div', { class: 'field inline' }, h('label', { for: 'tool' }, 'Tool'), tool),
    h('div', { class: 'field inline' }, h('label', { for: 'tool-kpi' }, 'KPI (for kpi_trend)'), kpi),
    problem,
    sendButton);
  composer.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!text.value.trim()) {
      problem.textContent = 'Write a message first.';
      text.focus();
      return;
    }
    attempt(async () => {
      problem.textContent = '';
      sendButton.disabled = true;
      const body = { content: text.value };
      if (tool.value && tool.value !== 'assistant') body.tool = tool.value;
      if (kpi.value) body.kpi_id = kpi.value;
      try {
        await converse(body);
      } catch (error) {
        if (!(error instanceof ApiError) || error.status === 401) throw error;
        problem.textContent = problemText(error);
      } finally {
        sendButton.disabled = false;
        text.focus();
      }
    });
  });

  const converse = async (body) => {
    // A refusal comes before anything is said (over budget, a locked tool, the provider down).
    const response = await send('POST', `${url}/messages`, body, 'text/event-stream');
    text.value = '';
    const reply = bubble('assistant', '');
    const said = reply.querySelector('.said');
    // Read once it is whole, not piece by piece.
    reply.setAttribute('aria-busy', 'true');
    let finished = false;
    try {
      for await (const { event, data } of events(response)) {
        if (event === 'message') turns.append(bubble('user', data.content), reply);
        else if (event === 'delta') said.textContent += data.text;
        else if (event === 'error') reply.append(h('p', { class: 'form-error' }, `The reply stopped: ${data.detail || data.title}`));
        else if (event === 'done') {
          finished = true;
          said.textContent = data.content;
          if (data.status === 'partial') reply.append(h('p', { class: 'hint' }, 'Cut off before the end.'));
        }
      }
    } finally {
      reply.setAttribute('aria-busy', 'false');
    }
    if (!finished) reply.append(h('p', { class: 'hint' }, 'The connection ended before the reply was settled; reload to see what was kept.'));
    status(finished ? 'The assistant answered.' : 'The reply was cut off.');
  };

  view.show(conversation.title,
    h('p', {}, link(`/orgs/${org}/assistant`, 'All conversations')),
    h('p', { class: 'hint' }, `${MODELS.find(([v]) => v === conversation.ai_model)?.[1] || conversation.ai_model} · ${conversation.usage_tokens} tokens so far`),
    turns,
    mine ? composer : h('p', { class: 'hint' }, 'Only the conversation’s author writes in it.'));
}
