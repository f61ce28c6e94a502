// username.js: the "Choose a username" card (one line once there is one)
// and the username in the header.

import { $, message } from './dom.js';
import { log } from './log.js';

/** @import {DDT, StateEvent, UserRecord} from '../ddt.js' */

const meName = $('me-name');
const card = $('username-card');
const form = $('username-form', HTMLFormElement);
const input = $('username-input', HTMLInputElement);
const button = $('username-register', HTMLButtonElement);
const note = $('username-note');
const error = $('username-error');
const doneLine = $('username-done');
const doneName = $('username-done-name');

/** @type {DDT | null} */
let ddt = null;
let admitted = false;
let registering = false;

/**
 * attach shows the node's username, or the card to choose one.
 * @param {DDT} node
 * @returns {() => void} detach
 */
export function attach(node) {
  ddt = node;
  const offs = [node.on('username', onUsername), node.on('state', onState)];
  render(node.username || '');
  card.hidden = false;
  onState({ state: node.state || 'connecting', detail: '', retryInMs: 0 });
  return () => offs.forEach((off) => off());
}

/**
 * render shows the node's username in the header and turns the card into
 * one line once there is one.
 * @param {string} name
 */
function render(name) {
  const has = !!name;
  meName.textContent = has ? `@${name}` : '';
  meName.hidden = !has;
  form.hidden = has;
  doneLine.hidden = !has;
  doneName.textContent = has ? `@${name}` : '';
  card.classList.toggle('compact', has);
}

function paintRegister() {
  button.disabled = registering || !admitted;
  button.textContent = registering ? 'Registering…' : 'Register';
  input.readOnly = registering;
  note.textContent = admitted || registering ? '' : 'Available once the node is connected.';
}

/** @param {StateEvent} ev */
function onState(ev) {
  admitted = ev.state === 'admitted';
  paintRegister();
}

/** @param {UserRecord} rec */
function onUsername(rec) {
  if (!rec || !rec.name) return;
  render(rec.name);
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!ddt || registering || !admitted) return;
  registering = true;
  error.textContent = '';
  paintRegister();
  try {
    const rec = await ddt.register(input.value.trim());
    render(rec.name);
    log(`Registered as @${rec.name} (ledger entry ${rec.seq}).`, 'ok');
  } catch (err) {
    error.textContent = message(err);
  } finally {
    registering = false;
    paintRegister();
  }
});

input.addEventListener('input', () => {
  error.textContent = '';
});
