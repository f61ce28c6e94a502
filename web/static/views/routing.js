// routing.js: the Routing table card: the fill of each DHT bucket, the
// routed-message counters (polled), and the form that looks up or connects
// to a DDT address.

import { $, formatMs, h, message, shortAddress } from './dom.js';
import * as peers from './peers.js';

/** @import {DDT, OverlayStats, Routing} from '../ddt.js' */

const REFRESH_MS = 2000;
const BUCKET_SIZE = 20;

const buckets = $('buckets', HTMLOListElement);
const bucketsEmpty = $('buckets-empty');
const contactCount = $('contact-count');
const overlayStats = $('overlay-stats');
const find = $('find', HTMLFormElement);
const findAddress = $('find-address', HTMLInputElement);
const findLookup = $('find-lookup', HTMLButtonElement);
const findConnect = $('find-connect', HTMLButtonElement);
const findResult = $('find-result');

/** @type {DDT | null} */
let ddt = null;
let busy = false;

/**
 * attach shows the node's routing table and keeps it current.
 * @param {DDT} node
 * @returns {() => void} detach
 */
export function attach(node) {
  ddt = node;
  // The table is empty until the node is admitted: the first look waits
  // for that, and stays out of the admission's way.
  Promise.resolve(node.ready).then(refresh, refresh);
  const timer = setInterval(refresh, REFRESH_MS);
  return () => clearInterval(timer);
}

async function refresh() {
  if (!ddt || busy || typeof ddt.routing !== 'function') return;
  busy = true;
  try {
    const r = await ddt.routing();
    paint(r || {});
  } catch (err) {
    console.debug('ddt.routing() failed:', err);
  } finally {
    busy = false;
  }
}

/** @param {Partial<Routing>} r */
function paint({ buckets: list = [], contacts = 0, overlay }) {
  contactCount.textContent = String(contacts);
  bucketsEmpty.hidden = list.length > 0;
  const items = list.map((b) => {
    const fill = Math.min(1, b.contacts / BUCKET_SIZE);
    const bar = h('span', { className: 'bucket-bar' });
    bar.style.setProperty('--fill', String(fill));
    const dots = h('span', { className: 'bucket-dots' });
    for (let i = 0; i < Math.min(b.connected, 8); i++) dots.append(h('span', { className: 'dot' }));
    const li = h('li', { className: 'bucket' },
      h('span', { className: 'bucket-index', textContent: String(b.index) }),
      bar,
      h('span', { className: 'bucket-count', textContent: `${b.contacts}` }),
      dots);
    li.title = `bucket ${b.index}: ${b.contacts} contact${b.contacts === 1 ? '' : 's'}, ${b.connected} with an open channel`;
    return li;
  });
  buckets.replaceChildren(...items);
  if (overlay) {
    overlayStats.textContent = `Routed messages — sent ${overlay.sent}, delivered here ${overlay.delivered}, ` +
      `forwarded ${overlay.forwarded}, dropped ${overlay.dropped}.` +
      (overlay.unknown ? ` Skipped ${overlay.unknown} of message types this node does not know (from newer peers).` : '') +
      defended(overlay);
  }
}

/**
 * What the node turned away from peers that flood, replay or stop reading,
 * as a sentence; "" when nothing was.
 * @param {OverlayStats} o
 */
function defended(o) {
  /** @type {[number, string][]} */
  const counts = [
    [o.stale + o.replayed, 'stale or replayed'],
    [o.queueFull, 'not sent to peers too slow to read them'],
    [o.busy, 'requests over the limit'],
    [o.offersRefused, 'connection offers'],
  ];
  const parts = counts.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}`);
  if (o.stalled > 0) parts.push(`${o.stalled} peer${o.stalled === 1 ? '' : 's'} closed for not reading`);
  return parts.length ? ` Turned away: ${parts.join(', ')}.` : '';
}

// ---- find a node --------------------------------------------------------

function target() {
  const v = findAddress.value.trim().toLowerCase();
  if (!/^[0-9a-f]{40}$/.test(v)) {
    says('An address is 40 hex digits.', 'err');
    return '';
  }
  return v;
}

/**
 * @param {string} text
 * @param {'' | 'ok' | 'err'} [kind]
 */
function says(text, kind = '') {
  findResult.textContent = text;
  findResult.className = `find-result ${kind}`;
}

/** @param {boolean} b */
function finding(b) {
  findLookup.disabled = b;
  findConnect.disabled = b;
}

find.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const address = target();
  if (!address || !ddt) return;
  finding(true);
  says('Looking up…');
  try {
    const r = await ddt.lookup(address);
    const rounds = `${r.hops} round${r.hops === 1 ? '' : 's'}, ${r.messages} messages, ${formatMs(r.ms)} ms`;
    if (r.found) says(`Found ${shortAddress(address)}: ${rounds}.`, 'ok');
    else says(`Not found (${rounds}). Closest known: ${(r.closest || []).slice(0, 3).map(shortAddress).join(', ') || 'none'}.`, 'err');
  } catch (err) {
    says(message(err), 'err');
  } finally {
    finding(false);
  }
});

findConnect.addEventListener('click', async () => {
  const address = target();
  if (!address || !ddt) return;
  finding(true);
  says('Opening a data channel…');
  try {
    const p = await ddt.connect(address);
    says(`Connected to ${shortAddress(address)} via ${p.via}.`, 'ok');
    peers.refresh();
  } catch (err) {
    says(message(err), 'err');
  } finally {
    finding(false);
  }
});
