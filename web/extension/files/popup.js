// popup.js: the toolbar popup. It shows the extension's node — its state
// (the node's own: starting, failed and why; then the relay's: connecting,
// admitted, retrying, refused), address, username, zone, peers, friends
// and storage — opens DDT sites and the full DDT page, and sets the relay.
// It reads only window.ddt (ddt.js, backed by the offscreen node) and the
// extension's own settings.

import { pageURL } from './address.js';
import { lastState, relayChoice, setRelay, start } from './ddt.js';
import { $, formatBytes, h, message, shortAddress } from './views/dom.js';

/** @import {ExtensionDDT, NodeStatus} from './ddt.d.ts' */
/** @import {Friend} from '../../static/ddt.js' */

const badge = $('state');
const detail = $('detail');
const addressEl = $('address');
const copy = $('copy', HTMLButtonElement);
const usernameEl = $('username');
const zoneEl = $('zone');
const peersEl = $('peers');
const friendsEl = $('friends');
const friendsLabel = $('friends-label');
const unreadEl = $('unread');
const friendList = $('friend-list');
const friendsEmpty = $('friends-empty');
const meter = $('storage-meter');
const pinnedBar = $('storage-pinned');
const othersBar = $('storage-others');
const storageEl = $('storage');
const siteForm = $('site', HTMLFormElement);
const siteInput = $('site-input', HTMLInputElement);
const siteError = $('site-error');
const relayForm = $('relay', HTMLFormElement);
const relayInput = $('relay-input', HTMLInputElement);
const relayNote = $('relay-note');
const relayError = $('relay-error');

// How often the numbers that come by a call (peers, storage) are read again.
const POLL_MS = 2000;

/** @type {ExtensionDDT | null} */
let ddt = null;
/** @type {NodeStatus} */
let node = { state: 'starting', detail: 'Starting the node…', relay: '' };

/** paintState shows the node's state, then (once it runs) the relay's. */
function paintState() {
  if (node.state !== 'running' || !ddt) {
    badge.dataset.state = node.state === 'failed' ? 'refused' : 'connecting';
    badge.textContent = node.state === 'failed' ? 'not running' : 'starting';
    detail.textContent = node.detail;
    detail.dataset.state = node.state;
    return;
  }
  const state = ddt.state;
  badge.dataset.state = state;
  badge.textContent = state === 'admitted' ? 'online' : state;
  detail.dataset.state = state;
  const last = lastState();
  let text = last.state === state && last.detail ? sentence(last.detail) : sentence(`${state} (${ddt.relay})`);
  if ((state === 'retrying' || state === 'refused') && last.state === state && last.retryInMs > 0) {
    text += ` It tries ${ddt.relay} again within ${Math.ceil(last.retryInMs / 1000)} s.`;
  }
  detail.textContent = text;
}

/** @param {string} s the node's words, as a sentence */
function sentence(s) {
  const t = s.charAt(0).toUpperCase() + s.slice(1);
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

/** paintNode shows what the snapshot holds: identity, friends. */
function paintNode() {
  if (!ddt) return;
  const address = ddt.address;
  addressEl.textContent = address ? shortAddress(address) : '—';
  addressEl.title = address || 'assigned when the relay admits this node';
  copy.disabled = !address;
  usernameEl.textContent = ddt.username ? `@${ddt.username}` : 'none yet (register one in the DDT page)';
  usernameEl.classList.toggle('muted', !ddt.username);
  zoneEl.textContent = ddt.zone || '—';
  zoneEl.classList.toggle('muted', !ddt.zone);
  /** @type {Friend[]} */
  const friends = ddt.friends().filter((f) => f.state === 'friend');
  const online = friends.filter((f) => f.online).length;
  friendsEl.textContent = String(friends.length);
  friendsLabel.textContent = friends.length ? `friends, ${online} online` : 'friends';
  unreadEl.textContent = String(friends.reduce((n, f) => n + f.unread, 0));
  friendsEmpty.hidden = friends.length > 0;
  friendList.replaceChildren(
    ...friends.slice(0, 6).map((f) =>
      h('li', { className: 'pop-friend', title: f.online ? 'online' : 'away' },
        h('span', { className: f.online ? 'dot on' : 'dot' }),
        h('span', { className: 'pop-friend-name', textContent: `@${f.name}` }),
        f.unread ? h('span', { className: 'count', textContent: String(f.unread) }) : ''),
    ),
  );
  paintState();
}

/** poll reads the numbers that come by a call. */
async function poll() {
  if (!ddt || node.state !== 'running') return;
  try {
    const [peers, usage] = await Promise.all([ddt.peers(), ddt.storage()]);
    peersEl.textContent = String(peers.length);
    const max = Math.max(usage.pledgedBytes + usage.pinnedBytes, usage.usedBytes, 1);
    const others = Math.max(0, usage.usedBytes - usage.pinnedBytes);
    pinnedBar.style.width = `${(100 * usage.pinnedBytes) / max}%`;
    othersBar.style.width = `${(100 * others) / max}%`;
    meter.setAttribute('aria-valuenow', String(usage.usedBytes / max));
    storageEl.textContent = `Storage: ${formatBytes(others)} of the ${formatBytes(usage.pledgedBytes)} lent to others, and ${formatBytes(usage.pinnedBytes)} of your own; ${usage.chunks} chunks.`;
  } catch (err) {
    // the node went away mid-call: its state says so
    if (/** @type {any} */ (err).code !== 'unavailable') storageEl.textContent = `Storage: ${message(err)}`;
  }
}

copy.addEventListener('click', async () => {
  if (!ddt || !ddt.address) return;
  await navigator.clipboard.writeText(ddt.address).catch(() => {});
  copy.textContent = 'Copied';
  setTimeout(() => (copy.textContent = 'Copy'), 1500);
});

/** @param {string} text a site's address, or '' for the DDT page's cards */
function openPage(text) {
  chrome.tabs.create({ url: pageURL(text) });
  window.close();
}

$('open-page').addEventListener('click', () => openPage(''));

siteForm.addEventListener('submit', (e) => {
  e.preventDefault();
  if (!siteInput.value.trim()) {
    siteError.textContent = 'Type a DDT address, such as example.ddt/path.';
    return;
  }
  openPage(siteInput.value); // the DDT page says what is wrong with it, if anything
});

async function paintRelay() {
  const { relay, builtin } = await relayChoice();
  relayInput.value = relay;
  relayNote.replaceChildren(
    relay === builtin
      ? 'The relay this extension was built for.'
      : h('span', {}, `Your choice; built for ${builtin}. `, h('a', { href: '#', id: 'relay-default', textContent: 'Use that one' })),
  );
  document.getElementById('relay-default')?.addEventListener('click', (e) => {
    e.preventDefault();
    useRelay('');
  });
}

/** @param {string} url */
async function useRelay(url) {
  relayError.textContent = '';
  try {
    await setRelay(url);
    await paintRelay();
  } catch (err) {
    relayError.textContent = message(err);
  }
}

relayForm.addEventListener('submit', (e) => {
  e.preventDefault();
  useRelay(relayInput.value);
});

paintRelay();
chrome.storage.onChanged.addListener((changes, area) => {
  if (area === 'local' && 'relay' in changes) paintRelay();
});

start(undefined, {
  onStatus: (s) => {
    node = s;
    paintState();
    if (s.state === 'running') poll();
  },
}).then((api) => {
  ddt = api;
  for (const event of /** @type {const} */ (['friend', 'friend-request', 'message', 'username', 'peer', 'peer-gone'])) api.on(event, paintNode);
  api.on('state', paintNode);
  paintNode();
  poll();
  setInterval(() => {
    paintNode();
    poll();
  }, POLL_MS);
});
