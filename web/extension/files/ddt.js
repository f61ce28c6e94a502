// ddt.js (the extension's): what a page of the extension — the popup, the
// DDT page — starts instead of the loader. The node is not this page's:
// it runs in the extension's offscreen document, for as long as the
// browser does. start() asks the service worker for a MessagePort to it
// and returns the same API a page's own node offers (window.ddt), every
// call and event carried over that port (see offscreen.js for the
// protocol), plus setRelay(url). The sync members (address, state,
// friends(), siteURL() …) read a snapshot the node sends whenever it
// changes. When the node's document goes (closed, crashed, restarted for a
// new relay) the API stays: calls in flight fail with code "unavailable",
// the state reads "connecting" until the node is back, and then the same
// object carries on with the same node, address and all.

import builtin from './config.js';

/** @import {StartConfig, Progress, StateEvent} from '../../static/ddt.js' */
/** @import {ExtensionDDT, NodeStatus} from './ddt.d.ts' */

// How long a call made while the node is away waits for it to be back.
const AWAY_WAIT_MS = 60000;
// How soon a page connects again after the node turned it away.
const RECONNECT_MS = 1000;
// How long a connection may wait for its hello once the node runs: a
// port can be lost on the way (handed to a document that was reloading).
const HELLO_WAIT_MS = 2000;
// This page holds a Web Lock of its own for its whole life, and names it
// to the node: a MessagePort says nothing when its page is gone (Chromium
// 156 has no close event on it), and timers cannot tell (a hidden tab's
// run once a minute, a frozen one's not at all), but the lock is let go
// of when the page is, so the node waits for it to know.
const PAGE = `ddt-page:${crypto.randomUUID()}`;
navigator.locks.request(PAGE, () => new Promise(() => {})).catch(() => {});

// A page that goes says so too: the node lets go of it at once.
addEventListener('pagehide', () => {
  if (conn && !conn.dead) conn.port.postMessage({ op: 'bye' });
});

const news = new BroadcastChannel('ddt-node');

/** @type {NodeStatus} */
let status = { state: 'starting', detail: 'Starting the node…', relay: '' };
/** @type {Set<(s: NodeStatus) => void>} */
const statusListeners = new Set();

/** @param {NodeStatus} s */
function setStatus(s) {
  status = s;
  for (const fn of statusListeners) fn(s);
}

/**
 * A connection to the node: one port, the calls it carries.
 * @typedef {{
 *   port: MessagePort,
 *   open: boolean,
 *   dead: boolean,
 *   hello: Promise<void>,
 *   said: () => void,
 *   pending: Map<number, {resolve: (v: any) => void, reject: (e: Error) => void, callbacks: Function[]}>,
 * }} Conn
 */

/**
 * A site served on a page's port: its messages go to the node over inner
 * (a port of the node's connection), or wait in queue while the node is
 * away; open holds its requests not yet answered in full.
 * @typedef {{
 *   id: number, domain: string, port: MessagePort, onProgress: ((p: any) => void) | undefined,
 *   inner: MessagePort | null, conn: Conn | null, queue: any[], open: Set<number>,
 * }} Site
 */

/** @type {Conn | null} */
let conn = null;
/** @type {Map<number, Site>} the sites this page serves, by id */
const sites = new Map();
// How many of a site's requests wait for the node while it is away.
const MAX_SITE_QUEUE = 256;
// How many of a site's requests in flight it remembers, to fail them if
// the node goes.
const MAX_SITE_OPEN = 1024;
let nextID = 1;
/** @type {any} */
let snap = { address: '', zone: '', relay: '', state: 'connecting', username: '', friends: [], requests: [], chatStats: {}, siteOrigin: '' };
/** @type {Map<string, Set<(p: any) => void>>} */
const listeners = new Map();
/** @type {{name: string, method: boolean}[] | null} */
let members = null;
/** @type {(() => void) | null} */
let gotMembers = null;
const membersKnown = new Promise((resolve) => {
  gotMembers = () => resolve(undefined);
});
/** @type {(a: any) => void} */
let admit = () => {};
/** @type {(e: Error) => void} */
let refuse = () => {};
let readySettled = false;
/** @type {Promise<any>} ddt.ready: settled at the node's first answer, replaced at each later admission */
let ready = new Promise((resolve, reject) => {
  admit = resolve;
  refuse = reject;
});
ready.catch(() => {});

/**
 * failure is an Error as the node's are: a message for people and a code.
 * @param {string} code
 * @param {string} text
 */
function failure(code, text) {
  return Object.assign(new Error(text), { code });
}

/** errorFrom is the Error the node sent (its name, message and code). @param {any} e */
function errorFrom(e) {
  const err = Object.assign(new Error(String((e && e.message) || e)), e && e.code !== undefined ? { code: e.code } : {});
  if (e && e.name && e.name !== 'Error') err.name = e.name;
  if (e && e.exitCode !== undefined) Object.assign(err, { exitCode: e.exitCode });
  return err;
}

/** connect asks the service worker for a port to the node. */
function connect() {
  const ch = new MessageChannel();
  /** @type {() => void} */
  let said = () => {};
  /** @type {Conn} */
  const c = {
    port: ch.port1,
    open: false,
    dead: false,
    hello: new Promise((resolve) => {
      said = () => resolve(undefined);
    }),
    said: () => said(),
    pending: new Map(),
  };
  ch.port1.onmessage = (e) => onMessage(c, e.data);
  ch.port1.postMessage({ op: 'page', lock: PAGE });
  conn = c;
  const waiting = connected;
  connected = [];
  for (const fn of waiting) fn();
  navigator.serviceWorker.ready.then(
    (reg) => reg.active?.postMessage({ ddt: 'connect' }, [ch.port2]),
    (err) => setStatus({ state: 'failed', detail: `The extension's service worker is not running: ${err}`, relay: status.relay }),
  );
  return c;
}

/**
 * lost ends c: its calls fail, the state reads "connecting" until the node
 * is back.
 * @param {Conn} c
 * @param {string} why
 */
function lost(c, why) {
  if (c.dead) return;
  c.dead = true;
  c.port.close();
  c.said(); // whoever waits for its hello looks again (live)
  for (const p of c.pending.values()) p.reject(failure('unavailable', `${why} before it answered.`));
  c.pending.clear();
  for (const site of sites.values()) {
    if (site.conn !== c) continue;
    site.inner?.close();
    site.inner = null;
    site.conn = null;
    for (const id of site.open) site.port.postMessage({ id, error: { code: 'unavailable', message: `${why} while it served this page: reload it.` } });
    site.open.clear();
  }
  if (c.open && snap.state !== 'connecting') {
    snap = { ...snap, state: 'connecting' };
    dispatch('state', { state: 'connecting', detail: `${why}; it is starting again.`, retryInMs: 0 });
  }
  if (conn === c) conn = null;
}

/**
 * reserve serves site from the node of c: a port of the node's, bridged
 * to the page's, and what waited while the node was away.
 * @param {Site} site
 * @param {Conn} c
 */
function reserve(site, c) {
  if (site.conn === c) return;
  const ch = new MessageChannel();
  ch.port1.onmessage = (e) => {
    const m = e.data;
    if (!m || typeof m !== 'object') return;
    if (m.error || m.done || (m.status !== undefined && m.total === 0)) site.open.delete(m.id);
    const data = m.data instanceof Uint8Array ? [m.data.buffer] : [];
    site.port.postMessage(m, data); // the node's copy: this page's to hand on
  };
  site.inner = ch.port1;
  site.conn = c;
  c.pending.set(site.id, { resolve: () => {}, reject: () => {}, callbacks: site.onProgress ? [site.onProgress] : [] });
  c.port.postMessage({ op: 'serve', id: site.id, domain: site.domain, progress: !!site.onProgress }, [ch.port2]);
  const waiting = site.queue;
  site.queue = [];
  for (const m of waiting) ch.port1.postMessage(m);
}

/**
 * @param {Conn} c
 * @param {any} m
 */
function onMessage(c, m) {
  if (!m || typeof m !== 'object' || c.dead) return;
  switch (m.op) {
    case 'hello': {
      if (status.state !== 'running') setStatus({ state: 'running', detail: `The node runs on ${m.snapshot.relay}.`, relay: m.snapshot.relay });
      const was = snap.state;
      snap = m.snapshot;
      c.open = true;
      if (!members) {
        members = m.members;
        gotMembers?.();
      }
      for (const event of listeners.keys()) c.port.postMessage({ op: 'on', event });
      for (const site of sites.values()) reserve(site, c);
      c.said();
      if (was !== snap.state) dispatch('state', { state: snap.state, detail: '', retryInMs: 0 });
      return;
    }
    case 'ready':
      if (!readySettled) {
        readySettled = true;
        if (m.error) refuse(errorFrom(m.error));
        else admit(m.admission);
      } else if (!m.error) {
        ready = Promise.resolve(m.admission);
      }
      return;
    case 'snapshot':
      snap = m.snapshot;
      return;
    case 'event':
      snap = m.snapshot;
      dispatch(m.event, m.payload);
      return;
    case 'result':
    case 'error': {
      const p = c.pending.get(m.id);
      if (!p) return;
      c.pending.delete(m.id);
      if (m.op === 'result') p.resolve(m.value);
      else p.reject(errorFrom(m.error));
      return;
    }
    case 'callback': {
      const p = c.pending.get(m.id);
      const fn = p && p.callbacks[m.n];
      if (fn) fn(...(m.args || []));
      return;
    }
    case 'unavailable':
      // The worker could not hand the port over, or the node is failing:
      // try again (once it runs, news says so too).
      lost(c, 'The extension’s node is not running');
      setTimeout(() => {
        if (!conn || conn.dead) connect();
      }, RECONNECT_MS);
  }
}

/**
 * @param {string} event
 * @param {any} payload
 */
function dispatch(event, payload) {
  for (const fn of [...(listeners.get(event) || [])]) {
    try {
      fn(payload);
    } catch (err) {
      console.error(`ddt: a listener of "${event}" threw:`, err);
    }
  }
}

// The node's comings and goings, from its document and the worker.
news.onmessage = (/** @type {MessageEvent} */ e) => {
  const m = e.data;
  if (!m || typeof m !== 'object') return;
  if (m.ddt === 'status') {
    setStatus({ state: m.state, detail: m.detail, relay: m.relay });
    const c = conn;
    if (m.state === 'running' && (!c || c.dead)) connect();
    else if (m.state === 'running' && c && !c.open) {
      setTimeout(() => {
        if (!c.open && !c.dead) {
          lost(c, 'The port to the extension’s node was lost');
          connect();
        }
      }, HELLO_WAIT_MS);
    }
    if (m.state === 'failed' && conn) lost(conn, 'The extension’s node stopped');
  } else if (m.ddt === 'down') {
    if (conn) lost(conn, 'The extension’s node stopped');
    setStatus({ state: 'starting', detail: 'The node is starting again…', relay: status.relay });
    connect();
  }
};

/** @type {(() => void)[]} who waits for the next connection (live) */
let connected = [];

/**
 * live is the connection to use, waiting up to AWAY_WAIT_MS for the node
 * (across connections that end before their hello). A lost connection is
 * made again by whoever heard of the loss, after its own delay; live
 * makes one only if nobody has in RECONNECT_MS.
 * @param {number} [deadline] performance.now() by which the node must answer
 * @returns {Promise<Conn>}
 */
async function live(deadline = performance.now() + AWAY_WAIT_MS) {
  let timer;
  const away = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(failure('unavailable', `The extension’s node has not come back in ${AWAY_WAIT_MS / 1000} s: ${status.detail}`)),
      Math.max(0, deadline - performance.now()),
    );
  });
  try {
    if (!conn || conn.dead) {
      await Promise.race([new Promise((resolve) => {
        connected.push(() => resolve(undefined));
        setTimeout(() => resolve(undefined), RECONNECT_MS + 100);
      }), away]);
    }
    const c = conn && !conn.dead ? conn : connect();
    await Promise.race([c.hello, away]);
    if (!c.dead) return c;
  } finally {
    clearTimeout(timer);
  }
  return live(deadline);
}

/**
 * isOptions reports whether a is a call's options object (whose functions
 * and signals are carried across), not data that goes as it is: a Blob, a
 * File, bytes, a FileList or an array. (Reading a typed array's values
 * would copy it element by element.)
 * @param {unknown} a
 * @returns {a is Record<string, unknown>}
 */
function isOptions(a) {
  return (
    !!a && typeof a === 'object' && !Array.isArray(a) && !(a instanceof Blob) && !ArrayBuffer.isView(a) && !(a instanceof ArrayBuffer) && !(typeof FileList === 'function' && a instanceof FileList)
  );
}

/**
 * call runs method on the node with args (options' functions and signals
 * carried across).
 * @param {string} method
 * @param {any[]} args
 */
async function call(method, args) {
  /** @type {AbortSignal[]} */
  const signals = args.filter(isOptions).flatMap((a) => Object.values(a).filter((v) => v instanceof AbortSignal));
  const aborted = new Promise((_, reject) => {
    for (const sig of signals) {
      const stop = () => reject(Object.assign(new DOMException('The operation was aborted.', 'AbortError'), { code: 'aborted' }));
      if (sig.aborted) stop();
      else sig.addEventListener('abort', stop, { once: true });
    }
  });
  aborted.catch(() => {});
  const c = await Promise.race([live(), aborted]);
  const id = nextID++;
  /** @type {Function[]} */
  const callbacks = [];
  /** @type {(() => void)[]} */
  const cleanup = [];
  const wire = args.map((a) => {
    if (!isOptions(a)) return a;
    /** @type {Record<string, any>} */
    const out = {};
    for (const [k, v] of Object.entries(a)) {
      if (typeof v === 'function') {
        out[k] = { __ddtCallback: callbacks.length };
        callbacks.push(v);
      } else if (v instanceof AbortSignal) {
        if (v.aborted) throw Object.assign(new DOMException('The operation was aborted.', 'AbortError'), { code: 'aborted' });
        const onAbort = () => c.port.postMessage({ op: 'abort', id });
        v.addEventListener('abort', onAbort, { once: true });
        cleanup.push(() => v.removeEventListener('abort', onAbort));
        out[k] = { __ddtSignal: true };
      } else {
        out[k] = v;
      }
    }
    return out;
  });
  try {
    return await new Promise((resolve, reject) => {
      c.pending.set(id, { resolve, reject, callbacks });
      c.port.postMessage({ op: 'call', id, method, args: wire });
    });
  } finally {
    for (const f of cleanup) f();
  }
}

// The DDT domain rule (shared/names.CheckLabel), for the sync siteURL and
// serveSite: 1–63 of a–z, 0–9 and inner hyphens, before ".ddt".
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** @param {unknown} domain @returns {string} the label, or '' */
function label(domain) {
  if (typeof domain !== 'string') return '';
  const l = domain.trim().toLowerCase().replace(/\.ddt$/, '');
  return LABEL.test(l) ? l : '';
}

/**
 * escapePath writes each segment of path as Go's url.PathEscape does (the
 * node's siteURL): encodeURIComponent, but ! ' ( ) * escaped and
 * $ & + : = @ not.
 * @param {string} path
 */
function escapePath(path) {
  return path
    .replace(/^\//, '')
    .split('/')
    .map((seg) =>
      encodeURIComponent(seg)
        .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
        .replace(/%(24|26|2B|3A|3D|40)/gi, (m) => decodeURIComponent(m)),
    )
    .join('/');
}

// The longest path siteURL takes (shared/site.MaxPath).
const MAX_PATH = 1024;

/** The sync members, read from the node's snapshot or done here. */
const local = {
  friends: () => snap.friends || [],
  requests: () => snap.requests || [],
  chatStats: () => snap.chatStats || {},
  /** @param {string} domain @param {string} [path] */
  siteURL(domain, path) {
    const l = label(domain);
    const p = path === undefined || path === null ? '' : path;
    const wrong = !l
      ? `${JSON.stringify(domain)} is not a DDT domain`
      : typeof p !== 'string'
        ? 'a path must be a string'
        : p.length > MAX_PATH
          ? `a path is ${p.length} characters, at most ${MAX_PATH}`
          : !snap.siteOrigin
            ? 'the node serves no DDT sites here'
            : '';
    if (wrong) {
      console.error(`ddt.siteURL: ${wrong}`);
      return null;
    }
    return snap.siteOrigin.replace('//ddt-origin.ddt.', `//${l}.ddt.`) + escapePath(/** @type {string} */ (p));
  },
  /**
   * serveSite answers the site's worker on port from the extension's
   * node. The page's port stays here and each message is passed on over
   * a port of the node's, so that when the node restarts the site keeps
   * its port: its requests in flight fail (code "unavailable"), the
   * next ones wait for the node and go to the new one.
   * @param {string} domain
   * @param {MessagePort} port
   * @param {{onProgress?: (p: any) => void}} [options]
   */
  serveSite(domain, port, options) {
    const l = label(domain);
    if (!l || !(port instanceof MessagePort)) {
      console.error(`ddt.serveSite: ${!l ? `${JSON.stringify(domain)} is not a DDT domain` : 'port must be a MessagePort'}`);
      return null;
    }
    /** @type {Site} */
    const site = { id: nextID++, domain: `${l}.ddt`, port, onProgress: options && options.onProgress, inner: null, conn: null, queue: [], open: new Set() };
    sites.set(site.id, site);
    port.onmessage = (e) => {
      const m = e.data;
      if (!m || typeof m !== 'object') return;
      if (m.op === 'cancel') site.open.delete(m.id);
      if (site.inner) site.inner.postMessage(m);
      else if (site.queue.length < MAX_SITE_QUEUE) site.queue.push(m);
      else {
        if (m.op === 'open') site.port.postMessage({ id: m.id, error: { code: 'unavailable', message: 'The extension’s node is away, and this site has too many requests waiting for it.' } });
        return;
      }
      if (m.op === 'open') {
        site.open.add(m.id);
        // A request the worker never pulls to its end (a HEAD) stays here:
        // the oldest go first.
        for (const old of site.open) {
          if (site.open.size <= MAX_SITE_OPEN) break;
          site.open.delete(old);
        }
      }
    };
    if (conn && conn.open && !conn.dead) reserve(site, conn);
    else if (!conn || conn.dead) connect();
    return () => {
      sites.delete(site.id);
      port.onmessage = null;
      port.close();
      if (site.conn && !site.conn.dead) {
        site.conn.pending.delete(site.id);
        site.conn.port.postMessage({ op: 'unserve', id: site.id });
      }
      site.inner?.close();
    };
  },
  /**
   * @param {string} event
   * @param {(p: any) => void} fn
   */
  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('ddt.on(event, fn): fn must be a function');
    let set = listeners.get(event);
    if (!set) {
      set = new Set();
      listeners.set(event, set);
      if (conn && conn.open && !conn.dead) conn.port.postMessage({ op: 'on', event });
    }
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size > 0 || listeners.get(event) !== set) return;
      listeners.delete(event); // the node stops sending it
      if (conn && conn.open && !conn.dead) conn.port.postMessage({ op: 'off', event });
    };
  },
};

/** The getters, from the snapshot. */
const values = {
  address: () => snap.address,
  zone: () => snap.zone,
  relay: () => snap.relay,
  state: () => snap.state,
  username: () => snap.username,
  ready: () => ready,
};

/**
 * setRelay makes url the relay of the extension's node (saved; the node
 * starts again on it, with the same identity); '' goes back to the relay
 * the extension was built for.
 * @param {string} url
 * @returns {Promise<void>}
 */
export async function setRelay(url) {
  if (typeof url !== 'string') throw failure('invalid', 'setRelay(url): url must be a string such as "https://relay.example"');
  const t = url.trim();
  if (t === '') {
    await chrome.storage.local.remove('relay');
    return;
  }
  let u;
  try {
    u = new URL(t);
  } catch {
    throw failure('invalid', `${JSON.stringify(t)} is not a URL: a relay is an http or https URL such as https://relay.example`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw failure('invalid', `A relay is an http or https URL, not ${u.protocol}`);
  await chrome.storage.local.set({ relay: u.origin + u.pathname.replace(/\/$/, '') });
}

/** relayChoice is the relay the node uses (the user's, else the built-in one) and the built-in one. */
export async function relayChoice() {
  const { relay } = await chrome.storage.local.get('relay');
  return { relay: typeof relay === 'string' && relay ? relay : builtin.relay, builtin: builtin.relay };
}

/** @type {ExtensionDDT | null} */
let api = null;

/**
 * start connects to the extension's node and returns its API (also set as
 * window.ddt). The config a page passes is not the node's to take (its
 * relay is the user's choice: setRelay); onStatus hears the node's state
 * from now on: starting, running, failed (with why, and when it tries
 * again). It resolves once the node runs; without onStatus it rejects
 * (code "start", the node's reason) if the node cannot start first.
 * @param {StartConfig} [_config]
 * @param {{onProgress?: (p: Progress) => void, onStatus?: (s: NodeStatus) => void}} [hooks]
 * @returns {Promise<ExtensionDDT>}
 */
export async function start(_config, { onProgress, onStatus } = {}) {
  /** @type {(s: NodeStatus) => void} */
  let failedNow = () => {};
  const failing = new Promise((_, reject) => {
    failedNow = (s) => {
      if (s.state === 'failed') reject(Object.assign(new Error(s.detail), { code: 'start' }));
    };
  });
  // A host that does not follow the node's state (the DDT page) hears of
  // a node that cannot start as a start that failed, with why.
  const hear = onStatus || failedNow;
  statusListeners.add(hear);
  hear(status);
  news.postMessage({ ddt: 'status?' });
  if (!conn || conn.dead) connect();
  onProgress?.({ phase: 'start', received: 0, total: 0 });
  try {
    await (onStatus ? membersKnown : Promise.race([membersKnown, failing]));
  } finally {
    if (!onStatus) statusListeners.delete(failedNow);
  }
  if (api) return api;
  /** @type {any} */
  const o = {};
  for (const { name, method } of members || []) {
    if (name in values) {
      Object.defineProperty(o, name, { get: /** @type {any} */ (values)[name], enumerable: true });
    } else if (name in local) {
      o[name] = /** @type {any} */ (local)[name];
    } else if (method) {
      o[name] = (/** @type {any[]} */ ...args) => call(name, args);
    } else {
      Object.defineProperty(o, name, { get: () => snap[name], enumerable: true });
    }
  }
  o.setRelay = setRelay;
  api = /** @type {ExtensionDDT} */ (o);
  /** @type {any} */ (globalThis).ddt = api;
  dispatchEvent(new Event('ddt:loaded'));
  return api;
}

/**
 * lastState is the node's last state event (its sentence: why it retries,
 * or that its identity is new), which a page that subscribes later missed.
 * @returns {StateEvent}
 */
export function lastState() {
  return snap.stateEvent || { state: snap.state, detail: '', retryInMs: 0 };
}
