// identity.js: the "This node" card: the state badge and its sentence (with
// the countdown to the next attempt), the address with its Copy button, the
// zone and the relay; and the state's lines in the event log.

import { $, h, linkify, message, shortAddress } from './dom.js';
import { log } from './log.js';

/** @import {DDT, State, StateEvent} from '../ddt.js' */

const badge = $('state');
const stateDetail = $('state-detail');
const addressEl = $('address');
const copy = $('copy-address', HTMLButtonElement);
const zoneEl = $('zone');
const relayEl = $('relay');

/** @type {DDT | null} */
let ddt = null;
let currentDetail = '';
let retryDeadline = 0;
/** @type {ReturnType<typeof setInterval> | undefined} */
let countdownTimer;
/** @type {HTMLElement | null} */
let headlineEl = null;
let lastConnecting = '';

/**
 * attach shows the node's identity and follows its state.
 * @param {DDT} node
 * @returns {() => void} detach
 */
export function attach(node) {
  ddt = node;
  const off = node.on('state', onState);
  onState({ state: node.state || 'connecting', detail: '', retryInMs: 0 });
  Promise.resolve(node.ready).then(renderIdentity, (err) => {
    // The "state" event normally carries the same sentence; this covers a
    // refusal that happened before we subscribed.
    if (!currentDetail) renderState({ state: node.state, detail: message(err), retryInMs: 0 });
  });
  return () => {
    clearInterval(countdownTimer);
    off();
  };
}

/**
 * stopped shows that no node is running in this tab (it failed to start or
 * exited); "stopped" is the page's own word, not a ddt.state.
 * @param {string} title
 */
export function stopped(title) {
  clearInterval(countdownTimer);
  badge.textContent = 'stopped';
  badge.dataset.state = 'stopped';
  headlineEl = null;
  stateDetail.replaceChildren(h('strong', { textContent: title }), ' Reload the page to try again.');
}

function renderIdentity() {
  if (!ddt) return;
  const address = ddt.address || '';
  addressEl.textContent = address;
  addressEl.title = address;
  copy.disabled = !address;
  zoneEl.textContent = ddt.zone || '';
  relayEl.textContent = ddt.relay || '';
}

// ---- state badge --------------------------------------------------------

function secondsLeft() {
  return Math.max(0, Math.ceil((retryDeadline - Date.now()) / 1000));
}

function retryText() {
  const s = secondsLeft();
  return s > 0 ? `retrying in ${s} s` : 'retrying now…';
}

/**
 * headline returns the sentence shown beside the badge for a state.
 * @param {State | string} state
 */
function headline(state) {
  switch (state) {
    case 'connecting':
      return 'Connecting to the relay…';
    case 'admitted':
      return ddt?.zone ? `Connected to zone “${ddt.zone}”.` : 'Connected to the zone.';
    case 'retrying':
      return `Relay unreachable — ${retryText()}.`;
    case 'refused':
      return retryDeadline ? `Refused by the relay — trying again in ${secondsLeft()} s.` : 'Refused by the relay.';
    default:
      return state ? `State: ${state}.` : 'Starting…';
  }
}

/**
 * paintState writes the sentence beside the badge. The countdown calls it
 * every 250 ms, so it touches the DOM only when the words change.
 * @param {State} state
 * @param {boolean} [fresh]
 */
function paintState(state, fresh) {
  const text = headline(state);
  if (!fresh && headlineEl) {
    if (headlineEl.textContent !== text) headlineEl.textContent = text;
    return;
  }
  headlineEl = h('strong', { textContent: text });
  /** @type {HTMLElement[]} */
  const parts = [headlineEl];
  if (currentDetail && state !== 'admitted') parts.push(h('span', { className: 'why' }, ...linkify(currentDetail)));
  stateDetail.replaceChildren(...parts);
}

/** @param {StateEvent} ev */
function renderState({ state, detail, retryInMs }) {
  state = state || 'connecting';
  currentDetail = detail || '';
  badge.textContent = state;
  badge.dataset.state = state;
  clearInterval(countdownTimer);
  retryDeadline = retryInMs > 0 && (state === 'retrying' || state === 'refused') ? Date.now() + retryInMs : 0;
  paintState(state, true);
  if (retryDeadline) {
    countdownTimer = setInterval(() => {
      paintState(state);
      if (secondsLeft() === 0) clearInterval(countdownTimer);
    }, 250);
  }
}

/** @param {StateEvent} ev */
function onState(ev) {
  renderIdentity();
  renderState(ev);
  const detail = ev.detail ? `: ${ev.detail}` : '';
  const wait = ev.retryInMs > 0 ? ` — next try in ${Math.ceil(ev.retryInMs / 1000)} s` : '';
  if (ev.state !== 'connecting') lastConnecting = '';
  switch (ev.state) {
    case 'connecting': {
      // The page paints the state it finds, then hears the node's own
      // event for the same attempt: say it once.
      const line = `Connecting to ${ddt?.relay || 'the relay'}…`;
      if (line !== lastConnecting) log(line);
      lastConnecting = line;
      break;
    }
    case 'admitted':
      log(`Admitted to zone “${ddt?.zone}” as ${shortAddress(ddt?.address || '')}.`, 'ok');
      break;
    case 'retrying': {
      const why = ev.detail ? ev.detail.charAt(0).toUpperCase() + ev.detail.slice(1) : 'Relay unreachable';
      log(`${why}${wait}.`, 'warn');
      break;
    }
    case 'refused':
      log(`Refused${detail}${wait}.`, 'err');
      break;
    default:
      log(`State ${ev.state}${detail}.`);
  }
}

// ---- copy button --------------------------------------------------------

/** @type {ReturnType<typeof setTimeout> | undefined} */
let copyReset;

/** @param {string} text */
function copied(text) {
  copy.textContent = text;
  clearTimeout(copyReset);
  copyReset = setTimeout(() => {
    copy.textContent = 'Copy';
  }, 1500);
}

copy.addEventListener('click', async () => {
  const text = addressEl.textContent;
  if (!text) return;
  try {
    await navigator.clipboard.writeText(text);
    copied('Copied');
  } catch {
    // No clipboard API (e.g. plain http on a LAN address): select the text.
    const range = document.createRange();
    range.selectNodeContents(addressEl);
    const sel = getSelection();
    sel?.removeAllRanges();
    sel?.addRange(range);
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    copied(ok ? 'Copied' : 'Press Ctrl+C');
  }
});
