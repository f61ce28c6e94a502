// finduser.js: the "Find a user" card: resolves a username to its verified
// record and shows it, with buttons to connect to and ping its node.

import { $, formatMs, h, message, shortAddress } from './dom.js';
import * as peers from './peers.js';

/** @import {DDT, UserRecord} from '../ddt.js' */

const form = $('find-user', HTMLFormElement);
const input = $('find-user-input', HTMLInputElement);
const go = $('find-user-go', HTMLButtonElement);
const error = $('find-user-error');
const result = $('find-user-result');

/** @type {DDT | null} */
let ddt = null;
let lastFound = '';

/**
 * attach lets the card ask the node.
 * @param {DDT} node
 * @returns {() => void} detach
 */
export function attach(node) {
  ddt = node;
  return () => {};
}

/** @param {string} text */
function fails(text) {
  error.textContent = text;
  if (text) result.hidden = true;
}

/**
 * show paints a verified record with buttons to reach its node.
 * @param {DDT} ddt
 * @param {UserRecord} rec
 */
function show(ddt, rec) {
  const status = h('span', { id: 'find-user-status', className: 'ping-result' });
  status.setAttribute('role', 'status');
  const connect = h('button', { id: 'find-user-connect', type: 'button', className: 'btn small', textContent: 'Connect' });
  const ping = h('button', { id: 'find-user-ping', type: 'button', className: 'btn small', textContent: 'Ping' });
  const self = rec.address === ddt.address;
  connect.disabled = self;
  ping.disabled = self;
  /**
   * @param {string} text
   * @param {'' | 'ok' | 'err'} [kind]
   */
  const says = (text, kind = '') => {
    status.textContent = text;
    status.className = `ping-result ${kind}`;
  };
  if (self) says('this node');
  /** @param {boolean} b */
  const busy = (b) => {
    connect.disabled = b;
    ping.disabled = b;
  };
  connect.addEventListener('click', async () => {
    busy(true);
    says('Opening a data channel…');
    try {
      const p = await ddt.connect(rec.address);
      says(`Connected via ${p.via}.`, 'ok');
      peers.refresh();
    } catch (err) {
      says(message(err), 'err');
    } finally {
      busy(false);
    }
  });
  ping.addEventListener('click', async () => {
    busy(true);
    says('…');
    try {
      if (!peers.has(rec.address)) {
        says('Opening a data channel…');
        await ddt.connect(rec.address);
        peers.refresh();
      }
      says(`${formatMs(await ddt.ping(rec.address))} ms`, 'ok');
    } catch (err) {
      says(message(err), 'err');
    } finally {
      busy(false);
    }
  });
  const ledger = /** @type {Partial<UserRecord['ledger']>} */ (rec.ledger || {});
  /**
   * @param {string} term
   * @param {...(Node | string)} value
   */
  const fact = (term, ...value) => h('div', {}, h('dt', { textContent: term }), h('dd', {}, ...value));
  result.replaceChildren(
    h('div', { className: 'user-head' },
      h('strong', { className: 'user-name', textContent: `@${rec.name}` }),
      h('span', {
        className: 'verified',
        textContent: 'verified ✓',
        title: `signed by its owner and proven in the ledger of zone ${ledger.zone} (entry ${ledger.index} of ${ledger.size})`,
      })),
    h('dl', { className: 'user-facts' },
      fact('Address', h('code', { className: 'address', textContent: shortAddress(rec.address), title: rec.address })),
      fact('Zone', rec.zone || '?'),
      fact('Ledger entry', h('code', { textContent: rec.seq, title: `relay key ${ledger.relayKey || '?'}` }))),
    h('div', { className: 'user-actions' }, connect, ping, status),
  );
  result.dataset.name = rec.name;
  result.dataset.address = rec.address;
  result.hidden = false;
}

form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!ddt) return;
  const node = ddt;
  const name = input.value.trim();
  go.disabled = true;
  go.textContent = 'Finding…';
  fails('');
  try {
    // Asking for the same name again means "look again", past the cache.
    const rec = await node.resolve(name, { fresh: name.toLowerCase() === lastFound });
    lastFound = rec.name;
    show(node, rec);
  } catch (err) {
    lastFound = '';
    fails(message(err));
  } finally {
    go.disabled = false;
    go.textContent = 'Find';
  }
});
