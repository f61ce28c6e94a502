// offscreen.js: the extension's node. The service worker makes this
// document (reason WEB_RTC: it has a window, RTCPeerConnection and
// IndexedDB, which pion's js backend and the node's store need) and keeps
// it: a port to the worker, pinged every 20 s, tells the worker at once
// when this document goes. It starts the node with the page's loader
// (node/ddt.js) for the relay its URL names, and serves the node's API on
// each MessagePort the worker hands it (from a page of the extension: the
// popup, the DDT page), with the protocol ddt.js speaks:
//
//   ← {op: 'hello', members, snapshot}   once the node runs
//   ← {op: 'ready', admission} | {op: 'ready', error}   ddt.ready, when it settles
//   → {op: 'call', id, method, args}  ← {op: 'result', id, value} | {op: 'error', id, error}
//        an option {__ddtCallback: n} is a function of the page's: ← {op: 'callback', id, n, args}
//        an option {__ddtSignal: true} is an AbortSignal: → {op: 'abort', id}
//   → {op: 'serve', id, domain, progress} with a MessagePort  → {op: 'unserve', id}
//   → {op: 'on', event}  ← {op: 'event', event, payload, snapshot}   → {op: 'off', event}
//   ← {op: 'snapshot', snapshot}   what the page's sync members read, when it changes
//   → {op: 'page', lock}   the Web Lock the page holds for its life: the page is gone when it is free
//   → {op: 'bye'}          the page goes (pagehide)
//   ← {op: 'unavailable', detail}   (from the worker) no node to hand the port to
//
// Its state goes to every page on the BroadcastChannel "ddt-node":
// {ddt: 'status', state: 'starting' | 'running' | 'failed', detail, relay}.
// A node that fails to start, or stops, is started again by reloading this
// document, after 2 s, then 4, 8 … up to a minute.

import { start } from './node/ddt.js';

/** @import {DDT, StateEvent} from './node/ddt.js' */

const params = new URLSearchParams(location.search);
const relay = params.get('relay') || '';
const news = new BroadcastChannel('ddt-node');
const RETRY_KEY = 'ddt-retry';

/** @type {{state: string, detail: string, relay: string}} */
let status = { state: 'starting', detail: 'Starting the node…', relay };

/** @param {string} state @param {string} detail */
function say(state, detail) {
  status = { state, detail, relay };
  news.postMessage({ ddt: 'status', ...status });
}

news.onmessage = (/** @type {MessageEvent} */ e) => {
  if (e.data && e.data.ddt === 'status?') news.postMessage({ ddt: 'status', ...status });
};

// The keepalive port: while it is open the worker knows this node is up.
function keepalive() {
  const port = chrome.runtime.connect({ name: 'ddt-node' });
  const ping = setInterval(() => port.postMessage({ ping: Date.now() }), 20000);
  port.onDisconnect.addListener(() => {
    clearInterval(ping);
    setTimeout(keepalive, 1000); // the worker was stopped: wake it again
  });
}
keepalive();

// What one page may have of the node at a time: calls in flight, and
// event names it follows.
const MAX_CALLS = 256;
const MAX_EVENTS = 64;
/** @type {Set<() => void>} the pages served, each by the function that ends it */
const clients = new Set();
/** @type {any} */ (window).ddtPages = () => clients.size; // for tests: the pages served now

/** @type {DDT | null} */
let ddt = null;
/** @type {StateEvent} the node's last state event: its sentence, for pages that come later */
let lastState = { state: 'connecting', detail: '', retryInMs: 0 };
/** @type {MessagePort[]} ports handed over before the node runs */
let early = [];

navigator.serviceWorker.addEventListener('message', (e) => {
  if (!e.data || e.data.ddt !== 'client' || !e.ports[0]) return;
  if (ddt) serve(ddt, e.ports[0]);
  else early.push(e.ports[0]);
});
navigator.serviceWorker.startMessages();

/**
 * retry reloads this document after a delay that doubles with every
 * failure in a row (kept in sessionStorage, which a reload keeps).
 * @param {string} why
 */
function retry(why) {
  const n = Number(sessionStorage.getItem(RETRY_KEY) || '0');
  const wait = Math.min(60000, 2000 * 2 ** n);
  sessionStorage.setItem(RETRY_KEY, String(n + 1));
  say('failed', `${why} Trying again in ${Math.round(wait / 1000)} s.`);
  for (const p of early) p.postMessage({ op: 'unavailable', detail: status.detail });
  setTimeout(() => location.reload(), wait);
}

if (!/^https?:\/\//.test(relay)) {
  retry(`The relay ${JSON.stringify(relay)} is not an http or https URL.`);
} else {
  say('starting', `Starting the node for ${relay}…`);
  start({ relay, storage: 'ddt', agent: 'ddt-extension', logLevel: /** @type {any} */ (localStorage.getItem('ddt-log') || 'warn') }, {
    onExit: (err) => {
      ddt = null;
      retry(`The node stopped: ${err.message}.`);
    },
  }).then((node) => {
    ddt = node;
    lastState = { state: node.state, detail: '', retryInMs: 0 };
    node.on('state', (e) => {
      lastState = e;
    });
    /** @type {any} */ (window).ddt = node;
    sessionStorage.removeItem(RETRY_KEY);
    node.ready.then(() => performance.mark('ddt:admitted'), () => {}); // for make bench
    say('running', `The node runs on ${relay}.`);
    for (const p of early) serve(node, p);
    early = [];
  }, (err) => retry(`The node could not start: ${err.message}.`));
}

// What the page's sync members read: sent again whenever it changes.
/** @param {DDT} node */
function snapshot(node) {
  return {
    address: node.address,
    zone: node.zone,
    relay: node.relay,
    state: node.state,
    username: node.username,
    friends: node.friends(),
    requests: node.requests(),
    chatStats: node.chatStats(),
    siteOrigin: siteOrigin(node),
    stateEvent: lastState,
  };
}

// siteURL of a placeholder domain, from which the page's client makes the
// others: asked again at most every 10 s while the node cannot say (it
// says why on the console each time).
let origin = '';
let originAsked = -Infinity;
/** @param {DDT} node */
function siteOrigin(node) {
  if (!origin && performance.now() - originAsked > 10000) {
    originAsked = performance.now();
    origin = node.siteURL('ddt-origin.ddt', '') || '';
  }
  return origin;
}

/** @param {unknown} err */
function wireError(err) {
  const e = /** @type {any} */ (err);
  if (e && typeof e === 'object') {
    // The node's codes are strings; a DOMException's numeric code is not one.
    return { name: String(e.name || 'Error'), message: String(e.message || e), code: typeof e.code === 'string' ? e.code : undefined, exitCode: e.exitCode };
  }
  return { name: 'Error', message: String(err) };
}

/**
 * serve answers one page on port for as long as the page keeps it.
 * @param {DDT} node
 * @param {MessagePort} port
 */
function serve(node, port) {
  /** @type {Map<string, () => void>} the events this page follows, each with its unsubscribe */
  const events = new Map();
  let offReady = () => {};
  /** @type {Map<number, AbortController>} */
  const aborts = new Map();
  /** @type {Map<number, () => void>} */
  const sites = new Map();
  let last = '';
  const push = () => {
    const s = snapshot(node);
    const text = JSON.stringify(s);
    if (text !== last) {
      last = text;
      port.postMessage({ op: 'snapshot', snapshot: s });
    }
  };
  let ended = false;
  // The page is gone once it says bye or its Web Lock is let go of (a
  // page that closed or crashed says nothing else): its subscriptions,
  // sites, calls' signals and timer go with it. A page only frozen keeps
  // its lock, and its messages wait for it.
  const gone = new AbortController();
  const end = () => {
    if (ended) return;
    ended = true;
    gone.abort();
    clearInterval(tick);
    for (const off of events.values()) off();
    offReady();
    for (const stop of sites.values()) stop();
    for (const c of aborts.values()) c.abort();
    clients.delete(end);
    port.close();
  };
  clients.add(end);
  const tick = setInterval(push, 1000);
  let calls = 0;
  port.onmessage = async (e) => {
    const m = e.data;
    if (!m || typeof m !== 'object' || ended) return;
    switch (m.op) {
      case 'call': {
        const fn = Object.hasOwn(node, m.method) ? /** @type {any} */ (node)[m.method] : undefined;
        if (typeof fn !== 'function' || m.method === 'on' || m.method === 'serveSite') {
          port.postMessage({ op: 'error', id: m.id, error: { name: 'TypeError', message: `ddt.${m.method} is not a method of the node` } });
          return;
        }
        if (calls >= MAX_CALLS) {
          port.postMessage({ op: 'error', id: m.id, error: { name: 'Error', code: 'busy', message: `This page has ${MAX_CALLS} calls to the node in flight: wait for some to end.` } });
          return;
        }
        calls++;
        const args = (Array.isArray(m.args) ? m.args : []).map((/** @type {any} */ a) => revive(a, m.id));
        try {
          const value = await fn.apply(node, args);
          push();
          port.postMessage({ op: 'result', id: m.id, value });
        } catch (err) {
          push();
          port.postMessage({ op: 'error', id: m.id, error: wireError(err) });
        } finally {
          calls--;
          aborts.delete(m.id);
        }
        return;
      }
      case 'page':
        // Granted when the page has let go of it: when the page is gone.
        if (typeof m.lock === 'string' && m.lock.startsWith('ddt-page:') && m.lock.length < 100) {
          navigator.locks.request(m.lock, { signal: gone.signal }, end).catch(() => {});
        }
        return;
      case 'abort':
        aborts.get(m.id)?.abort();
        return;
      case 'serve': {
        const opts = m.progress ? { onProgress: (/** @type {unknown} */ p) => port.postMessage({ op: 'callback', id: m.id, n: 0, args: [p] }) } : {};
        const stop = e.ports[0] ? node.serveSite(m.domain, e.ports[0], opts) : null;
        if (stop) sites.set(m.id, stop);
        return;
      }
      case 'unserve':
        sites.get(m.id)?.();
        sites.delete(m.id);
        return;
      case 'on':
        if (typeof m.event !== 'string' || events.has(m.event) || events.size >= MAX_EVENTS) return;
        try {
          events.set(m.event, node.on(/** @type {any} */ (m.event), (payload) => {
            const s = snapshot(node);
            last = JSON.stringify(s);
            port.postMessage({ op: 'event', event: m.event, payload, snapshot: s });
          }));
        } catch (err) {
          console.warn('ddt: a page asked for an event the node does not have:', m.event, err);
        }
        return;
      case 'off':
        events.get(m.event)?.();
        events.delete(m.event);
        return;
      case 'bye':
        end();
    }
  };

  /**
   * revive makes an argument of the page's a value for the node: its
   * options' callbacks become functions that post back, a signal an
   * AbortSignal this side.
   * @param {any} a
   * @param {number} id
   */
  function revive(a, id) {
    if (!a || typeof a !== 'object' || Array.isArray(a) || a instanceof Blob || ArrayBuffer.isView(a) || a instanceof ArrayBuffer || a instanceof FileList) return a;
    /** @type {Record<string, any>} */
    const out = {};
    for (const [k, v] of Object.entries(a)) {
      if (v && typeof v === 'object' && typeof v.__ddtCallback === 'number') {
        out[k] = (/** @type {unknown[]} */ ...args) => {
          try {
            port.postMessage({ op: 'callback', id, n: v.__ddtCallback, args });
          } catch (err) {
            console.warn('ddt: a callback\u2019s arguments could not be sent to the page:', err);
          }
        };
      } else if (v && typeof v === 'object' && v.__ddtSignal === true) {
        const c = new AbortController();
        aborts.set(id, c);
        out[k] = c.signal;
      } else {
        out[k] = v;
      }
    }
    return out;
  }

  last = JSON.stringify(snapshot(node));
  port.postMessage({ op: 'hello', members: describe(node), snapshot: snapshot(node) });
  // ddt.ready as it settles, and again at every later admission (the
  // page's ddt.ready is then replaced by a resolved promise, as a page's
  // own node does).
  node.ready.then(
    (admission) => port.postMessage({ op: 'ready', admission }),
    (err) => port.postMessage({ op: 'ready', error: wireError(err) }),
  );
  offReady = node.on('state', (e) => {
    if (e.state === 'admitted') port.postMessage({ op: 'ready', admission: { address: node.address, zone: node.zone } });
  });
}

/**
 * describe lists the node's members in order, each a method or a value.
 * @param {DDT} node
 */
function describe(node) {
  return Object.keys(node).map((name) => ({ name, method: typeof /** @type {any} */ (node)[name] === 'function' }));
}
