// chat.js: the Chat card: add a friend by username, answer friend
// requests, the conversations (unread counts, who is online), and the open
// conversation — its messages with their delivery state, a composer, and
// the friend's safety number to compare out of band. It reads only the
// public API: ddt.befriend/accept/decline/friends/requests/send/history/
// markRead and the events friend-request, friend, message, delivered and
// session.

import { $, h, message, shortAddress } from './dom.js';
import { log } from './log.js';

/** @import {DDT, ChatMessage, Friend, FriendRequest, StateEvent} from '../ddt.js' */

const unreadCount = $('chat-unread');
const form = $('befriend', HTMLFormElement);
const nameInput = $('befriend-input', HTMLInputElement);
const addButton = $('befriend-go', HTMLButtonElement);
const addStatus = $('befriend-status');
const addError = $('befriend-error');
const requestsBox = $('chat-requests');
const requestList = $('request-list', HTMLUListElement);
const conversations = $('conversations', HTMLUListElement);
const conversationsEmpty = $('conversations-empty');
const conversation = $('conversation');
const convName = $('conv-name');
const convPresence = $('conv-presence');
const convSession = $('conv-session');
const safetyNumber = $('conv-safety-number');
const safetyNote = $('conv-safety-note');
const messages = $('messages', HTMLOListElement);
const messagesEmpty = $('messages-empty');
const composer = $('composer', HTMLFormElement);
const composerInput = $('composer-input', HTMLTextAreaElement);
const sendButton = $('composer-send', HTMLButtonElement);
const composerError = $('composer-error');

/** @type {DDT | null} */
let ddt = null;
let admitted = false;
let asking = '';
/** The open conversation's friend, or "". */
let open = '';
/** Each history load's number: a slower, older load does not paint over a newer one. */
let loads = 0;
/**
 * Messages this page is sending and the node has not yet answered for,
 * by friend: shown as "sending…" until send resolves.
 * @type {Map<string, {key: number, text: string, at: number}[]>}
 */
const sending = new Map();
let sendKeys = 0;

/**
 * words is what a chat error says to people, by its code; the node's own
 * sentence for the others.
 * @param {unknown} err
 * @param {string} name the friend the call was about
 */
function words(err, name) {
  const code = err && typeof err === 'object' && 'code' in err ? err.code : '';
  switch (code) {
    case 'no-username': return 'Register a username first: friends find you by it.';
    case 'not-found': return `Nobody holds the name @${name}.`;
    case 'self': return 'That is your own username.';
    case 'not-friend': return `@${name} is not your friend: a message goes only to a friend who accepted your request.`;
    case 'declined': return `@${name} declined your friend request.`;
    case 'forged': return `@${name}'s record does not verify, so nothing was sent: it may be an impostor.`;
    case 'no-request': return `@${name} has no request waiting for your answer.`;
    case 'too-large': return 'The message is too long: at most 16 KiB.';
    case 'not-admitted': return 'The node is not connected yet; try again in a moment.';
    default: return message(err);
  }
}

/**
 * codeOf is err's code, for the page's data-code attributes.
 * @param {unknown} err
 */
function codeOf(err) {
  return err && typeof err === 'object' && 'code' in err && typeof err.code === 'string' ? err.code : 'error';
}

/**
 * attach wires the card to the node.
 * @param {DDT} node
 * @returns {() => void} detach
 */
export function attach(node) {
  ddt = node;
  const offs = [
    node.on('state', onState),
    node.on('username', paintForm),
    node.on('friend-request', (r) => {
      log(`@${r.from} asks to be your friend.`);
      paintLists();
    }),
    node.on('friend', onFriend),
    node.on('message', onMessage),
    node.on('delivered', (d) => {
      if (d.to !== open) return;
      if (composerError.dataset.code === 'queued') {
        composerError.textContent = '';
        delete composerError.dataset.code;
      }
      loadConversation();
    }),
    node.on('session', (s) => {
      if (s.state === 'ready') log(`End-to-end session with @${s.name} ready.`, 'ok');
      paintLists();
    }),
  ];
  onState({ state: node.state || 'connecting', detail: '', retryInMs: 0 });
  paintLists();
  // A friend going away sends no event: the list's online dots follow
  // the node's view of its friends (ddt.friends(), itself current within
  // 2 s).
  let shown = '';
  const timer = setInterval(() => {
    if (!ddt) return;
    const now = JSON.stringify([ddt.friends(), ddt.requests()]);
    if (now !== shown) paintLists(); // unchanged: nothing repainted under the user's pointer
    shown = now;
  }, 2000);
  return () => {
    clearInterval(timer);
    offs.forEach((off) => off());
    ddt = null;
    paintForm();
  };
}

/** @param {StateEvent} ev */
function onState(ev) {
  admitted = ev.state === 'admitted';
  paintForm();
}

/** paintForm enables adding a friend once the node is admitted and has a name. */
function paintForm() {
  const named = !!(ddt && ddt.username);
  addButton.disabled = !ddt || !admitted || !named || !!asking;
  addButton.textContent = asking ? 'Asking…' : 'Add friend';
  nameInput.readOnly = !!asking;
  if (!asking && !addError.textContent) {
    if (!named) says('Register a username above to add friends: they find you by it.');
    else if (!admitted) says('Available once the node is connected.');
    else if (addStatus.dataset.kind === 'note') says('');
  }
}

/**
 * says sets the befriend form's status line.
 * @param {string} text
 * @param {'note' | 'wait' | 'ok'} [kind]
 */
function says(text, kind = 'note') {
  addStatus.textContent = text;
  addStatus.dataset.kind = kind;
  addStatus.className = `find-result ${kind === 'ok' ? 'ok' : 'muted'}`;
}

/** @param {unknown} err @param {string} name */
function fails(err, name) {
  addError.textContent = err ? words(err, name) : '';
  addError.dataset.code = err ? codeOf(err) : '';
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!ddt || asking) return;
  const node = ddt;
  const name = nameInput.value.trim().replace(/^@/, '');
  asking = name;
  fails(null, '');
  says(`Request sent to @${name}: waiting for the answer…`, 'wait');
  paintForm();
  paintLists();
  try {
    const answer = await node.befriend(name);
    if (answer === 'accepted') {
      says(`@${name} accepted: you are friends.`, 'ok');
      log(`@${name} accepted your friend request.`, 'ok');
      nameInput.value = '';
      show(name);
    } else {
      says('');
      fails({ code: 'declined' }, name);
      log(`@${name} declined your friend request.`, 'warn');
    }
  } catch (err) {
    if (codeOf(err) === 'timeout') {
      says(`No answer from @${name} yet. The request stays open, and their answer will show here.`, 'wait');
    } else {
      says('');
      fails(err, name);
    }
  } finally {
    asking = '';
    paintForm();
    paintLists();
  }
});

nameInput.addEventListener('input', () => fails(null, ''));

/** @param {Friend} f */
function onFriend(f) {
  if (f.state === 'friend' && addStatus.dataset.kind === 'wait' && addStatus.textContent.includes(`@${f.name}`)) {
    says(`@${f.name} accepted: you are friends.`, 'ok');
  } else if (f.state === 'declined' && addStatus.dataset.kind === 'wait' && addStatus.textContent.includes(`@${f.name}`)) {
    says('');
    fails({ code: 'declined' }, f.name);
  }
  paintLists();
}

/** @param {ChatMessage} m */
function onMessage(m) {
  if (m.from && m.from === open && document.visibilityState === 'visible' && ddt) {
    ddt.markRead(m.from).catch(() => {}).finally(paintLists);
  }
  paintLists();
  if (m.from === open) loadConversation();
}

// ---- lists ----------------------------------------------------------------

/** paintLists paints the requests and the conversations from the node. */
function paintLists() {
  if (!ddt) return;
  const reqs = ddt.requests();
  const friends = ddt.friends();
  paintRequests(reqs);
  paintConversations(friends);
  const unread = friends.reduce((n, f) => n + (f.unread || 0), 0);
  unreadCount.textContent = String(unread);
  unreadCount.hidden = unread === 0;
  const f = friends.find((x) => x.name === open);
  if (f) paintHead(f);
  else if (open) close();
}

/** @param {FriendRequest[]} reqs */
function paintRequests(reqs) {
  requestsBox.hidden = reqs.length === 0;
  const kept = new Map([...requestList.children].map((li) => [/** @type {HTMLElement} */ (li).dataset.name, li]));
  const items = reqs.map((r) => {
    const li = kept.get(r.from);
    return li || requestItem(r);
  });
  requestList.replaceChildren(...items);
}

/** @param {FriendRequest} r */
function requestItem(r) {
  const accept = h('button', { type: 'button', className: 'btn primary small', textContent: 'Accept' });
  const decline = h('button', { type: 'button', className: 'btn small', textContent: 'Decline' });
  const note = h('span', { className: 'ping-result' });
  accept.dataset.action = 'accept';
  decline.dataset.action = 'decline';
  /**
   * @param {'accept' | 'decline'} what
   */
  const answer = async (what) => {
    if (!ddt) return;
    accept.disabled = decline.disabled = true;
    note.className = 'ping-result';
    note.textContent = what === 'accept' ? 'Accepting…' : 'Declining…';
    try {
      await (what === 'accept' ? ddt.accept(r.from) : ddt.decline(r.from));
      log(what === 'accept' ? `You accepted @${r.from}: setting up the end-to-end session.` : `You declined @${r.from}.`, what === 'accept' ? 'ok' : 'info');
      li.remove();
      if (what === 'accept') show(r.from);
    } catch (err) {
      note.className = 'ping-result err';
      note.textContent = words(err, r.from);
      note.dataset.code = codeOf(err);
      accept.disabled = decline.disabled = false;
    } finally {
      paintLists();
    }
  };
  accept.addEventListener('click', () => answer('accept'));
  decline.addEventListener('click', () => answer('decline'));
  const li = h('li', { className: 'request' },
    h('span', { className: 'request-who' },
      h('strong', { textContent: `@${r.from}` }),
      h('span', { className: 'muted small-inline', textContent: ` wants to be your friend · ${shortAddress(r.address)}`, title: r.address })),
    h('span', { className: 'request-actions' }, accept, decline, note));
  li.dataset.name = r.from;
  return li;
}

/**
 * status is a friend's line under its name in the list.
 * @param {Friend} f
 */
function status(f) {
  if (f.state === 'requested') return asking === f.name ? 'request sent…' : 'request sent, no answer yet';
  if (f.state === 'declined') return 'declined your request';
  if (f.session !== 'ready') return 'setting up encryption…';
  return f.online ? 'online' : 'away';
}

/** @param {Friend[]} friends */
function paintConversations(friends) {
  conversationsEmpty.hidden = friends.length > 0;
  conversations.replaceChildren(...friends.map((f) => {
    const unread = h('span', { className: 'count conv-unread', textContent: String(f.unread) });
    unread.hidden = !f.unread;
    unread.setAttribute('aria-label', `${f.unread} unread`);
    const dot = h('span', { className: 'dot', title: f.online ? 'online' : 'away' });
    dot.dataset.online = String(!!f.online);
    const b = h('button', { type: 'button', className: 'conv-item' },
      dot,
      h('span', { className: 'conv-text' },
        h('strong', { className: 'conv-who', textContent: `@${f.name}` }),
        h('span', { className: 'conv-status muted', textContent: status(f) })),
      unread);
    b.setAttribute('aria-current', String(f.name === open));
    b.addEventListener('click', () => show(f.name));
    const li = h('li', {}, b);
    li.dataset.name = f.name;
    li.dataset.state = f.state;
    li.dataset.session = f.session;
    li.dataset.online = String(!!f.online);
    li.dataset.unread = String(f.unread || 0);
    return li;
  }));
}

// ---- the open conversation ------------------------------------------------

/**
 * show opens the conversation with name.
 * @param {string} name
 */
function show(name) {
  if (!ddt) return;
  const f = ddt.friends().find((x) => x.name === name);
  if (!f) return;
  const changed = open !== name;
  open = name;
  conversation.hidden = false;
  conversation.dataset.name = name;
  if (changed) {
    messages.replaceChildren();
    composerError.textContent = '';
    composerInput.value = '';
  }
  paintHead(f);
  loadConversation();
  if (f.unread) ddt.markRead(name).catch(() => {}).finally(paintLists);
  else paintLists();
}

function close() {
  open = '';
  conversation.hidden = true;
  delete conversation.dataset.name;
}

/** @param {Friend} f */
function paintHead(f) {
  convName.textContent = `@${f.name}`;
  convPresence.textContent = f.state === 'friend' ? (f.online ? 'online' : 'away') : status(f);
  const session = f.state !== 'friend' ? 'none' : f.session;
  convSession.dataset.state = session === 'ready' ? 'ready' : session === 'connecting' ? 'connecting' : 'none';
  convSession.textContent = session === 'ready' ? 'end-to-end encrypted' : session === 'connecting' ? 'exchanging keys…' : f.state === 'friend' ? 'no session yet' : 'not a friend yet';
  // Two lines of six groups, as the friend's screen shows them.
  const groups = (f.safety || '').split(' ');
  safetyNumber.textContent = groups.length === 12 ? `${groups.slice(0, 6).join(' ')}\n${groups.slice(6).join(' ')}` : f.safety || '—';
  safetyNote.textContent = f.safety
    ? `Compare it with the number @${f.name} sees for you, in person or on a call. If they match, nobody sits between you.`
    : 'Shown once you are friends.';
  const friend = f.state === 'friend';
  composerInput.disabled = !friend;
  sendButton.disabled = !friend;
  composerInput.placeholder = friend ? `Message @${f.name}` : f.state === 'requested' ? `Waiting for @${f.name} to accept…` : `@${f.name} declined.`;
}

/** loadConversation paints the open conversation from its history. */
async function loadConversation() {
  if (!ddt || !open) return;
  const name = open;
  const n = ++loads;
  /** @type {ChatMessage[]} */
  let hist;
  try {
    hist = await ddt.history(name);
  } catch (err) {
    if (n === loads) {
      composerError.textContent = words(err, name);
      composerError.dataset.code = codeOf(err);
    }
    return;
  }
  if (n !== loads || name !== open) return;
  paintMessages(name, hist);
}

/**
 * paintMessages shows hist and this page's sends under way.
 * @param {string} name
 * @param {ChatMessage[]} hist
 */
function paintMessages(name, hist) {
  const pending = sending.get(name) || [];
  // A send under way may already be in the history (as "sending"): show
  // it once.
  const shownPending = new Set();
  const items = hist.map((m) => {
    if (!m.from && m.state === 'sending') {
      const p = pending.find((x) => x.text === m.text && !shownPending.has(x.key));
      if (p) shownPending.add(p.key);
    }
    return messageItem(m);
  });
  for (const p of pending) {
    if (!shownPending.has(p.key)) items.push(messageItem({ id: '', from: '', to: name, text: p.text, at: p.at, state: 'sending' }));
  }
  const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
  messages.replaceChildren(...items);
  messagesEmpty.hidden = items.length > 0;
  if (atBottom || items.length) messages.scrollTop = messages.scrollHeight;
}

const STATES = {
  sending: { mark: '', text: 'sending…', title: 'sealed, and on its way as soon as your friend or a holder can be reached' },
  stored: { mark: '✓', text: 'stored', title: 'held for your friend at the node closest to its address: it collects it when back' },
  delivered: { mark: '✓✓', text: 'delivered', title: 'your friend acknowledged it' },
  received: { mark: '', text: '', title: '' },
};

/** @param {ChatMessage} m */
function messageItem(m) {
  const mine = !m.from;
  let when = new Date(m.at);
  if (!Number.isFinite(when.getTime())) when = new Date(0); // a time no date can show
  const time = h('time', {
    dateTime: when.toISOString(),
    textContent: [when.getHours(), when.getMinutes()].map((x) => String(x).padStart(2, '0')).join(':'),
  });
  const st = STATES[m.state] || { mark: '', text: m.state, title: '' };
  const meta = h('span', { className: 'msg-meta' }, time);
  if (mine) {
    const state = h('span', { className: 'msg-state', title: st.title },
      st.mark ? h('span', { className: 'tick', textContent: st.mark }) : '', st.text);
    meta.append(state);
  }
  const li = h('li', { className: `msg ${mine ? 'mine' : 'theirs'}` },
    h('span', { className: 'msg-text', textContent: m.text }), meta);
  li.dataset.id = m.id;
  li.dataset.state = m.state;
  return li;
}

composer.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!ddt || !open) return;
  const node = ddt;
  const name = open;
  const text = composerInput.value;
  if (!text.trim()) return;
  composerInput.value = '';
  composerError.textContent = '';
  const p = { key: ++sendKeys, text, at: Date.now() };
  sending.set(name, [...(sending.get(name) || []), p]);
  loadConversation();
  try {
    const sent = await node.send(name, text);
    if (sent.delivered === 'queued' && name === open) {
      composerError.textContent = `@${name} cannot be reached just now: the message waits here and goes as soon as it can.`;
      composerError.dataset.code = 'queued';
    }
  } catch (err) {
    composerError.textContent = words(err, name);
    composerError.dataset.code = codeOf(err);
    if (name === open && !composerInput.value) composerInput.value = text; // to try again
  } finally {
    sending.set(name, (sending.get(name) || []).filter((x) => x.key !== p.key));
    if (name === open) loadConversation();
    paintLists();
  }
});

composerInput.addEventListener('keydown', (ev) => {
  // Enter sends; Shift+Enter is a new line.
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    composer.requestSubmit();
  }
});

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState !== 'visible' || !ddt || !open) return;
  const f = ddt.friends().find((x) => x.name === open);
  if (f && f.unread) ddt.markRead(open).catch(() => {}).finally(paintLists);
});
