// peers.js: the Peers card: one row per open data channel, with its kind,
// how it was signaled, its round trip and a Ping button; kept current by
// the peer events and a poll of ddt.peers().

import { $, formatMs, h, message, shortAddress } from './dom.js';
import { log } from './log.js';

/** @import {DDT, DialFailedEvent, PeerEvent, PeerGoneEvent} from '../ddt.js' */

const REFRESH_MS = 2000;

const list = $('peers', HTMLUListElement);
const count = $('peer-count');
const empty = $('peers-empty');

/** @typedef {{li: HTMLLIElement, kind: HTMLElement, via: HTMLElement, rtt: HTMLElement}} Row */

/** @type {DDT | null} */
let ddt = null;
/** @type {Map<string, Row>} address → row */
const rows = new Map();
let generation = 0; // bumped by peer events so a stale poll does not undo them
let polling = false;

/**
 * attach lists the node's peers and keeps the list current.
 * @param {DDT} node
 * @returns {() => void} detach
 */
export function attach(node) {
  ddt = node;
  const offs = [node.on('peer', onPeer), node.on('peer-gone', onPeerGone), node.on('dial-failed', onDialFailed)];
  // No channel opens before the node is admitted (the peer events say
  // when one does): the first poll waits for that.
  Promise.resolve(node.ready).then(refresh, refresh);
  const timer = setInterval(refresh, REFRESH_MS);
  return () => {
    clearInterval(timer);
    offs.forEach((off) => off());
  };
}

/**
 * has reports whether the list shows a channel to address.
 * @param {string} address
 */
export function has(address) {
  return rows.has(address);
}

/** refresh asks the node for its peers and repaints the list. */
export async function refresh() {
  if (!ddt || polling) return;
  polling = true;
  const started = generation;
  try {
    const peers = (await ddt.peers()) || [];
    if (started !== generation) return;
    const seen = new Set();
    for (const p of peers) {
      if (!p || !p.address) continue;
      seen.add(p.address);
      paint(row(p.address), p);
    }
    for (const address of [...rows.keys()]) if (!seen.has(address)) remove(address);
    paintCount();
  } catch (err) {
    // Keep the last list; the next poll may succeed. Say so once in the console.
    console.debug('ddt.peers() failed:', err);
  } finally {
    polling = false;
  }
}

/**
 * row returns the row of address, made if new.
 * @param {string} address
 * @returns {Row}
 */
function row(address) {
  let r = rows.get(address);
  if (r) return r;
  const kind = h('span', { className: 'tag' });
  const via = h('span', { className: 'tag via' });
  const rtt = h('span', { className: 'rtt' });
  const result = h('span', { className: 'ping-result' });
  result.setAttribute('role', 'status');
  const ping = h('button', { type: 'button', className: 'btn small', textContent: 'Ping' });
  ping.setAttribute('aria-label', `Ping ${shortAddress(address)}`);
  ping.addEventListener('click', async () => {
    if (!ddt) return;
    ping.disabled = true;
    result.className = 'ping-result';
    result.textContent = '…';
    try {
      const ms = await ddt.ping(address);
      result.textContent = `${formatMs(ms)} ms`;
      result.classList.add('ok');
    } catch (err) {
      result.textContent = message(err);
      result.classList.add('err');
    } finally {
      ping.disabled = false;
    }
  });
  const addr = h('code', { className: 'address', textContent: shortAddress(address), title: address });
  const tags = h('span', { className: 'tags' }, kind, via);
  const li = h('li', { className: 'peer' }, addr, tags, rtt, h('span', { className: 'ping' }, ping, result));
  li.dataset.address = address;
  list.append(li);
  r = { li, kind, via, rtt };
  rows.set(address, r);
  return r;
}

/**
 * @param {Row} r
 * @param {{native: boolean, rttMs?: number, via?: string}} p
 */
function paint(r, { native, rttMs, via }) {
  r.li.dataset.native = native ? 'true' : 'false';
  r.kind.textContent = native ? 'native' : 'browser';
  r.kind.title = native ? 'a headless native node' : 'a node in a browser tab';
  if (via) {
    r.li.dataset.via = via;
    r.via.textContent = `via ${via}`;
    r.via.title = via === 'overlay'
      ? 'this channel was signaled through other peers, without the relay'
      : 'this channel was signaled through the relay';
  }
  if (typeof rttMs === 'number' && rttMs > 0) {
    r.rtt.textContent = `${formatMs(rttMs)} ms`;
    r.rtt.title = 'round-trip time';
  } else if (rttMs !== undefined || !r.rtt.textContent) {
    r.rtt.textContent = '— ms';
    r.rtt.title = 'not measured yet';
  }
}

function paintCount() {
  count.textContent = String(rows.size);
  empty.hidden = rows.size > 0;
}

/** @param {string} address */
function remove(address) {
  const r = rows.get(address);
  if (!r) return;
  r.li.remove();
  rows.delete(address);
}

/** @param {PeerEvent} ev */
function onPeer(ev) {
  if (!ev || !ev.address) return;
  generation++;
  paint(row(ev.address), { native: ev.native, rttMs: undefined, via: ev.via });
  paintCount();
  log(`Peer connected: ${shortAddress(ev.address)} (${ev.native ? 'native' : 'browser'}, via ${ev.via || 'relay'}).`, 'ok');
}

/** @param {PeerGoneEvent} ev */
function onPeerGone(ev) {
  if (!ev || !ev.address) return;
  generation++;
  remove(ev.address);
  paintCount();
  log(`Peer left: ${shortAddress(ev.address)}${ev.reason ? ` — ${ev.reason}` : ''}.`);
}

/**
 * onDialFailed says that a connection attempt failed, and when the node
 * tries again by itself.
 * @param {DialFailedEvent} ev
 */
function onDialFailed(ev) {
  if (!ev || !ev.address) return;
  const retry = ev.retryInMs > 0 ? `; retrying in ${Math.max(1, Math.round(ev.retryInMs / 1000))} s` : '';
  log(`Connecting to ${shortAddress(ev.address)} failed: ${ev.reason || 'no reason given'}${retry}.`, 'warn');
}

paintCount();
