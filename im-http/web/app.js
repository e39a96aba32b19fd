// The web chat page of im-http: plain JavaScript, no build step, no
// dependencies. It uses only the routes of docs/API.md, so it also shows how a
// client is meant to use them:
//
// - the token comes from the sign-in field or `?token=`, and is kept in
//   sessionStorage (this tab only), never in the address bar;
// - live updates come from one EventSource on `/v1/events`; the browser
//   resends `Last-Event-ID` when it reconnects by itself, and when it gives
//   up (a 503 while the server restarts) the page makes a new one with
//   `?after=<last id>`, so no event is lost either way;
// - the conversation list from `GET /v1/conversations` is the truth for
//   order and unread counts; events update it at once and then it is
//   fetched again, one request at a time;
// - a send carries a `client_id`, and a send that failed for want of an
//   answer is retried with the same one: the server stores it once;
// - everything a user wrote is put in the page as text (textContent or text
//   nodes), never as HTML. The server's Content-Security-Policy refuses
//   inline scripts as a second line of defence;
// - messages change: an edit, a delete or a reaction arrives as an `edit`,
//   `delete` or `reaction` event and is applied in place, in every window;
// - people: a group's members, join requests and bans (its owner approves,
//   refuses, bans and unbans), and blocking the other user of a direct
//   conversation, are in the conversation's header;
// - signals (`typing`, `presence`, `receipt`) come on the same stream
//   without `id:`: a typing line under the conversation, contacts' online
//   dots that change live (no polling), "seen" under your newest read
//   message in a direct conversation and "read by k" in a small group;
// - rooms (`room:<rid>`, joined by id) reach no feed: the stream watches
//   the rooms in the list (`?rooms=`, reopened when they change), and where
//   the server's push strategy skipped messages (`event: gap`) a line offers
//   to load them from history.
'use strict';

// The reactions offered at one click; any other text can be typed.
const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉'];

const TOKEN_KEY = 'im-http.token';
const PAGE = 50;
// A typing signal holds this long unless repeated (the server's 6 s, and a
// little more); ours is repeated every few seconds while typing goes on.
const TYPING_HOLD_MS = 6500;
const TYPING_REPEAT_MS = 3000;
const ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  me: null,
  convs: new Map(), // id -> {id, kind, with, last, unread, read_seq}
  open: null, // {id, messages: [], seqs: Set, hasMore, loadingOlder}
  pending: new Map(), // client_id -> {client_id, conv, text, status, attempts, timer}
  contacts: [],
  es: null,
  lastEventId: null,
  opened: false, // the stream has been open at least once
  reconnectTimer: null,
  backoff: 1000,
  typing: new Map(), // conversation -> Map(user -> timer): who types there
  typingSent: 0, // when our last `typing: true` went out
  reads: new Map(), // user -> read_seq, in the open conversation
  listInFlight: false,
  listDirty: false,
  readInFlight: false,
  readDirty: false,
  era: 0, // bumped at sign-out: answers to an older era's requests are dropped
  replyTo: null, // {seq, text}: the message the composer answers
  watched: [], // the rooms the stream watches
};

// ---------------------------------------------------------------- helpers

// An element with properties and children. Strings become text nodes, so
// data can never turn into markup.
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const enc = encodeURIComponent;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // 0: no answer (network)
    this.code = code;
  }
  get retriable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

// One call of docs/API.md. Throws ApiError; a 401 also signs out, since the
// token is no longer any good.
async function api(method, path, body) {
  const era = state.era;
  const headers = { Authorization: `Bearer ${state.token}` };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  let text;
  try {
    resp = await fetch(path, init);
    text = await resp.text();
  } catch {
    throw new ApiError(0, 'network', 'cannot reach the server');
  }
  if (era !== state.era) throw new ApiError(0, 'signed_out', 'signed out');
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (a proxy's error page): the status says enough.
  }
  if (!resp.ok) {
    const e = data && data.error;
    const err = new ApiError(resp.status, (e && e.code) || `http_${resp.status}`,
      (e && e.message) || resp.statusText || `HTTP ${resp.status}`);
    if (resp.status === 401) signOut(`The server refused the token (${err.message}); sign in again.`);
    throw err;
  }
  return data;
}

// The `sub` claim of a JWT, without checking it: the server does that.
function tokenSubject(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(Array.from(atob(part),
      (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''));
    const sub = JSON.parse(json).sub;
    return typeof sub === 'string' && ID_RE.test(sub) ? sub : null;
  } catch {
    return null;
  }
}

// A client_id for a send: random, and the same for every retry of it.
function newClientId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function dmId(a, b) {
  return 'dm:' + [a, b].sort().join(':');
}

// What a conversation is called: the peer of a DM, the id of a group.
function describe(id) {
  if (id.startsWith('group:')) return { kind: 'group', with: id.slice(6) };
  if (id.startsWith('room:')) return { kind: 'room', with: id.slice(5) };
  const [, a, b] = id.split(':');
  return { kind: 'dm', with: a === state.me ? b : a };
}

function messageText(body) {
  if (body && typeof body.text === 'string') return { text: body.text, json: false };
  return { text: JSON.stringify(body), json: true };
}

function clock(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function shortTime(ts) {
  const d = new Date(ts);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return clock(ts);
  return d.toLocaleDateString([], { month: 'short', day: 'numeric' });
}

function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (d.toDateString() === today.toDateString()) return 'Today';
  if (d.toDateString() === yesterday.toDateString()) return 'Yesterday';
  return d.toLocaleDateString([], { weekday: 'short', month: 'short', day: 'numeric', year: 'numeric' });
}

// A stable colour class for an id's avatar.
function colour(id) {
  let n = 0;
  for (const c of id) n = (n * 31 + c.charCodeAt(0)) >>> 0;
  return `c${n % 8}`;
}

function showError(message, notice = false) {
  const el = $('sidebar-error');
  el.textContent = message;
  el.classList.toggle('notice', notice);
  el.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { el.hidden = true; }, 8000);
}

function visible() {
  return document.visibilityState === 'visible';
}

// ---------------------------------------------------------------- sign in

function boot() {
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn($('token-input').value.trim());
  });
  $('login-form').addEventListener('submit', onLogin);
  $('signout').addEventListener('click', () => signOut());
  $('dm-form').addEventListener('submit', onStartDm);
  $('group-create-form').addEventListener('submit', onCreateGroup);
  $('group-join-form').addEventListener('submit', onJoinGroup);
  $('room-join-form').addEventListener('submit', onJoinRoom);
  $('contact-form').addEventListener('submit', onAddContact);
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    onSend();
  });
  $('reply-cancel').addEventListener('click', () => {
    state.replyTo = null;
    renderReply();
  });
  const input = $('composer-input');
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      onSend();
    }
  });
  input.addEventListener('input', () => {
    input.rows = Math.min(6, input.value.split('\n').length);
    sendTyping(!input.value);
  });
  $('older').addEventListener('click', loadOlder);
  $('messages').addEventListener('scroll', () => {
    if ($('messages').scrollTop < 60) loadOlder();
  });
  document.addEventListener('visibilitychange', () => {
    if (visible()) markReadSoon();
  });

  // A token in the address is moved to sessionStorage and out of the
  // address bar, so that it is neither bookmarked nor shared by accident.
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl.trim());
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token);
  else showSignIn();
}

function showSignIn(error) {
  $('app').hidden = true;
  $('signin').hidden = false;
  const el = $('signin-error');
  el.textContent = error || '';
  el.hidden = !error;
  if (!$('login-password').matches(':focus')) $('login-user').focus();
}

// Signs in with a user id and password: `POST /v1/login` answers a token,
// which is then used as a pasted one would be.
async function onLogin(e) {
  e.preventDefault();
  const button = $('login-form').querySelector('button');
  const user = $('login-user').value.trim();
  const password = $('login-password').value;
  button.disabled = true;
  try {
    let resp;
    let data = null;
    try {
      resp = await fetch('/v1/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ user, password }),
        cache: 'no-store',
      });
      data = await resp.json().catch(() => null);
    } catch {
      showSignIn('Cannot reach the server.');
      return;
    }
    if (!resp.ok) {
      const e = data && data.error;
      const why = resp.status === 401 ? 'Wrong user id or password.'
        : resp.status === 429 ? `Too many attempts: try again in ${resp.headers.get('Retry-After') || 'a few'} seconds.`
        : (e && e.message) || `HTTP ${resp.status}`;
      showSignIn(why);
      $('login-password').select();
      return;
    }
    $('login-password').value = '';
    signIn(data.token);
  } finally {
    button.disabled = false;
  }
}

function signIn(token) {
  const me = tokenSubject(token);
  if (!me) {
    showSignIn('That is not a token this server signs (a JWT whose "sub" is a user id).');
    return;
  }
  state.token = token;
  state.me = me;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token-input').value = '';
  $('me').textContent = me;
  $('signin').hidden = true;
  $('app').hidden = false;
  renderConversations();
  connect();
  // At once, for a quick answer to a bad token; the stream's `open` event
  // fetches the list again once no event can slip between the two.
  refreshConversations();
  // Presence then changes live (`event: presence`): no polling.
  refreshContacts();
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted) openConversation(wanted);
}

function signOut(error) {
  state.era += 1;
  if (state.es) state.es.close();
  clearTimeout(state.reconnectTimer);
  for (const users of state.typing.values()) for (const t of users.values()) clearTimeout(t);
  for (const p of state.pending.values()) clearTimeout(p.timer);
  Object.assign(state, {
    token: null, me: null, convs: new Map(), open: null, pending: new Map(), contacts: [],
    es: null, lastEventId: null, opened: false, backoff: 1000, typing: new Map(), reads: new Map(),
    listInFlight: false, listDirty: false, readInFlight: false, readDirty: false,
  });
  sessionStorage.removeItem(TOKEN_KEY);
  history.replaceState(null, '', location.pathname);
  $('open-conversation').hidden = true;
  $('no-conversation').hidden = false;
  document.title = 'im chat';
  showSignIn(error);
}

// ---------------------------------------------------------------- events

function setStatus(live, text) {
  const el = $('status');
  el.textContent = text || (live ? 'live' : 'reconnecting…');
  el.classList.toggle('live', live);
}

// Opens the event stream, resuming after the last event seen.
function connect() {
  if (state.es) state.es.close();
  const params = new URLSearchParams({ access_token: state.token });
  if (state.lastEventId) params.set('after', state.lastEventId);
  // Rooms write nothing to our feed: the stream watches them (up to 16).
  state.watched = roomIds();
  if (state.watched.length) params.set('rooms', state.watched.join(','));
  const es = new EventSource(`/v1/events?${params}`);
  state.es = es;
  es.addEventListener('open', () => {
    setStatus(true);
    state.backoff = 1000;
    // The first time: load the list now that every later event will reach
    // us. After a reconnect: catch up with whatever the cursor could not
    // cover (a stream that had seen no event yet), and resend.
    resync();
    state.opened = true;
  });
  es.addEventListener('error', () => {
    if (state.es !== es) return;
    setStatus(false);
    // The browser retries by itself after a dropped connection (with
    // Last-Event-ID); it gives up on an answer that is not a stream (a 503
    // while the server stops, a 401). Then: a new one, a little later.
    if (es.readyState === EventSource.CLOSED) {
      clearTimeout(state.reconnectTimer);
      state.reconnectTimer = setTimeout(reconnect, state.backoff);
      state.backoff = Math.min(state.backoff * 2, 15000);
    }
  });
  const on = (name, f) => es.addEventListener(name, (e) => {
    if (state.es !== es) return;
    if (e.lastEventId) state.lastEventId = e.lastEventId;
    let data;
    try {
      data = JSON.parse(e.data);
    } catch {
      return;
    }
    f(data);
  });
  on('message', onMessage);
  on('edit', onChanged);
  on('delete', (d) => changeLocally(d.conversation, d.seq, (m) => {
    m.body = null;
    m.deleted_at = d.deleted_at;
    delete m.edited_at;
    delete m.reactions;
  }));
  on('reaction', (d) => changeLocally(d.conversation, d.seq, (m) => {
    const list = m.reactions || [];
    let r = list.find((x) => x.key === d.key);
    if (!r) {
      r = { key: d.key, count: 0, me: false };
      list.push(r);
    }
    const added = d.change === 'added';
    r.count += added ? 1 : -1;
    if (d.user === state.me) r.me = added;
    m.reactions = list.filter((x) => x.count > 0);
  }));
  on('read', (d) => {
    const conv = state.convs.get(d.conversation);
    if (conv) conv.read_seq = Math.max(conv.read_seq || 0, d.seq);
    refreshConversations();
  });
  on('member', (d) => {
    // Removed (or banned): the group goes from the list, even one with no
    // message yet, which the list would otherwise keep.
    if (d.user === state.me && d.change === 'left') state.convs.delete(`group:${d.group}`);
    refreshConversations();
    if (state.open && state.open.id === `group:${d.group}`) loadHeader(state.open);
    if (d.user === state.me && d.change === 'left' && state.open && state.open.id === `group:${d.group}`) {
      showError(`You are no longer a member of ${d.group}.`);
    }
  });
  // A room's messages it skipped (the server paces rooms): a line in their
  // place offers to load them from history.
  on('gap', onGap);
  on('join_request', (d) => {
    showError(`${d.user} asks to join ${d.group}.`, true);
    if (state.open && state.open.id === `group:${d.group}`) loadHeader(state.open);
  });
  // Signals: no `id:`, never replayed, only news of the moment.
  on('typing', onTyping);
  on('presence', onPresence);
  on('receipt', (d) => {
    if (!isOpen(d.conversation)) return;
    state.reads.set(d.user, Math.max(state.reads.get(d.user) || 0, d.read_seq));
    renderMessages({});
  });
  on('reset', () => {
    // The server could not resume from our cursor: start again from what
    // it holds, and refetch everything we show.
    refreshConversations();
    if (state.open) reloadOpen();
  });
}

// The rooms in the list, as the stream's `rooms=` (the most recent 16).
function roomIds() {
  return [...state.convs.values()].filter((c) => c.kind === 'room').map((c) => c.with).slice(0, 16).sort();
}

// Reopens the stream when the rooms to watch changed (a join, a leave).
function watchRooms() {
  const want = roomIds();
  const have = state.watched || [];
  if (state.es && (want.length !== have.length || want.some((r, i) => r !== have[i]))) connect();
}

function onGap(d) {
  const n = d.to_seq - d.from_seq + 1;
  const conv = state.convs.get(d.conversation);
  if (conv && !(isOpen(d.conversation) && visible())) conv.unread += n;
  if (isOpen(d.conversation)) {
    state.open.gaps.push({ from: d.from_seq, to: d.to_seq });
    renderMessages({});
  }
  renderConversations();
}

// Pages a gap's messages in from history, and drops its line.
async function loadGap(open, gap) {
  try {
    const page = await api('GET', `/v1/conversations/${enc(open.id)}/messages?after=${gap.from - 1}&limit=${Math.min(gap.to - gap.from + 1, 500)}`);
    if (state.open !== open) return;
    insertMessages(open, page.messages.filter((m) => m.seq <= gap.to));
    const loaded = page.messages.length ? page.messages[page.messages.length - 1].seq : gap.to;
    open.gaps = open.gaps.filter((g) => g !== gap);
    if (loaded < gap.to) open.gaps.push({ from: loaded + 1, to: gap.to });
    renderMessages({});
  } catch (err) {
    if (err.code !== 'signed_out') showError(`Could not load the skipped messages: ${err.message}`);
  }
}

async function reconnect() {
  // A cheap call first: a 401 signs out instead of retrying forever.
  try {
    await api('GET', '/v1/conversations?limit=1');
  } catch (e) {
    if (e.status === 401 || e.code === 'signed_out') return;
    state.reconnectTimer = setTimeout(reconnect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 15000);
    return;
  }
  connect();
}

function resync() {
  refreshConversations();
  refreshContacts();
  if (state.opened && state.open) catchUp(state.open);
  for (const p of state.pending.values()) {
    if (p.status === 'retrying') {
      clearTimeout(p.timer);
      attemptSend(p);
    }
  }
}

function onTyping(d) {
  const users = state.typing.get(d.conversation) || new Map();
  clearTimeout(users.get(d.user));
  if (d.typing) {
    users.set(d.user, setTimeout(() => onTyping({ ...d, typing: false }), TYPING_HOLD_MS));
  } else {
    users.delete(d.user);
  }
  state.typing.set(d.conversation, users);
  renderTyping();
}

function renderTyping() {
  const users = state.open ? [...(state.typing.get(state.open.id) || new Map()).keys()] : [];
  $('typing').textContent = users.length === 0 ? ''
    : users.length === 1 ? `${users[0]} is typing…`
      : `${users.slice(0, 3).join(', ')} are typing…`;
}

function onPresence(d) {
  const c = state.contacts.find((x) => x.id === d.user);
  if (c) {
    c.online = d.online;
    renderContacts();
  }
  if (state.open && state.open.kind === 'dm' && state.open.with === d.user) loadHeader(state.open);
}

// Tells the others we type: at most once per TYPING_REPEAT_MS while it
// goes on; `stop` when the message went or the box was emptied.
function sendTyping(stop) {
  if (!state.open) return;
  const now = Date.now();
  if (!stop && now - state.typingSent < TYPING_REPEAT_MS) return;
  if (stop && !state.typingSent) return;
  state.typingSent = stop ? 0 : now;
  api('POST', `/v1/conversations/${enc(state.open.id)}/typing`, { typing: !stop }).catch(() => {});
}

// Every participant's read cursor of the open conversation, for "seen".
async function loadReads(open) {
  try {
    const data = await api('GET', `/v1/conversations/${enc(open.id)}/reads?limit=100`);
    if (state.open !== open) return;
    state.reads = new Map(data.reads.map((r) => [r.user, r.read_seq]));
    renderMessages({});
  } catch {
    // Receipts are a nicety; the conversation works without them.
  }
}

// "seen" (direct) or "read by k" (small groups) under my newest message
// that others have read.
function receiptFor(open, m) {
  if (m.from !== state.me) return null;
  const mine = open.messages.filter((x) => x.from === state.me);
  const readers = [...state.reads].filter(([u, seq]) => u !== state.me && seq >= m.seq).length;
  if (readers === 0) return null;
  const newerRead = mine.some((x) => x.seq > m.seq
    && [...state.reads].some(([u, seq]) => u !== state.me && seq >= x.seq));
  if (newerRead) return null;
  return h('span', { class: 'receipt' }, open.kind === 'dm' ? 'seen' : `read by ${readers}`);
}

function onMessage(msg) {
  const id = msg.conversation;
  if (msg.from === state.me && msg.client_id) {
    const p = state.pending.get(msg.client_id);
    if (p && p.conv === id) {
      clearTimeout(p.timer);
      state.pending.delete(msg.client_id);
    }
  }
  let conv = state.convs.get(id);
  if (!conv) {
    conv = { id, ...describe(id), last: null, unread: 0, read_seq: 0 };
    state.convs.set(id, conv);
  }
  if (!conv.last || msg.seq > conv.last.seq) {
    conv.last = msg;
    if (msg.from === state.me) conv.unread = 0; // sending moves our read cursor
    else if (!(isOpen(id) && visible())) conv.unread += 1;
    // Newest activity first.
    state.convs.delete(id);
    state.convs = new Map([[id, conv], ...state.convs]);
  }
  if (isOpen(id)) {
    insertMessages(state.open, [msg]);
    renderMessages({ stick: msg.from === state.me });
    if (msg.from !== state.me) markReadSoon();
  }
  renderConversations();
  refreshConversations();
}

// A message as it now is (an answer, an `edit` event): replaces the one
// shown, and the list's preview when it is the newest.
function onChanged(msg) {
  changeLocally(msg.conversation, msg.seq, (m) => {
    for (const k of Object.keys(m)) delete m[k];
    Object.assign(m, msg);
  });
}

// Applies `edit` to message `seq` of `id` where it is shown.
function changeLocally(id, seq, edit) {
  const conv = state.convs.get(id);
  if (conv && conv.last && conv.last.seq === seq) {
    edit(conv.last);
    renderConversations();
  }
  if (isOpen(id)) {
    const m = state.open.messages.find((x) => x.seq === seq);
    if (m) {
      edit(m);
      renderMessages({});
    }
  }
}

// ---------------------------------------------------------------- list

function isOpen(id) {
  return state.open !== null && state.open.id === id;
}

// Fetches the conversation list, one request at a time: a call while one
// is out makes one more afterwards, so the last answer is never stale.
async function refreshConversations() {
  if (state.listInFlight) {
    state.listDirty = true;
    return;
  }
  state.listInFlight = true;
  try {
    do {
      state.listDirty = false;
      const data = await api('GET', '/v1/conversations?limit=200');
      const next = new Map();
      for (const c of data.conversations) next.set(c.id, c);
      // Conversations started here that have no message yet stay listed.
      for (const [id, c] of state.convs) {
        if (!next.has(id) && !c.last) next.set(id, c);
      }
      state.convs = next;
      renderConversations();
    } while (state.listDirty);
    watchRooms();
    // An answer read before our last mark-read landed may show the open
    // conversation unread: mark it again (a no-op on the server).
    const open = state.open && state.convs.get(state.open.id);
    if (open && open.unread) markReadSoon();
  } catch (e) {
    if (e.code !== 'signed_out' && e.status !== 0) showError(`Could not load conversations: ${e.message}`);
  } finally {
    state.listInFlight = false;
  }
}

function renderConversations() {
  const list = $('conversations');
  const items = [];
  let unread = 0;
  for (const c of state.convs.values()) {
    unread += c.unread;
    const group = c.kind !== 'dm';
    const mark = c.kind === 'room' ? '◇' : '#';
    let preview = 'No messages yet';
    if (c.last) {
      const who = c.last.from === state.me ? 'You' : c.last.from;
      const text = c.last.deleted_at ? 'deleted message' : messageText(c.last.body).text;
      preview = group || c.last.from === state.me ? `${who}: ${text}` : text;
    }
    const classes = [isOpen(c.id) ? 'active' : '', c.unread ? 'unread' : ''].join(' ').trim();
    items.push(h('li', { class: classes, 'data-id': c.id, title: c.id, onclick: () => openConversation(c.id) },
      h('span', { class: `avatar ${group ? 'group' : ''} ${colour(c.with)}`, 'aria-hidden': 'true' },
        group ? mark : c.with.slice(0, 1)),
      h('span', { class: 'name' }, group ? `${mark} ${c.with}` : c.with),
      h('span', { class: 'time' }, c.last ? shortTime(c.last.ts) : ''),
      h('span', { class: 'preview' }, preview),
      c.unread ? h('span', { class: 'badge', 'aria-label': `${c.unread} unread` }, c.unread > 99 ? '99+' : c.unread) : h('span')));
  }
  list.replaceChildren(...items);
  $('conversations-empty').hidden = items.length > 0;
  document.title = unread ? `(${unread}) im chat` : 'im chat';
}

// ---------------------------------------------------------------- contacts

async function refreshContacts() {
  if (!state.token) return;
  try {
    // Pages of up to 1000, newest link first, following `next`; the side
    // bar shows at most the first few thousand.
    const contacts = [];
    let after = null;
    for (let page = 0; page < 5; page++) {
      const query = after === null ? '' : `&after=${enc(after)}`;
      const data = await api('GET', `/v1/contacts?limit=1000${query}`);
      contacts.push(...data.contacts);
      if (!data.has_more) break;
      after = data.next;
    }
    state.contacts = contacts;
    renderContacts();
  } catch (e) {
    if (e.code !== 'signed_out' && e.status !== 0) showError(`Could not load contacts: ${e.message}`);
  }
}

function renderContacts() {
  const items = [...state.contacts]
    .sort((a, b) => (b.online - a.online) || a.id.localeCompare(b.id))
    .map((c) => h('li', { 'data-id': c.id, title: `Message ${c.id}`, onclick: () => startDm(c.id) },
      h('span', { class: `dot ${c.online ? 'online' : ''}`, 'aria-hidden': 'true' }),
      h('span', { class: 'contact-name' }, c.id),
      h('span', { class: 'seen' }, c.online ? 'online' : 'offline')));
  $('contacts').replaceChildren(...items);
}

async function onAddContact(e) {
  e.preventDefault();
  const input = $('contact-input');
  const uid = input.value.trim();
  if (!ID_RE.test(uid)) return showError('A user id is 1 to 64 letters, digits, "_", "." or "-".');
  try {
    await api('PUT', `/v1/contacts/${enc(uid)}`);
    input.value = '';
    refreshContacts();
  } catch (err) {
    showError(err.status === 404 ? `There is no user "${uid}".` : `Could not add ${uid}: ${err.message}`);
  }
}

// ---------------------------------------------------------------- new conversations

async function startDm(uid) {
  if (!ID_RE.test(uid)) return showError('A user id is 1 to 64 letters, digits, "_", "." or "-".');
  try {
    await api('GET', `/v1/users/${enc(uid)}`);
  } catch (err) {
    return showError(err.status === 404 ? `There is no user "${uid}".` : err.message);
  }
  const id = dmId(state.me, uid);
  if (!state.convs.has(id)) {
    state.convs = new Map([[id, { id, kind: 'dm', with: uid, last: null, unread: 0, read_seq: 0 }], ...state.convs]);
  }
  openConversation(id);
  return undefined;
}

function onStartDm(e) {
  e.preventDefault();
  const input = $('dm-input');
  const uid = input.value.trim();
  input.value = '';
  startDm(uid);
}

function addGroupLocally(gid) {
  const id = `group:${gid}`;
  if (!state.convs.has(id)) {
    state.convs = new Map([[id, { id, kind: 'group', with: gid, last: null, unread: 0, read_seq: 0 }], ...state.convs]);
  }
  openConversation(id);
  refreshConversations();
}

async function onCreateGroup(e) {
  e.preventDefault();
  const input = $('group-create-input');
  const gid = input.value.trim();
  if (!ID_RE.test(gid)) return showError('A group id is 1 to 64 letters, digits, "_", "." or "-".');
  try {
    // PUT on an existing group would update it: look first.
    await api('GET', `/v1/groups/${enc(gid)}`);
    return showError(`The group "${gid}" exists already; join it instead.`);
  } catch (err) {
    if (err.status !== 404) return showError(err.message);
  }
  try {
    await api('PUT', `/v1/groups/${enc(gid)}`, { join: $('group-join-policy').value });
    input.value = '';
    addGroupLocally(gid);
  } catch (err) {
    showError(`Could not create ${gid}: ${err.message}`);
  }
  return undefined;
}

async function onJoinGroup(e) {
  e.preventDefault();
  const input = $('group-join-input');
  const gid = input.value.trim();
  if (!ID_RE.test(gid)) return showError('A group id is 1 to 64 letters, digits, "_", "." or "-".');
  try {
    const answer = await api('PUT', `/v1/groups/${enc(gid)}/members/${enc(state.me)}`);
    input.value = '';
    // An `approval` group: the owner lets us in, and the `member` event
    // brings the group into the list then.
    if (answer && answer.status === 'requested') return showError(`Asked the owner of ${gid} to let you in.`, true);
    addGroupLocally(gid);
  } catch (err) {
    const why = { 404: `There is no group "${gid}".` }[err.status]
      || (err.code === 'banned' ? `You are banned from ${gid}.` : `Could not join ${gid}: ${err.message}`);
    showError(why);
  }
  return undefined;
}

async function onJoinRoom(e) {
  e.preventDefault();
  const input = $('room-join-input');
  const rid = input.value.trim();
  if (!ID_RE.test(rid)) return showError('A room id is 1 to 64 letters, digits, "_", "." or "-".');
  try {
    await api('PUT', `/v1/rooms/${enc(rid)}/members/${enc(state.me)}`);
    input.value = '';
    const id = `room:${rid}`;
    if (!state.convs.has(id)) {
      state.convs = new Map([[id, { id, kind: 'room', with: rid, last: null, unread: 0, read_seq: 0 }], ...state.convs]);
    }
    watchRooms();
    openConversation(id);
    refreshConversations();
  } catch (err) {
    const why = { 404: `There is no room "${rid}".`, 403: `The room "${rid}" takes members by invitation only.` }[err.status]
      || `Could not join ${rid}: ${err.message}`;
    showError(why);
  }
  return undefined;
}

// ---------------------------------------------------------------- one conversation

async function openConversation(id) {
  if (isOpen(id)) return;
  const open = { id, ...describe(id), messages: [], seqs: new Set(), gaps: [], hasMore: false, loadingOlder: false, loaded: false };
  state.open = open;
  state.replyTo = null;
  renderReply();
  history.replaceState(null, '', `${location.pathname}${location.search}#${enc(id)}`);
  $('no-conversation').hidden = true;
  $('open-conversation').hidden = false;
  $('conv-title').textContent = { group: `# ${open.with}`, room: `◇ ${open.with}` }[open.kind] || open.with;
  $('conv-sub').textContent = '';
  $('conv-tools').replaceChildren();
  renderConversations();
  renderMessages({ stick: true });
  $('composer-input').focus();
  state.reads = new Map();
  renderTyping();
  loadHeader(open);
  loadReads(open);
  await reloadOpen();
}

// The newest page of the open conversation, from scratch.
async function reloadOpen() {
  const open = state.open;
  try {
    const page = await api('GET', `/v1/conversations/${enc(open.id)}/messages?limit=${PAGE}`);
    if (state.open !== open) return;
    open.messages = [];
    open.seqs = new Set();
    open.gaps = [];
    insertMessages(open, page.messages);
    open.hasMore = page.has_more;
    open.loaded = true;
    renderMessages({ stick: true });
    markReadSoon();
    fillViewport();
  } catch (err) {
    if (state.open === open && err.code !== 'signed_out') {
      $('conv-sub').textContent = err.status === 403 ? 'you are not a participant' : `could not load: ${err.message}`;
    }
  }
}

// After a reconnect: every message after the newest one shown.
async function catchUp(open) {
  if (!open.loaded) return reloadOpen();
  try {
    let more = true;
    while (more && state.open === open) {
      const last = open.messages.length ? open.messages[open.messages.length - 1].seq : 0;
      const page = await api('GET', `/v1/conversations/${enc(open.id)}/messages?after=${last}&limit=500`);
      if (state.open !== open) return undefined;
      insertMessages(open, page.messages);
      more = page.has_more && page.messages.length > 0;
    }
    renderMessages({});
    markReadSoon();
  } catch {
    // The next reconnect tries again.
  }
  return undefined;
}

async function loadHeader(open) {
  try {
    if (open.kind === 'group') {
      const g = await api('GET', `/v1/groups/${enc(open.with)}`);
      if (state.open !== open) return;
      // The owner deletes anyone's message: its page offers that.
      if (open.owner !== g.owner) {
        open.owner = g.owner;
        renderMessages({});
      }
      const join = { open: 'open group', invite: 'invite only', approval: 'joins need approval' }[g.join];
      $('conv-sub').textContent = `${g.members} member${g.members === 1 ? '' : 's'} · ${join} · owner ${g.owner}`;
      await renderPeople(open, g);
    } else if (open.kind === 'room') {
      const r = await api('GET', `/v1/rooms/${enc(open.with)}`);
      if (state.open !== open) return;
      if (open.owner !== r.owner) {
        open.owner = r.owner;
        renderMessages({});
      }
      const join = { open: 'open room', invite: 'invite only' }[r.join];
      $('conv-sub').textContent = `room · ${r.members} member${r.members === 1 ? '' : 's'} · ${join} · owner ${r.owner}`;
    } else {
      const u = await api('GET', `/v1/users/${enc(open.with)}`);
      if (state.open !== open) return;
      $('conv-sub').textContent = u.online ? 'online'
        : u.last_seen ? `last seen ${shortTime(u.last_seen)}` : 'offline';
      await renderBlock(open);
    }
  } catch {
    // The header is a nicety; the conversation works without it.
  }
}

// ---------------------------------------------------------------- people

// A group's members, and for its owner the join requests and bans, each
// with what the owner may do about it.
async function renderPeople(open, g) {
  const owner = g.owner === state.me;
  const base = `/v1/groups/${enc(g.id)}`;
  const [members, requests, bans] = await Promise.all([
    api('GET', `${base}/members`).then((r) => r.members).catch(() => null),
    owner ? api('GET', `${base}/requests`).then((r) => r.requests) : [],
    owner ? api('GET', `${base}/bans`).then((r) => r.bans) : [],
  ]);
  if (state.open !== open) return;
  const act = (label, title, method, path) => h('button', {
    type: 'button',
    class: 'act',
    title,
    onclick: async () => {
      try {
        await api(method, path);
      } catch (err) {
        showError(err.message);
      }
      loadHeader(open);
    },
  }, label);
  const list = (cls, label, rows) => rows.length === 0 ? null
    : h('section', { class: cls }, h('h3', { text: label }), h('ul', {}, rows));
  const summary = `people${requests.length ? ` · ${requests.length} asking to join` : ''}`;
  const memberRows = (members || []).map((m) => h('li', { 'data-user': m.id },
    h('span', { text: m.role === 'owner' ? `${m.id} (owner)` : m.id }),
    owner && m.id !== state.me
      ? act('Ban', `Remove ${m.id} and refuse its return`, 'PUT', `${base}/bans/${enc(m.id)}`) : null));
  const requestRows = requests.map((r) => h('li', { 'data-request': r.user },
    h('span', { text: r.user }),
    act('Approve', `Let ${r.user} in`, 'PUT', `${base}/members/${enc(r.user)}`),
    act('Refuse', `Refuse ${r.user}'s request`, 'DELETE', `${base}/requests/${enc(r.user)}`)));
  const banRows = bans.map((b) => h('li', { 'data-ban': b.id },
    h('span', { text: b.id }),
    act('Unban', `Lift the ban of ${b.id}`, 'DELETE', `${base}/bans/${enc(b.id)}`)));
  const panel = h('details', { id: 'people', class: 'people', open: open.peopleOpen },
    h('summary', { text: summary }),
    h('div', { class: 'people-panel' },
      list('members', 'Members', memberRows),
      list('requests', 'Asking to join', requestRows),
      list('bans', 'Banned', banRows)));
  panel.addEventListener('toggle', () => { open.peopleOpen = panel.open; });
  $('conv-tools').replaceChildren(panel);
}

// Block or unblock the other user of a direct conversation.
async function renderBlock(open) {
  let blocks;
  try {
    blocks = (await api('GET', '/v1/blocks')).blocks;
  } catch {
    return;
  }
  if (state.open !== open) return;
  const blocked = blocks.some((b) => b.id === open.with);
  const button = h('button', {
    id: 'block-toggle',
    type: 'button',
    class: 'act',
    title: blocked ? `Let ${open.with} write to you again` : `Hear nothing from ${open.with} here`,
    onclick: async () => {
      try {
        await api(blocked ? 'DELETE' : 'PUT', `/v1/blocks/${enc(open.with)}`);
      } catch (err) {
        showError(err.message);
      }
      loadHeader(open);
    },
  }, blocked ? 'Unblock' : 'Block');
  $('conv-tools').replaceChildren(blocked ? h('span', { class: 'sub', text: 'blocked' }) : '', button);
}

async function loadOlder() {
  const open = state.open;
  if (!open || !open.hasMore || open.loadingOlder || !open.messages.length) return;
  open.loadingOlder = true;
  try {
    const first = open.messages[0].seq;
    const page = await api('GET', `/v1/conversations/${enc(open.id)}/messages?before=${first}&limit=${PAGE}`);
    open.loadingOlder = false;
    if (state.open !== open) return;
    insertMessages(open, page.messages);
    open.hasMore = page.has_more;
    renderMessages({ keepTop: true });
    fillViewport();
  } catch (err) {
    open.loadingOlder = false;
    if (err.code !== 'signed_out') showError(`Could not load earlier messages: ${err.message}`);
  }
}

// Loads earlier pages until the list can scroll, so scrolling up can page.
function fillViewport() {
  const box = $('messages');
  if (state.open && state.open.hasMore && box.scrollHeight <= box.clientHeight + 60) loadOlder();
}

function insertMessages(open, messages) {
  let sorted = true;
  for (const m of messages) {
    if (m.conversation !== open.id || open.seqs.has(m.seq)) continue;
    const last = open.messages[open.messages.length - 1];
    if (last && last.seq > m.seq) sorted = false;
    open.messages.push(m);
    open.seqs.add(m.seq);
  }
  if (!sorted) open.messages.sort((a, b) => a.seq - b.seq);
}

// Redraws the open conversation. `stick`: scroll to the newest message
// (else only when already at the bottom); `keepTop`: keep what is on
// screen in place while earlier messages appear above it.
function renderMessages({ stick = false, keepTop = false }) {
  const open = state.open;
  if (!open) return;
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const oldHeight = box.scrollHeight;
  const oldTop = box.scrollTop;

  // A run is consecutive messages of one sender, a few minutes apart, on
  // one day: the sender's name shows on its first, the time on its last.
  const items = [];
  const msgs = open.messages;
  const sameRun = (a, b) => a && b && a.from === b.from && b.ts - a.ts < 5 * 60000
    && dayLabel(a.ts) === dayLabel(b.ts);
  const gaps = [...(open.gaps || [])].sort((a, b) => a.from - b.from);
  const gapItem = (gap) => {
    const n = gap.to - gap.from + 1;
    return h('li', { class: 'gap', 'data-from': gap.from, 'data-to': gap.to },
      h('button', { type: 'button', onclick: () => loadGap(open, gap) },
        `Load the ${n} skipped message${n === 1 ? '' : 's'}`));
  };
  msgs.forEach((m, i) => {
    while (gaps.length && gaps[0].to < m.seq) items.push(gapItem(gaps.shift()));
    if (i === 0 || dayLabel(msgs[i - 1].ts) !== dayLabel(m.ts)) {
      items.push(h('li', { class: 'day' }, dayLabel(m.ts)));
    }
    items.push(messageItem(open, m, sameRun(msgs[i - 1], m), !sameRun(m, msgs[i + 1])));
  });
  for (const gap of gaps) items.push(gapItem(gap));
  for (const p of state.pending.values()) {
    if (p.conv === open.id) items.push(pendingItem(p));
  }
  $('message-list').replaceChildren(...items);
  $('older').hidden = !open.hasMore;
  $('older').disabled = open.loadingOlder;

  if (keepTop) box.scrollTop = oldTop + (box.scrollHeight - oldHeight);
  else if (stick || atBottom) box.scrollTop = box.scrollHeight;
}

function messageItem(open, m, cont, lastOfRun) {
  const mine = m.from === state.me;
  const deleted = Boolean(m.deleted_at);
  const { text, json } = deleted ? { text: 'This message was deleted', json: false } : messageText(m.body);
  const showFrom = !mine && open.kind !== 'dm' && !cont;
  const classes = ['msg', mine ? 'mine' : '', cont ? 'cont' : '', deleted ? 'deleted' : ''].join(' ').trim();
  const meta = [lastOfRun ? clock(m.ts) : null, m.edited_at ? 'edited' : null].filter(Boolean).join(' · ');
  return h('li', { class: classes, 'data-seq': m.seq, 'data-from': m.from, title: new Date(m.ts).toLocaleString() },
    showFrom ? h('span', { class: 'from' }, m.from) : null,
    m.reply_to ? replyQuote(open, m.reply_to) : null,
    h('div', { class: `bubble ${json ? 'json' : ''}` }, text),
    m.reactions && m.reactions.length ? h('div', { class: 'reactions' },
      ...m.reactions.map((r) => h('button', {
        type: 'button',
        class: `reaction ${r.me ? 'me' : ''}`.trim(),
        'data-key': r.key,
        title: r.me ? 'Take your reaction back' : 'React the same',
        onclick: () => react(open, m, r.key, !r.me),
      }, `${r.key} ${r.count}`))) : null,
    deleted ? null : messageActions(open, m, mine, text),
    meta ? h('span', { class: 'meta' }, meta) : null,
    receiptFor(open, m));
}

// The quote of the message replied to, as far as it is loaded.
function replyQuote(open, seq) {
  const q = open.messages.find((x) => x.seq === seq);
  const text = !q ? `message #${seq}` : q.deleted_at ? 'deleted message' : messageText(q.body).text;
  return h('div', { class: 'quote', 'data-reply-to': seq }, q ? `${q.from}: ${text}` : text);
}

// Reply, react, and for what the user may change, edit and delete.
function messageActions(open, m, mine, text) {
  const owner = open.kind !== 'dm' && open.owner === state.me;
  const act = (name, label, title, f) => h('button', { type: 'button', class: 'act', 'data-action': name, title, onclick: f }, label);
  return h('div', { class: 'actions' },
    act('reply', '↩', 'Reply', () => startReply(m, text)),
    ...QUICK_REACTIONS.map((k) => act(`react-${k}`, k, `React ${k}`, () => react(open, m, k, true))),
    act('react', '+', 'React with any text', () => {
      const key = prompt('React with:');
      if (key) react(open, m, key, true);
    }),
    mine ? act('edit', '✎', 'Edit', () => editMessage(open, m, text)) : null,
    mine || owner ? act('delete', '🗑', 'Delete for everyone', () => deleteMessage(open, m)) : null);
}

function messagePath(open, m) {
  return `/v1/conversations/${enc(open.id)}/messages/${m.seq}`;
}

// Every change answers the message as it now is; the event that follows
// changes nothing more.
async function react(open, m, key, add) {
  try {
    onChanged(await api(add ? 'PUT' : 'DELETE', `${messagePath(open, m)}/reactions/${enc(key)}`));
  } catch (err) {
    if (err.code !== 'signed_out') showError(`Could not react: ${err.message}`);
  }
}

async function editMessage(open, m, text) {
  const body = prompt('Edit your message:', text);
  if (body === null || body === text || !body.trim()) return;
  try {
    onChanged(await api('PATCH', messagePath(open, m), { body: { text: body } }));
  } catch (err) {
    if (err.code !== 'signed_out') showError(`Could not edit: ${err.message}`);
  }
}

async function deleteMessage(open, m) {
  if (!confirm('Delete this message for everyone?')) return;
  try {
    onChanged(await api('DELETE', messagePath(open, m)));
  } catch (err) {
    if (err.code !== 'signed_out') showError(`Could not delete: ${err.message}`);
  }
}

function startReply(m, text) {
  state.replyTo = { seq: m.seq, text: `${m.from}: ${text}` };
  renderReply();
  $('composer-input').focus();
}

function renderReply() {
  const bar = $('reply-bar');
  bar.hidden = !state.replyTo;
  $('reply-text').textContent = state.replyTo ? `Replying to ${state.replyTo.text}` : '';
}

function pendingItem(p) {
  const failed = p.status === 'failed';
  return h('li', { class: `msg mine ${failed ? 'failed' : 'pending'}`, 'data-client-id': p.client_id },
    h('div', { class: 'bubble' }, p.text),
    h('span', { class: 'meta' },
      failed ? `not sent: ${p.error} ` : p.status === 'retrying' ? 'waiting for the server… ' : 'sending…',
      failed ? h('button', { type: 'button', class: 'retry', onclick: () => attemptSend(p) }, 'Retry') : null));
}

// ---------------------------------------------------------------- send and read

function onSend() {
  const input = $('composer-input');
  const text = input.value;
  if (!state.open || !text.trim()) return;
  input.value = '';
  input.rows = 1;
  sendTyping(true);
  const p = {
    client_id: newClientId(), conv: state.open.id, text, reply_to: state.replyTo ? state.replyTo.seq : null,
    status: 'sending', attempts: 0, timer: null,
  };
  state.replyTo = null;
  renderReply();
  state.pending.set(p.client_id, p);
  renderMessages({ stick: true });
  attemptSend(p);
}

// Sends, and on no answer (or a 5xx, a 429) tries again with the same
// client_id: the server keeps the first one it got, so nothing is doubled
// even when the first try did arrive and only its answer was lost.
async function attemptSend(p) {
  if (p.inFlight || !state.pending.has(p.client_id)) return;
  p.inFlight = true;
  p.attempts += 1;
  clearTimeout(p.timer);
  try {
    const send = { body: { text: p.text }, client_id: p.client_id };
    if (p.reply_to) send.reply_to = p.reply_to;
    const msg = await api('POST', `/v1/conversations/${enc(p.conv)}/messages`, send);
    state.pending.delete(p.client_id);
    onMessage(msg);
  } catch (err) {
    if (err.code === 'signed_out') return;
    if (err.retriable && p.attempts < 12) {
      p.status = 'retrying';
      p.timer = setTimeout(() => attemptSend(p), Math.min(1000 * p.attempts, 5000));
    } else {
      p.status = 'failed';
      p.error = err.message;
      p.attempts = 0;
    }
  } finally {
    p.inFlight = false;
    if (state.pending.has(p.client_id) && isOpen(p.conv)) renderMessages({});
  }
}

// Marks the open conversation read up to its newest message, when the
// page is visible; one request at a time.
async function markReadSoon() {
  const open = state.open;
  if (!open || !open.loaded || !visible() || !open.messages.length) return;
  if (state.readInFlight) {
    state.readDirty = true;
    return;
  }
  const conv = state.convs.get(open.id);
  const seq = open.messages[open.messages.length - 1].seq;
  if (conv && conv.read_seq >= seq && !conv.unread) return;
  state.readInFlight = true;
  try {
    const r = await api('POST', `/v1/conversations/${enc(open.id)}/read`, { seq });
    const c = state.convs.get(open.id);
    if (c) {
      c.read_seq = r.read_seq;
      c.unread = r.unread;
    }
    renderConversations();
  } catch {
    // Tried again with the next message or visibility change.
  } finally {
    state.readInFlight = false;
    if (state.readDirty) {
      state.readDirty = false;
      markReadSoon();
    }
  }
}

boot();
