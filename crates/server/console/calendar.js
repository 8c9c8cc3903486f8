// The calendar: a week of appointments (mine or everyone's), day by day in this browser's time
// zone, booking one (a member's overlapping booking is refused by the database: 409), cancelling,
// and a private feed for calendar apps.

import {
  api, h, status, navigate, render, link, can, READ_ONLY, form, memberNames, attempt, ApiError,
  shownOnce, every, customerField, customerNames,
} from './app.js';

const STATUS_TEXT = {
  scheduled: 'Scheduled', confirmed: 'Confirmed', completed: 'Completed', cancelled: 'Cancelled', no_show: 'No-show',
};

const dayHeading = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'short' });
const time = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const range = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'long', year: 'numeric' });

/** `YYYY-MM-DD` of a local date. */
function isoDay(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** Midnight (local) of the Monday of the week holding `date`. */
function mondayOf(date) {
  const monday = new Date(date.getFullYear(), date.getMonth(), date.getDate());
  monday.setDate(monday.getDate() - ((monday.getDay() + 6) % 7));
  return monday;
}

/** The day `days` after local midnight `date`, at local midnight (days are not all 24 hours). */
function addDays(date, days) {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate() + days);
}

export async function calendarPage(view, org) {
  const query = new URLSearchParams(location.search);
  const asked = /^\d{4}-\d{2}-\d{2}$/.test(query.get('week') || '') ? new Date(`${query.get('week')}T00:00:00`) : new Date();
  const monday = mondayOf(Number.isNaN(asked.getTime()) ? new Date() : asked);
  const next = addDays(monday, 7);
  const who = query.get('who') || 'me';
  const params = new URLSearchParams({ from: monday.toISOString(), to: next.toISOString() });
  if (who !== 'all') params.set('assigned_to', who);
  params.set('limit', '200');
  const [organization, me, names, appointments] = await Promise.all([
    view.bar(org), api('GET', '/v1/me'), memberNames(org),
    every(`/v1/orgs/${org}/appointments?${params}`).then((all) => all.items)]);
  const writer = can(organization, 'member');
  const customerName = customerNames(org);
  const here = (week, person) => {
    const q = new URLSearchParams({ week: isoDay(week) });
    if (person !== 'me') q.set('who', person);
    return `/orgs/${org}/calendar?${q}`;
  };

  const days = Array.from({ length: 7 }, (_, i) => addDays(monday, i));
  const columns = days.map((date) => {
    const end = addDays(date, 1);
    const mine = appointments.filter((a) => Date.parse(a.start_time) < end && Date.parse(a.end_time) > date);
    const headingId = `day-${isoDay(date)}`;
    return h('section', { class: 'day', 'aria-labelledby': headingId },
      h('h2', { id: headingId, class: isoDay(date) === isoDay(new Date()) ? 'today' : null }, dayHeading.format(date)),
      mine.length === 0 ? h('p', { class: 'hint' }, 'Free') : h('ul', { class: 'appointments' }, mine.map((a) => {
        const cancelled = a.status === 'cancelled' || a.status === 'no_show';
        return h('li', { class: cancelled ? 'appointment cancelled' : 'appointment' },
          h('p', { class: 'when' }, `${time.format(new Date(a.start_time))}–${time.format(new Date(a.end_time))}`),
          h('p', { class: 'what' }, a.title),
          h('p', { class: 'hint' }, [
            STATUS_TEXT[a.status],
            a.customer_id ? customerName(a.customer_id) : null,
            who === 'me' ? null : (a.assigned_to ? names.get(a.assigned_to) || 'another member' : 'nobody'),
            a.location,
          ].filter(Boolean).flatMap((part, i) => (i ? [' · ', part] : [part]))),
          a.meeting_url ? h('p', {}, h('a', { href: a.meeting_url, rel: 'noopener noreferrer', target: '_blank' }, 'Join the meeting')) : null,
          !writer || cancelled || a.status === 'completed' ? null : h('button', {
            type: 'button',
            class: 'link',
            'aria-label': `Cancel “${a.title}” on ${dayHeading.format(new Date(a.start_time))}`,
            onclick: () => attempt(async () => {
              await api('PATCH', `/v1/orgs/${org}/appointments/${a.id}`, { status: 'cancelled' });
              status(`${a.title} cancelled.`);
              render();
            }),
          }, 'Cancel'));
      })));
  });

  const whoLinks = [['me', 'Mine'], ['all', 'Everyone’s']].map(([value, words]) =>
    link(here(monday, value), words, { 'aria-current': who === value ? 'page' : null }));
  const feed = h('div');
  view.show('Calendar',
    h('nav', { class: 'filter-links', 'aria-label': 'Weeks and people' },
      link(here(addDays(monday, -7), who), '← Previous week'),
      link(here(new Date(), who), 'This week'),
      link(here(next, who), 'Next week →'),
      whoLinks),
    h('p', { class: 'hint' }, `Week of ${range.format(monday)}, in ${Intl.DateTimeFormat().resolvedOptions().timeZone}.`),
    h('div', { class: 'week' }, columns),
    writer ? null : h('p', { class: 'hint' }, READ_ONLY),
    !writer ? null : h('details', { class: 'new' }, h('summary', {}, 'Book an appointment'),
      form([
        { name: 'title', label: 'Title', required: true },
        { name: 'day', label: 'Day', type: 'date', required: true, value: isoDay(days.find((d) => isoDay(d) === isoDay(new Date())) || monday) },
        { name: 'start', label: 'From', type: 'time', required: true, value: '09:00' },
        { name: 'end', label: 'Until', type: 'time', required: true, value: '10:00' },
        {
          name: 'assigned_to',
          label: 'With',
          options: [...names],
          value: me.user.id,
          hint: 'The member it belongs to: one member never has two at once.',
        },
        customerField(org, null, { hint: 'Optional. Type a name; choose among the matches.' }),
        { name: 'location', label: 'Where' },
        { name: 'meeting_url', label: 'Meeting link', type: 'url' },
      ], 'Book', async ({ day, start, end, ...rest }) => {
        const starts = new Date(`${day}T${start}`);
        const ends = new Date(`${day}T${end}`);
        // Said at the fields, before anything is sent (a browser gives '' for what it cannot
        // read); an end before the start is on the next day.
        const missing = Object.entries({ day, start, end }).filter(([, v]) => !v).map(([field]) => field);
        if (missing.length) throw new ApiError(422, { errors: missing.map((field) => ({ field, message: 'Choose one.' })) });
        if (ends <= starts) ends.setDate(ends.getDate() + 1);
        const booked = await api('POST', `/v1/orgs/${org}/appointments`, {
          ...rest,
          start_time: starts.toISOString(),
          end_time: ends.toISOString(),
          timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
        });
        status(`${booked.title} booked.`);
        navigate(here(starts, who));
      }, 'book')),
    h('section', { 'aria-labelledby': 'feed-heading' },
      h('h2', { id: 'feed-heading' }, 'In your calendar app'),
      h('p', {}, 'A private address your calendar app can subscribe to, with your appointments. Making a new one ends the old one.'),
      h('button', {
        type: 'button',
        class: 'secondary',
        onclick: () => attempt(async () => {
          const made = await api('POST', `/v1/orgs/${org}/calendar-feed`);
          feed.replaceChildren(shownOnce('Your feed’s address, shown this once:', made.url));
          status('Your feed’s address is shown below, this once.');
        }),
      }, 'Make my feed address'),
      feed));
}
