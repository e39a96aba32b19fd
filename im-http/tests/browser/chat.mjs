// The web chat page end to end, in headless Chromium driven by
// playwright-core. Run by im-http/tests/browser.rs, which starts the real
// im-http binary, creates the users, and restarts the server when asked:
//
//   env:    IM_URL (http://127.0.0.1:<port>), IM_ALICE, IM_BOB (user tokens),
//           IM_BOB_PASSWORD (bob's password, to sign in with),
//           IM_SHOTS (a folder for screenshots), IM_CHROMIUM (optional path)
//   stdout: protocol lines `@@stop` and `@@start` to the Rust test; all
//           other output goes to stderr
//   stdin:  `@@stopped` (the server has exited), `@@started` (it is back on
//           the same port and data directory, and Bob has sent two messages
//           to Alice over HTTP while Alice's page was cut off)
//
// Exits 0 when every check held; otherwise prints what failed and exits 1.

import { mkdirSync, existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const URL_ = need('IM_URL');
const ALICE = need('IM_ALICE');
const BOB = need('IM_BOB');
const BOB_PASSWORD = need('IM_BOB_PASSWORD');
const SHOTS = need('IM_SHOTS');
const CHROMIUM = process.env.IM_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 15000; // for any one thing to show up
const started = Date.now();

function need(name) {
  const v = process.env[name];
  if (!v) fail(`${name} is not set`);
  return v;
}

function log(...args) {
  console.error(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s]`, ...args);
}

function fail(message) {
  console.error(`FAILED: ${message}`);
  process.exit(1);
}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

// ---------------------------------------------------------------- the Rust side

const lines = [];
const waiting = [];
createInterface({ input: process.stdin }).on('line', (line) => {
  const w = waiting.shift();
  if (w) w(line);
  else lines.push(line);
});

// Asks the Rust test to do something and waits for its answer.
async function ask(request, answer) {
  process.stdout.write(`@@${request}\n`);
  const line = lines.length ? lines.shift() : await new Promise((resolve, reject) => {
    waiting.push(resolve);
    setTimeout(() => reject(new Error(`no answer to @@${request}`)), 30000);
  });
  check(line === `@@${answer}`, `asked @@${request}, got ${JSON.stringify(line)}`);
}

// ---------------------------------------------------------------- helpers

// Polls `probe` until it answers something truthy.
async function until(what, probe, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const texts = (page, sel) => page.locator(sel).allTextContents();
const count = (page, sel) => page.locator(sel).count();

// The bubbles of the open conversation, oldest first.
const bubbles = (page) => texts(page, '#message-list li.msg:not(.pending):not(.failed) .bubble');

async function seesMessage(who, page, text) {
  await until(`${who} to see ${JSON.stringify(text)}`, async () => (await bubbles(page)).includes(text));
}

function badge(page, id) {
  return page.locator(`#conversations li[data-id="${id}"] .badge`);
}

async function badgeIs(who, page, id, n) {
  await until(`${who}'s unread badge on ${id} to be ${n}`, async () => {
    const b = badge(page, id);
    if (n === 0) return (await b.count()) === 0 && (await count(page, `#conversations li[data-id="${id}"]`)) === 1;
    return (await b.count()) === 1 && (await b.textContent()) === String(n);
  });
}

async function send(page, text) {
  await page.locator('#composer-input').fill(text);
  await page.locator('#composer-input').press('Enter');
}

async function openConv(page, id) {
  await page.locator(`#conversations li[data-id="${id}"]`).click();
  await until(`${id} to open`, async () => (await page.locator('#conversations li.active').getAttribute('data-id')) === id);
}

// The typing line under the open conversation ('' when nobody types).
const typingLine = (page) => page.locator('#typing').textContent();

// A contact's dot and word in the contact list: 'online' or 'offline'.
async function presenceOf(page, user) {
  const li = page.locator(`#contacts li[data-id="${user}"]`);
  if ((await li.count()) !== 1) return null;
  const dot = (await li.locator('.dot.online').count()) === 1 ? 'online' : 'offline';
  const word = await li.locator('.seen').textContent();
  return dot === word ? word : `dot ${dot}, word ${word}`;
}

async function presenceIs(who, page, user, want, timeout = TIMEOUT) {
  await until(`${who} to see ${user} ${want}`, async () => (await presenceOf(page, user)) === want, timeout);
}

async function api(token, method, path, body) {
  const r = await fetch(URL_ + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  check(r.ok, `${method} ${path}: ${r.status} ${text}`);
  return text === '' ? null : JSON.parse(text);
}

async function history(token, id) {
  const page = await api(token, 'GET', `/v1/conversations/${encodeURIComponent(id)}/messages?limit=500`);
  return page.messages.map((m) => m.body.text);
}

// Join approval, a ban from the member list, and a block, on the pages.
async function moderation(A, B) {
  const text = (p, sel) => p.locator(sel).textContent();
  const showTools = async (p) => {
    if (!(await p.locator('#group-tools').evaluate((d) => d.open))) await p.locator('#group-tools summary').click();
  };

  log('alice creates a group joined by approval; bob asks; alice approves in its header');
  await showTools(A);
  await A.locator('#group-join-policy').selectOption('approval');
  await A.locator('#group-create-input').fill('club');
  await A.locator('#group-create-form button').click();
  await until('the club to open', async () => (await text(A, '#conv-title')) === '# club');
  await showTools(B);
  await B.locator('#group-join-input').fill('club');
  await B.locator('#group-join-form button').click();
  await until('bob to be told he asked', async () => (await text(B, '#sidebar-error')).includes('Asked the owner of club'));
  check(await count(B, '#conversations li[data-id="group:club"]') === 0, 'bob is in the club before approval');
  await until('alice to see the request', async () => (await text(A, '#people summary')).includes('1 asking to join'));
  await A.locator('#people summary').click();
  await A.locator('#people li[data-request="bob"] button', { hasText: 'Approve' }).click();
  await until('bob to get the club', () => count(B, '#conversations li[data-id="group:club"]'));
  await until('alice to see bob among the members', () => count(A, '#people li[data-user="bob"]'));

  log('alice bans bob from the member list: the club leaves his list, and he cannot come back');
  await A.locator('#people li[data-user="bob"] button', { hasText: 'Ban' }).click();
  await until('the club to leave bob\'s list', async () => (await count(B, '#conversations li[data-id="group:club"]')) === 0);
  await until('alice to see the ban', () => count(A, '#people li[data-ban="bob"]'));
  const back = await fetch(`${URL_}/v1/groups/club/members/bob`, { method: 'PUT', headers: { Authorization: `Bearer ${BOB}` } });
  check(back.status === 403 && (await back.json()).error.code === 'banned', `a banned bob joined again: ${back.status}`);

  log('bob blocks alice in their direct conversation: her message is refused until he unblocks');
  await openConv(B, DM);
  await until('the block button', async () => (await text(B, '#block-toggle')) === 'Block');
  await B.locator('#block-toggle').click();
  await until('bob to have blocked alice', async () => (await text(B, '#block-toggle')) === 'Unblock');
  await openConv(A, DM);
  await send(A, 'can you hear me?');
  await until('alice\'s message to be refused', async () => (await count(A, '#message-list li.failed')) === 1
    && (await text(A, '#message-list li.failed .meta')).includes('blocks'));
  await B.locator('#block-toggle').click();
  await until('bob to have unblocked alice', async () => (await text(B, '#block-toggle')) === 'Block');
  await A.locator('#message-list li.failed button.retry').click();
  await seesMessage('bob', B, 'can you hear me?');
  await A.screenshot({ path: `${SHOTS}/moderation.png` });
}

// Rooms: bob joins alice's room by id in the page; its messages arrive on
// his stream (which watches the room); a burst the server paces (1 s, 3
// messages here) leaves "load the n skipped messages" lines that page the
// skipped ones in from history.
async function rooms(A, B) {
  log('alice makes a room; bob joins it by id');
  await api(ALICE, 'PUT', '/v1/rooms/lobby', { join: 'open' });
  await api(ALICE, 'POST', '/v1/conversations/room:lobby/messages', { body: { text: 'welcome to the lobby' } });
  if (!(await B.locator('#room-tools').evaluate((d) => d.open))) await B.locator('#room-tools summary').click();
  await B.locator('#room-join-input').fill('lobby');
  await B.locator('#room-join-form button').click();
  await until('the lobby in bob\'s list', () => count(B, '#conversations li[data-id="room:lobby"]'));
  await until('the lobby to open', async () => (await B.locator('#conv-title').textContent()) === '◇ lobby');
  await seesMessage('bob', B, 'welcome to the lobby');
  await until('bob\'s stream to watch the lobby', async () => (await B.evaluate(() => state.watched.join(','))) === 'lobby'
    && (await B.locator('#status').textContent()) === 'live');
  await api(ALICE, 'POST', '/v1/conversations/room:lobby/messages', { body: { text: 'live in the lobby' } });
  await seesMessage('bob', B, 'live in the lobby');

  log('alice types in the lobby: bob\'s page shows it, then its end');
  await api(ALICE, 'POST', '/v1/conversations/room:lobby/typing', { typing: true });
  await until('bob to see alice typing in the lobby', async () => (await typingLine(B)) === 'alice is typing…');
  await api(ALICE, 'POST', '/v1/conversations/room:lobby/typing', { typing: false });
  await until('bob\'s typing line to clear in the lobby', async () => (await typingLine(B)) === '');

  log('a burst of 10: bob gets the newest and lines for what the pace skipped');
  for (let i = 1; i <= 10; i += 1) {
    await api(ALICE, 'POST', '/v1/conversations/room:lobby/messages', { body: { text: `burst ${i}` } });
  }
  await seesMessage('bob', B, 'burst 10');
  await until('a skipped-messages line', async () => (await count(B, '#message-list li.gap')) >= 1);
  const lines = await texts(B, '#message-list li.gap button');
  for (const l of lines) check(/^Load the \d+ skipped messages?$/.test(l), `the gap line: ${l}`);
  const skipped = lines.reduce((n, l) => n + Number(l.match(/\d+/)[0]), 0);
  const bursts = (await bubbles(B)).filter((t) => t.startsWith('burst '));
  check(bursts.length + skipped === 10, `shown ${bursts.length} and skipped ${skipped} of 10`);
  await B.screenshot({ path: `${SHOTS}/room-gap.png` });
  for (let left = lines.length; left > 0; left -= 1) {
    await B.locator('#message-list li.gap button').first().click();
    await until('a gap to load', async () => (await count(B, '#message-list li.gap')) === left - 1);
  }
  const all = (await bubbles(B)).filter((t) => t.startsWith('burst '));
  check(JSON.stringify(all) === JSON.stringify(Array.from({ length: 10 }, (_, i) => `burst ${i + 1}`)),
    `every burst message in order once loaded: ${JSON.stringify(all)}`);
  await B.screenshot({ path: `${SHOTS}/room.png` });
}

// Alice's dot in bob's contacts follows her page live: sign-out, sign-in,
// closing the window. The server's presence grace is 1 s here.
async function presence(A, B) {
  // A page that polled for presence would ask for the contacts again.
  const polls = [];
  B.on('request', (r) => {
    if (new URL(r.url()).pathname === '/v1/contacts' && r.method() === 'GET') polls.push(Date.now());
  });
  await presenceIs('bob', B, 'alice', 'online');

  log('alice signs out: her dot in bob\'s contacts goes offline, without bob asking');
  await A.locator('#signout').click();
  await until('alice\'s page to show the sign-in form', () => A.locator('#login-form').isVisible());
  await presenceIs('bob', B, 'alice', 'offline', 5000);

  log('alice signs in again: online again');
  await A.goto(`${URL_}/?token=${encodeURIComponent(ALICE)}`);
  await until('alice\'s stream to be live', async () => (await A.locator('#status').textContent()) === 'live');
  await presenceIs('bob', B, 'alice', 'online', 5000);

  log('alice closes her window: offline again');
  await A.close();
  await presenceIs('bob', B, 'alice', 'offline', 5000);
  check(polls.length === 0, `bob's page fetched the contacts ${polls.length} times instead of hearing presence`);
  await B.screenshot({ path: `${SHOTS}/presence.png` });
}

// ---------------------------------------------------------------- the test

if (!existsSync(CHROMIUM)) fail(`no Chromium at ${CHROMIUM}: install Debian's chromium package (scripts/deps/browser.sh does)`);
mkdirSync(SHOTS, { recursive: true });

// Playwright gives each launch a fresh, empty profile directory.
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const pageErrors = [];

async function openWindow(name) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 680 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on('console', (m) => {
    // The browser logs each refused connection while the server is down,
    // the 503 this test answers once, the 404 of the group lookup before
    // the group is created, the 403 of a send while blocked, and the 401
    // of bob's wrong password.
    if (m.type() === 'error' && !/net::ERR_|status of (401|403|404|503)/.test(m.text())) {
      pageErrors.push(`${name} console: ${m.text()}`);
    }
  });
  return { context, page };
}

const DM = 'dm:alice:bob';
const GROUP = 'group:team';
const CAROL = 'dm:alice:carol';
let alice;
let bob;

async function screenshots(suffix = '') {
  for (const [name, w] of [['alice', alice], ['bob', bob]]) {
    if (w) await w.page.screenshot({ path: `${SHOTS}/${name}${suffix}.png` }).catch(() => {});
  }
}

try {
  alice = await openWindow('alice');
  // Records every message event of the page's EventSource, whichever one
  // the page has open, to check below what came down the stream itself.
  await alice.context.addInitScript(() => {
    window.streamed = [];
    const Native = window.EventSource;
    window.EventSource = class extends Native {
      constructor(...args) {
        super(...args);
        this.addEventListener('message', (e) => window.streamed.push(JSON.parse(e.data)));
      }
    };
  });
  bob = await openWindow('bob');
  const A = alice.page;
  const B = bob.page;

  log('alice signs in with ?token=, bob with his password (a wrong one first)');
  await A.goto(`${URL_}/?token=${encodeURIComponent(ALICE)}`);
  await B.goto(`${URL_}/`);
  await B.locator('#login-user').fill('bob');
  await B.locator('#login-password').fill('not his password');
  await B.locator('#login-form button[type=submit]').click();
  await until('a wrong password to be refused', async () =>
    (await B.locator('#signin-error').textContent()) === 'Wrong user id or password.');
  check(await B.locator('#app').isHidden(), 'a wrong password does not sign in');
  await B.locator('#login-password').fill(BOB_PASSWORD);
  await B.locator('#login-form button[type=submit]').click();
  for (const [who, p] of [['alice', A], ['bob', B]]) {
    await until(`${who}'s stream to be live`, async () => (await p.locator('#status').textContent()) === 'live');
  }
  check(!A.url().includes('token='), `the token stays in the address bar: ${A.url()}`);
  check(await A.evaluate(() => sessionStorage.getItem('im-http.token')) === ALICE, 'the token is kept in sessionStorage');
  check((await A.locator('#me').textContent()) === 'alice', 'alice is signed in as alice');
  check((await B.locator('#me').textContent()) === 'bob', 'bob is signed in as bob');
  check((await B.locator('#login-password').inputValue()) === '', 'the password field is emptied');
  const bobToken = await B.evaluate(() => sessionStorage.getItem('im-http.token'));
  check(bobToken && bobToken !== BOB && !bobToken.includes(BOB_PASSWORD), 'bob has a token of his login');
  // Carol wrote 60 messages before anyone signed in.
  await badgeIs('alice', A, CAROL, 60);

  log('alice adds bob as a contact: he is online');
  await A.locator('#contact-input').fill('bob');
  await A.locator('#contact-form button').click();
  await until('bob to be an online contact', () => A.locator('#contacts li[data-id="bob"] .dot.online').count());
  log('bob adds alice as a contact: she is online');
  await B.locator('#contact-input').fill('alice');
  await B.locator('#contact-form button').click();
  await presenceIs('bob', B, 'alice', 'online');

  log('alice starts a direct conversation; bob counts unread messages while it is closed');
  await A.locator('#dm-input').fill('bob');
  await A.locator('#dm-form button').click();
  await until('the conversation with bob to open', async () => (await A.locator('#conv-title').textContent()) === 'bob');
  const hostile = '<img src=x onerror="window.__pwned=1"><b>not bold</b> & "quotes"';
  await send(A, 'hi bob');
  await seesMessage('alice', A, 'hi bob');
  await badgeIs('bob', B, DM, 1);
  await send(A, 'are you there?');
  await send(A, hostile);
  await badgeIs('bob', B, DM, 3);
  check(/^\(3\)/.test(await B.title()), `bob's title counts unread: ${await B.title()}`);
  check(await count(A, '#message-list .receipt') === 0, 'alice sees a receipt before bob read anything');

  log('bob opens it: the badge clears and the messages are there, as text');
  await openConv(B, DM);
  await badgeIs('bob', B, DM, 0);
  await seesMessage('bob', B, hostile);
  check(JSON.stringify(await bubbles(B)) === JSON.stringify(['hi bob', 'are you there?', hostile]),
    `bob's history: ${JSON.stringify(await bubbles(B))}`);
  check(await count(B, '#message-list img, #message-list b') === 0, 'a message became markup');
  check(await B.evaluate(() => window.__pwned) === undefined, 'a message ran as script');
  await until('bob to have read the conversation on the server', async () => {
    const list = await api(BOB, 'GET', '/v1/conversations');
    return list.conversations.find((c) => c.id === DM).unread === 0;
  });

  log('bob\'s read comes to alice as a receipt: "seen" under her newest message, and only there');
  await until('alice to see "seen" under her newest message', async () => {
    const last = A.locator('#message-list li.msg').last();
    return (await last.locator('.bubble').textContent()) === hostile
      && (await last.locator('.receipt').allTextContents()).join() === 'seen';
  });
  check(await count(A, '#message-list .receipt') === 1, 'one "seen", under the newest message bob read');
  check(await count(B, '#message-list .receipt') === 0, 'bob sees a receipt under messages he did not send');

  log('bob replies; alice, whose conversation is open, sees it live and has nothing unread');
  await send(B, 'hello alice');
  await seesMessage('alice', A, 'hello alice');
  await badgeIs('alice', A, DM, 0);
  await until('alice to have read the reply on the server', async () => {
    const list = await api(ALICE, 'GET', '/v1/conversations');
    return list.conversations.find((c) => c.id === DM).unread === 0;
  });

  log('alice types: bob sees it under their conversation, and it goes when she empties the box');
  // Well under the page's own 6.5 s hold: the line must go because the
  // server said `typing: false`, not because nothing was repeated.
  const PROMPT = 4000;
  await A.locator('#composer-input').fill('a draft');
  await until('bob to see alice typing', async () => (await typingLine(B)) === 'alice is typing…');
  // (Bob's own `false` after his reply may still be on its way: the server
  // holds a change inside the second to its end.)
  check(!(await typingLine(A)).includes('alice'), `alice is told about her own typing: ${await typingLine(A)}`);
  await A.locator('#composer-input').fill('');
  await until('bob\'s typing line to clear when alice empties the box', async () => (await typingLine(B)) === '', PROMPT);
  log('alice types again and sends: the line goes with the message');
  await A.locator('#composer-input').fill('typed and sent');
  await until('bob to see alice typing again', async () => (await typingLine(B)) === 'alice is typing…');
  await A.locator('#composer-input').press('Enter');
  await seesMessage('bob', B, 'typed and sent');
  await until('bob\'s typing line to clear after alice sent', async () => (await typingLine(B)) === '', PROMPT);

  log('alice creates an open group, bob joins it by id');
  await A.locator('#group-tools summary').click();
  await A.locator('#group-create-input').fill('team');
  await A.locator('#group-create-form button').click();
  await until('the group to open', async () => (await A.locator('#conv-title').textContent()) === '# team');
  await B.locator('#group-tools summary').click();
  await B.locator('#group-join-input').fill('team');
  await B.locator('#group-join-form button').click();
  await until('bob to be in the group', async () => (await B.locator('#conv-title').textContent()) === '# team');
  await until('alice to see two members', async () => (await A.locator('#conv-sub').textContent()).startsWith('2 members'));

  log('they chat in the group, live both ways');
  await send(A, 'welcome to the team');
  await seesMessage('bob', B, 'welcome to the team');
  await send(B, 'glad to be here');
  await seesMessage('alice', A, 'glad to be here');
  check((await texts(A, '#message-list li.msg[data-from="bob"] .from')).includes('bob'), 'group messages name their sender');

  log('messages change: a reply, an edit, a reaction and a delete, live in the other window');
  const msg = (page, text) => page.locator('#message-list li.msg', { has: page.locator('.bubble', { hasText: text }) });
  const act = async (page, text, action) => {
    const li = msg(page, text);
    await li.hover();
    await li.locator(`[data-action="${action}"]`).click();
  };
  await act(B, 'welcome to the team', 'reply');
  check((await B.locator('#reply-text').textContent()) === 'Replying to alice: welcome to the team', 'the composer shows the reply');
  await send(B, 'a reply');
  await seesMessage('alice', A, 'a reply');
  await until('alice to see the quote', async () => (await msg(A, 'a reply').locator('.quote').textContent()) === 'alice: welcome to the team');
  B.once('dialog', (d) => d.accept('glad, really'));
  await act(B, 'glad to be here', 'edit');
  await seesMessage('alice', A, 'glad, really');
  check(!(await bubbles(A)).includes('glad to be here'), 'the old text is gone from alice\'s window');
  await until('alice to see it marked edited', async () => (await msg(A, 'glad, really').locator('.meta').textContent()).includes('edited'));
  await act(A, 'glad, really', 'react-👍');
  await until('bob to see alice\'s reaction', async () => (await msg(B, 'glad, really').locator('.reaction').allTextContents()).join() === '👍 1');
  check(await msg(A, 'glad, really').locator('.reaction.me').count() === 1, 'alice sees her own reaction as hers');
  A.once('dialog', (d) => d.accept());
  await act(A, 'a reply', 'delete');
  await until('bob to see his reply deleted', async () => (await bubbles(B)).includes('This message was deleted') && !(await bubbles(B)).includes('a reply'));
  await until('the list to preview it as deleted', async () => (await B.locator(`#conversations li[data-id="${GROUP}"] .preview`).textContent()) === 'You: deleted message');
  await screenshots('-changes');

  log('bob looks at the direct conversation: the group counts up, then clears');
  await openConv(B, DM);
  await send(A, 'one for the group');
  await send(A, 'two for the group');
  await badgeIs('bob', B, GROUP, 2);
  await openConv(B, GROUP);
  await badgeIs('bob', B, GROUP, 0);
  await seesMessage('bob', B, 'two for the group');

  log('alice pages back through carol\'s 60 messages');
  await openConv(A, CAROL);
  await until('the newest page', async () => (await count(A, '#message-list li.msg')) === 50);
  check((await bubbles(A)).at(-1) === 'page test 60', 'the newest message is last');
  await A.locator('#messages').evaluate((el) => { el.scrollTop = 0; });
  await until('the older page', async () => (await count(A, '#message-list li.msg')) === 60);
  check((await bubbles(A))[0] === 'page test 1', 'the oldest message is first');
  check(await A.locator('#older').isHidden(), 'no more pages to load');
  await badgeIs('alice', A, CAROL, 0);
  await openConv(A, DM);
  await openConv(B, DM);

  // ------------------------------------------------------------ restart
  log('the server stops: both pages notice');
  await ask('stop', 'stopped');
  for (const [who, p] of [['alice', A], ['bob', B]]) {
    await until(`${who}'s page to show it is reconnecting`, async () => (await p.locator('#status').textContent()) !== 'live');
  }

  // Alice's page is cut off from events until told otherwise, so that what
  // she gets after the restart is what resuming and retrying bring. Its
  // first try gets a 503, as from a server on its way down: the browser
  // then gives up on that EventSource, and the page must make a new one
  // that resumes with ?after=.
  let eventsBlocked = true;
  const eventTries = [];
  await alice.context.route((u) => u.pathname === '/v1/events', (route) => {
    const after = new URL(route.request().url()).searchParams.get('after');
    eventTries.push({ after, blocked: eventsBlocked });
    if (!eventsBlocked) return route.continue();
    if (eventTries.length === 1) {
      return route.fulfill({ status: 503, contentType: 'application/json', body: '{"error":{"code":"unavailable","message":"shutting down"}}' });
    }
    return route.abort('connectionrefused');
  });
  // Sends to the DM go through here: while the server is down they fail;
  // the first one that reaches the server has its answer lost on the way
  // back, so the page must retry, with the same client_id.
  let dropped = false;
  const sends = [];
  await alice.context.route((u) => decodeURIComponent(u.pathname) === `/v1/conversations/${DM}/messages`, async (route) => {
    const req = route.request();
    if (req.method() !== 'POST') return route.continue();
    const attempt = { clientId: req.postDataJSON().client_id, status: null, answerLost: false };
    sends.push(attempt);
    let answer;
    try {
      answer = await route.fetch();
    } catch {
      return route.abort('connectionrefused');
    }
    attempt.status = answer.status();
    if (!dropped) {
      dropped = true;
      attempt.answerLost = true;
      return route.abort('connectionreset');
    }
    return route.fulfill({ response: answer });
  });

  log('alice writes while the server is down');
  await send(A, 'typed while offline');
  await until('the message to wait for the server',
    async () => (await A.locator('#message-list li.msg.pending .meta').textContent()).includes('waiting'));

  log('the server starts again on the same data; bob writes to alice over HTTP');
  await ask('start', 'started');
  await until('the offline message to be sent', async () => (await count(A, '#message-list li.msg.pending')) === 0, 20000);
  log(`alice's tries: ${JSON.stringify(sends)}`);
  check(sends.every((s) => s.clientId === sends[0].clientId), 'one client_id for every try');
  check(sends.some((s) => s.answerLost && s.status === 201), 'a try reached the server and lost its answer');
  check(sends.at(-1).status === 200, 'the retry after it got the original message back (200)');
  const afterRestart = await history(ALICE, DM);
  check(afterRestart.filter((t) => t === 'typed while offline').length === 1,
    `the retried send is stored once: ${JSON.stringify(afterRestart)}`);

  log('alice\'s event stream comes back and resumes where it stopped');
  await until('alice\'s page to open a new stream with ?after=', () => eventTries.some((t) => t.after), 20000);
  eventsBlocked = false;
  for (const [who, p] of [['alice', A], ['bob', B]]) {
    await until(`${who}'s stream to be live again`, async () => (await p.locator('#status').textContent()) === 'live', 20000);
  }
  check(eventTries.filter((t) => !t.blocked).every((t) => t.after), `the stream resumed with ?after=: ${JSON.stringify(eventTries)}`);
  // Bob's two messages were stored while Alice's stream was cut off: only
  // a stream that resumed from its cursor delivers them (the page also
  // refetches, which is why this looks at the stream itself).
  await until('alice\'s stream to deliver what was sent while it was cut off', async () => {
    const streamed = await A.evaluate(() => window.streamed.map((m) => m.body.text));
    return streamed.includes('sent while you were away 1') && streamed.includes('sent while you were away 2');
  });
  const streamed = await A.evaluate(() => window.streamed.map((m) => m.body.text));
  check(streamed.filter((t) => t.startsWith('sent while you were away')).length === 2,
    `each message comes down the stream once: ${JSON.stringify(streamed)}`);
  await seesMessage('alice', A, 'sent while you were away 1');
  await seesMessage('alice', A, 'sent while you were away 2');
  await seesMessage('bob', B, 'typed while offline');
  await seesMessage('bob', B, 'sent while you were away 2');
  for (const [who, p] of [['alice', A], ['bob', B]]) {
    // Which of the three landed first depends on the retry timer.
    const seen = await bubbles(p);
    const want = ['sent while you were away 1', 'sent while you were away 2', 'typed while offline'];
    check(JSON.stringify(seen.slice(-3).sort()) === JSON.stringify(want), `${who} sees each message once: ${JSON.stringify(seen)}`);
    check(seen.indexOf(want[0]) < seen.indexOf(want[1]), `${who} sees bob's messages in order`);
  }

  log('after the restart, messages are live again both ways');
  await send(B, 'back online');
  await seesMessage('alice', A, 'back online');
  await send(A, 'so am I');
  await seesMessage('bob', B, 'so am I');
  const final = await history(BOB, DM);
  check(new Set(final).size === final.length, `no message is doubled: ${JSON.stringify(final)}`);

  await screenshots();

  log('alice reads the group while bob writes to her directly: the badge counts again');
  await openConv(A, GROUP);
  await send(B, 'lunch at noon?');
  await badgeIs('alice', A, DM, 1);
  await openConv(B, GROUP);
  await send(B, 'standup notes are in the wiki');
  await seesMessage('alice', A, 'standup notes are in the wiki');
  await badgeIs('alice', A, GROUP, 0);
  await A.screenshot({ path: `${SHOTS}/overview.png` });

  await rooms(A, B);
  await moderation(A, B);
  await presence(A, B);

  log('bob signs out and back in by pasting a token');
  await B.locator('#signout').click();
  await until('the sign-in form', () => B.locator('#login-form').isVisible());
  await B.locator('#signin details summary').click();
  await B.locator('#token-input').fill(BOB);
  await B.locator('#signin-form button[type=submit]').click();
  await until("bob's stream to be live again", async () => (await B.locator('#status').textContent()) === 'live');
  check((await B.locator('#me').textContent()) === 'bob', 'a pasted token signs bob in');

  check(pageErrors.length === 0, `errors in the pages: ${pageErrors.join('; ')}`);
  log(`screenshots in ${SHOTS}`);
  log('all checks passed');
  await browser.close();
  process.exit(0);
} catch (e) {
  await screenshots('-failed');
  console.error(`FAILED: ${e.stack || e}`);
  if (pageErrors.length) console.error(`errors in the pages: ${pageErrors.join('; ')}`);
  console.error(`screenshots in ${SHOTS}`);
  await browser.close().catch(() => {});
  process.exit(1);
}
