// sites.js: DDT sites in the page. The browse view shows a site in a frame
// of the site's own origin (ddt.siteURL), with an address bar for
// ddt://example.ddt/path (also the page's #ddt://… fragment), a loading
// indicator that says what a first visit is doing, and clear states for
// what fails. The Sites card opens an address and publishes a folder.
//
// How a site reaches the node: for each domain shown, a hidden connect
// frame (/.ddt/connect on the site's origin) registers the site's service
// worker; this page makes a MessageChannel, binds one end to the domain
// with ddt.serveSite and sends the other to that frame, which hands it to
// the worker. Messages are taken only from the frames this page made,
// checked by event.source and event.origin, and a domain is always the one
// the origin names, never one a message says: a site can ask for a port to
// its own files and nothing else.

import { $, formatBytes, h, message } from './dom.js';
import { log } from './log.js';

/** @import {DDT, PublishProgress, SiteFile, SiteProgress, StateEvent} from '../ddt.js' */

// How long a site's worker may take to register and take its port.
const CONNECT_WAIT_MS = 30000;
// An in-site navigation shows the loading indicator only if it takes
// longer than this (a page served from the node's store is quicker).
const SLOW_MS = 400;
// A connect frame asks for a new port at most this often.
const PORT_EVERY_MS = 1000;

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const browse = $('browse');
const bar = $('browse-bar', HTMLFormElement);
const addressInput = $('browse-address', HTMLInputElement);
const back = $('browse-back', HTMLButtonElement);
const reloadBtn = $('browse-reload', HTMLButtonElement);
const statusLine = $('browse-status');
const frame = $('site-frame', HTMLIFrameElement);
const loading = $('browse-loading');
const loadingTitle = $('browse-loading-title');
const stepWorker = $('step-worker');
const stepResolve = $('step-resolve');
const stepFetch = $('step-fetch');
const bar2 = $('browse-progress', HTMLProgressElement);
const failed = $('browse-failed');
const failedTitle = $('browse-failed-title');
const failedText = $('browse-failed-text');
const connectorsEl = $('site-connectors');

const openForm = $('site-open', HTMLFormElement);
const openInput = $('site-open-input', HTMLInputElement);
const openError = $('site-open-error');

const publishForm = $('publish', HTMLFormElement);
const drop = $('publish-drop', HTMLLabelElement);
const picker = $('publish-input', HTMLInputElement);
const filesText = $('publish-files');
const domainInput = $('publish-domain', HTMLInputElement);
const publishGo = $('publish-go', HTMLButtonElement);
const publishXfer = $('publish-xfer');
const publishBar = $('publish-progress', HTMLProgressElement);
const publishStatus = $('publish-status');
const publishResult = $('publish-result');
const resultDomain = $('publish-result-domain');
const resultVersion = $('publish-version');
const resultManifest = $('publish-manifest');
const resultOpen = $('publish-open', HTMLAnchorElement);
const publishError = $('publish-error');

/** @type {DDT | null} */
let ddt = null;
let admitted = false;

/**
 * A connect frame and the port it carries: one per domain this page has
 * shown lately.
 * @typedef {{
 *   domain: string, origin: string, frame: HTMLIFrameElement,
 *   stop: (() => void) | null, state: string, connected: boolean,
 *   ready: Promise<void>, settle: (err?: Error) => void, lastPort: number,
 *   portTimer: ReturnType<typeof setTimeout> | undefined,
 * }} Connector
 */
/** @type {Map<string, Connector>} */
const connectors = new Map();

/** What the frame shows: its domain and path, and whether it has loaded. */
const shown = { domain: '', path: '', loaded: true, version: 0, hash: '' };
/** @type {ReturnType<typeof setTimeout> | undefined} */
let slowTimer;

/**
 * attach wires the Sites card and the browse view to the node.
 * @param {DDT} node
 * @returns {() => void} detach
 */
export function attach(node) {
  ddt = node;
  const offs = [node.on('state', onState)];
  onState({ state: node.state || 'connecting', detail: '', retryInMs: 0 });
  window.addEventListener('message', onMessage);
  window.addEventListener('hashchange', onHash);
  onHash();
  return () => {
    offs.forEach((off) => off());
    window.removeEventListener('message', onMessage);
    window.removeEventListener('hashchange', onHash);
    leave();
    ddt = null;
  };
}

/** @param {StateEvent} ev */
function onState(ev) {
  admitted = ev.state === 'admitted';
  paintPublish();
}

// ---- addresses ------------------------------------------------------------

/**
 * parseAddress reads "ddt://example.ddt/a/b", "example.ddt/a/b",
 * "example.ddt" or "example" (or "web+ddt://example.ddt/a/b", as a
 * browser's protocol handler hands it over) into a domain and a path
 * ("/a/b"); null when it names no DDT domain.
 * @param {string} text
 * @returns {{domain: string, path: string} | null}
 */
export function parseAddress(text) {
  const s = schemeless(text.trim());
  const i = s.search(/[/?#]/);
  const host = (i < 0 ? s : s.slice(0, i)).toLowerCase().replace(/\.$/, '');
  let path = i < 0 ? '/' : s.slice(i);
  if (!path.startsWith('/')) path = `/${path}`;
  const label = host.endsWith('.ddt') ? host.slice(0, -4) : host;
  if (!LABEL.test(label)) return null;
  return { domain: `${label}.ddt`, path };
}

/**
 * schemeless is text without the scheme typed or handed over before it:
 * ddt://, or web+ddt: (a protocol handler's).
 * @param {string} text
 */
function schemeless(text) {
  return text.replace(/^(ddt:\/\/|web\+ddt:(\/\/)?)/i, '');
}

/**
 * domainOf is the domain whose site origin origin is, or '' when it is no
 * site's under this page (checked against ddt.siteURL, never taken from a
 * message).
 * @param {string} origin
 */
function domainOf(origin) {
  if (!ddt) return '';
  let host;
  try {
    host = new URL(origin).hostname;
  } catch {
    return '';
  }
  const label = host.split('.')[0];
  if (!LABEL.test(label) || !host.startsWith(`${label}.ddt.`)) return '';
  const domain = `${label}.ddt`;
  const url = ddt.siteURL(domain, '');
  return url && new URL(url).origin === origin ? domain : '';
}

/** @param {string} domain @param {string} path */
function addressOf(domain, path) {
  return `ddt://${domain}${path || '/'}`;
}

function onHash() {
  let hash = location.hash.slice(1);
  try {
    hash = decodeURIComponent(hash);
  } catch {
    // A link with a stray % (anyone may craft one) is read as it is.
  }
  if (!/^(ddt:\/\/|web\+ddt:)/i.test(hash)) {
    if (!browse.hidden) leave();
    return;
  }
  hash = `ddt://${schemeless(hash)}`;
  if (hash === shown.hash) return; // the page set it for what the frame shows
  const a = parseAddress(hash);
  if (!a) {
    enter();
    fail('Not a DDT address', `“${hash}” names no DDT domain: an address is ddt://name.ddt/path.`);
    return;
  }
  open(a.domain, a.path);
}

/**
 * go opens the address typed in an address field.
 * @param {string} text
 * @param {HTMLElement} errorEl
 */
function go(text, errorEl) {
  const a = parseAddress(text);
  if (!a) {
    errorEl.textContent = `“${text.trim()}” is not a DDT address: try example.ddt or ddt://example.ddt/page.html`;
    return;
  }
  errorEl.textContent = '';
  setHash(a.domain, a.path, true);
  open(a.domain, a.path);
}

/**
 * setHash puts the shown address in the page's fragment (pushed as an
 * entry when a person typed it, else replaced).
 * @param {string} domain @param {string} path @param {boolean} push
 */
function setHash(domain, path, push) {
  shown.hash = addressOf(domain, path);
  // An absolute URL: the page's <base> names its files' folder.
  const url = `${location.pathname}${location.search}#${shown.hash}`;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

openForm.addEventListener('submit', () => go(openInput.value, openError));
bar.addEventListener('submit', () => go(addressInput.value, statusLine));
back.addEventListener('click', () => {
  history.pushState(null, '', location.pathname + location.search);
  leave();
});
reloadBtn.addEventListener('click', () => {
  if (shown.domain) open(shown.domain, shown.path);
});

// ---- the browse view ------------------------------------------------------

function enter() {
  if (!browse.hidden) return;
  browse.hidden = false;
  document.body.classList.add('browsing');
}

/** leave goes back to the node's cards, letting every site's port go. */
function leave() {
  browse.hidden = true;
  document.body.classList.remove('browsing');
  frame.removeAttribute('src');
  for (const c of connectors.values()) dropConnector(c);
  Object.assign(shown, { domain: '', path: '', loaded: true, version: 0, hash: '' });
  hideLoading();
  failed.hidden = true;
}

/**
 * open shows path of domain's site in the frame, connecting the site
 * first.
 * @param {string} domain @param {string} path
 */
async function open(domain, path) {
  if (!ddt) return;
  enter();
  failed.hidden = true;
  Object.assign(shown, { domain, path, loaded: false });
  shown.hash = addressOf(domain, path);
  addressInput.value = shown.hash;
  statusLine.textContent = '';
  document.title = `${domain} — DDT`;
  showLoading(domain);
  const c = connector(domain);
  paintWorker(c);
  try {
    await c.ready;
  } catch (err) {
    if (shown.domain === domain) fail(`${domain} could not start`, message(err));
    return;
  }
  if (shown.domain !== domain || shown.path !== path) return; // another address since
  const url = ddt.siteURL(domain, path);
  if (!url) {
    fail('This relay serves no sites', 'Its page names no sites domain, and it is not on loopback.');
    return;
  }
  frame.src = url;
}

frame.addEventListener('load', () => {
  if (!frame.getAttribute('src')) return;
  shown.loaded = true;
  hideLoading();
});

/** @param {string} domain */
function showLoading(domain) {
  clearTimeout(slowTimer);
  loadingTitle.textContent = `Opening ${domain}`;
  for (const s of [stepResolve, stepFetch]) step(s, 'pending', '');
  bar2.removeAttribute('value');
  loading.hidden = false;
}

function hideLoading() {
  clearTimeout(slowTimer);
  loading.hidden = true;
}

/**
 * fail shows why the site cannot be shown, in place of the frame.
 * @param {string} title @param {string} text
 */
function fail(title, text) {
  hideLoading();
  failedTitle.textContent = title;
  failedText.textContent = text;
  failed.hidden = false;
  statusLine.textContent = title;
}

/**
 * step paints one line of the loading indicator.
 * @param {HTMLElement} el @param {'pending' | 'active' | 'done' | 'failed'} state @param {string} detail
 */
function step(el, state, detail) {
  el.dataset.state = state;
  const d = el.querySelector('.step-detail');
  if (d) d.textContent = detail;
}

/** @param {Connector} c */
function paintWorker(c) {
  const words = {
    registering: 'registering…',
    installing: 'installing…',
    activating: 'activating…',
    ready: c.connected ? 'running, connected to your node' : 'running',
    failed: 'failed',
  }[c.state] || c.state;
  step(stepWorker, c.state === 'failed' ? 'failed' : c.connected ? 'done' : 'active', words);
}

/**
 * onSiteProgress paints what serving c's site is doing: the loading
 * indicator's steps on a page load, the address bar as the frame moves
 * within the site.
 * @param {Connector} c @param {SiteProgress} p
 */
function onSiteProgress(c, p) {
  // Only the shown site's reports move the address bar: its port is the
  // only one served (see connector), and its reports can only name its
  // own paths. A page load of another domain comes as a boot, from the
  // frame itself.
  if (c.domain !== shown.domain) return;
  if (p.navigate && p.phase === 'open') {
    const path = `/${p.path}`;
    if (path !== shown.path || shown.loaded) {
      shown.path = path;
      shown.loaded = false;
      setHash(c.domain, path, false);
      addressInput.value = shown.hash;
      document.title = `${c.domain} — DDT`;
      // A quick page (from this node's store) shows no indicator.
      if (loading.hidden) {
        clearTimeout(slowTimer);
        slowTimer = setTimeout(() => {
          if (!shown.loaded) showLoading(c.domain);
          paintWorker(c);
        }, SLOW_MS);
      }
    }
    return;
  }
  switch (p.phase) {
    case 'resolving':
      if (p.navigate) step(stepResolve, 'active', `${c.domain}…`);
      break;
    case 'manifest':
      if (p.navigate) {
        step(stepResolve, 'done', 'verified');
        step(stepFetch, 'active', 'the site’s list of files…');
      }
      break;
    case 'fetching': {
      if (p.navigate) step(stepResolve, 'done', 'verified');
      const name = p.path || 'index.html';
      const of = p.of || 0;
      // Bytes count as they arrive, chunks once checked and stored: a
      // download's several chunks in flight put the first ahead.
      step(stepFetch, 'active', `${name}: ${p.total ? `${formatBytes(p.done || 0)} of ${formatBytes(p.total)} received, ` : ''}${p.chunks || 0} of ${of} chunk${of === 1 ? '' : 's'} stored`);
      if (of > 0) {
        bar2.max = of;
        bar2.value = p.chunks || 0;
      }
      break;
    }
    case 'served':
      step(stepResolve, 'done', 'verified');
      step(stepFetch, 'done', p.path || '');
      shown.version = p.version || 0;
      statusLine.textContent = `${c.domain} · version ${p.version} · served by your node`;
      break;
    case 'error':
      step(stepFetch, 'failed', p.message || '');
      statusLine.textContent = p.code === 'unknown-domain' ? `Nobody holds ${c.domain}.`
        : p.code === 'not-found' ? `${c.domain} has no page ${shown.path}.`
          : `${c.domain}: ${p.message || p.code}`;
      break;
  }
}

// ---- connect frames -------------------------------------------------------

/**
 * connector returns the connect frame of domain, made if need be.
 * @param {string} domain
 * @returns {Connector}
 */
function connector(domain) {
  const have = connectors.get(domain);
  if (have) return have;
  const url = /** @type {DDT} */ (ddt).siteURL(domain, '.ddt/connect');
  if (!url) throw new Error(`${domain} has no site origin under this page`);
  /** @type {(err?: Error) => void} */
  let settle = () => {};
  /** @type {Promise<void>} */
  const ready = new Promise((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  ready.catch(() => {}); // a failure is shown by whoever waits
  const f = h('iframe', { src: url, title: `connector of ${domain}`, tabIndex: -1 });
  f.setAttribute('aria-hidden', 'true');
  /** @type {Connector} */
  const c = { domain, origin: new URL(url).origin, frame: f, stop: null, state: 'registering', connected: false, ready, settle, lastPort: 0, portTimer: undefined };
  f.addEventListener('load', () => {
    // A site's script can reload its connect frame (same origin): a new
    // port at most once a second, the last load's after the pause.
    clearTimeout(c.portTimer);
    const wait = PORT_EVERY_MS - (Date.now() - c.lastPort);
    if (wait <= 0) givePort(c);
    else c.portTimer = setTimeout(() => connectors.get(c.domain) === c && givePort(c), wait);
  });
  const timer = setTimeout(() => {
    if (!c.connected) c.settle(new Error(`The site's service worker did not start within ${CONNECT_WAIT_MS / 1000} s (${c.state}).`));
  }, CONNECT_WAIT_MS);
  ready.then(() => clearTimeout(timer), () => clearTimeout(timer));
  // Only the shown site keeps a connect frame, so only its worker has a
  // port: a page load of another DDT site in the frame (a link) finds none
  // and gets the boot page, which asks this page, by the frame's own
  // window, to show it; and a site that frames another inside it gets
  // nothing served there, so its frame cannot move this page's address
  // bar to a domain it does not show.
  for (const old of [...connectors.values()]) dropConnector(old);
  connectors.set(domain, c);
  connectorsEl.append(f);
  return c;
}

/** @param {Connector} c */
function dropConnector(c) {
  clearTimeout(c.portTimer);
  if (c.stop) c.stop();
  c.stop = null;
  c.frame.remove();
  c.settle(new Error('The site was closed.'));
  connectors.delete(c.domain);
}

/**
 * givePort binds a new MessageChannel to c's domain and sends the
 * worker's end to c's frame (and only to its origin).
 * @param {Connector} c
 */
function givePort(c) {
  if (!ddt || !c.frame.contentWindow) return;
  c.lastPort = Date.now();
  if (c.stop) c.stop();
  const ch = new MessageChannel();
  c.stop = ddt.serveSite(c.domain, ch.port1, { onProgress: (p) => onSiteProgress(c, p) });
  c.frame.contentWindow.postMessage({ ddt: 'port' }, c.origin, [ch.port2]);
}

/**
 * onMessage takes the frames' messages: a boot from the site frame, and
 * the connect frames' statuses and requests for a port. Anything else, or
 * from anywhere else, is ignored.
 * @param {MessageEvent} e
 */
function onMessage(e) {
  const m = e.data;
  if (!m || typeof m !== 'object' || typeof m.ddt !== 'string') return;
  if (e.source && e.source === frame.contentWindow) {
    if (m.ddt !== 'boot') return;
    const domain = domainOf(e.origin);
    if (domain) boot(domain, /** @type {Window} */ (e.source), e.origin, typeof m.path === 'string' ? m.path : '/');
    return;
  }
  for (const c of connectors.values()) {
    if (e.source !== c.frame.contentWindow || e.origin !== c.origin) continue;
    switch (m.ddt) {
      case 'status':
        c.state = String(m.state);
        if (c.state === 'failed') c.settle(new Error(String(m.message || 'The site\u2019s service worker could not be registered.')));
        break;
      case 'connected':
        c.connected = true;
        c.settle();
        break;
      case 'need-port':
        // The worker restarted with no port. One a second at most: a
        // site's script cannot make this page bind ports in a loop.
        if (Date.now() - c.lastPort >= PORT_EVERY_MS) givePort(c);
        break;
    }
    if (c.domain === shown.domain) paintWorker(c);
    return;
  }
}

/**
 * boot answers a boot page in the site frame: the frame has gone to a
 * site (a link from another) whose worker does not control it yet.
 * @param {string} domain @param {Window} source @param {string} origin @param {string} path
 */
async function boot(domain, source, origin, path) {
  const p = path.split(/[?#]/)[0] || '/';
  Object.assign(shown, { domain, path: p, loaded: false });
  setHash(domain, p, false);
  addressInput.value = shown.hash;
  document.title = `${domain} — DDT`;
  showLoading(domain);
  step(stepResolve, 'active', `${domain}…`);
  try {
    // The domain first, then a worker: a site that walks its frame through
    // made-up names registers nothing in this profile for them.
    await /** @type {DDT} */ (ddt).resolveDomain(domain);
  } catch (err) {
    const why = message(err);
    fail(`${domain} cannot be shown`, why.charAt(0).toUpperCase() + why.slice(1) + (/[.!?]$/.test(why) ? '' : '.'));
    source.postMessage({ ddt: 'boot-failed', message: message(err) }, origin);
    return;
  }
  const c = connector(domain);
  paintWorker(c);
  try {
    await c.ready;
    source.postMessage({ ddt: 'booted' }, origin);
  } catch (err) {
    source.postMessage({ ddt: 'boot-failed', message: message(err) }, origin);
  }
}

// ---- publishing ----------------------------------------------------------

/** @type {SiteFile[] | FileList | null} */
let chosen = null;
let publishing = false;

function paintPublish() {
  const ready = !!ddt && admitted;
  picker.disabled = !ready || publishing;
  drop.setAttribute('aria-disabled', String(!ready || publishing));
  publishGo.disabled = !ready || publishing || !chosen || !domainInput.value.trim();
}

/**
 * choose takes the folder to publish.
 * @param {SiteFile[] | FileList} files @param {string} folder
 */
function choose(files, folder) {
  chosen = files;
  let bytes = 0;
  for (let i = 0; i < files.length; i++) {
    const f = files instanceof FileList ? files[i] : files[i].data;
    bytes += f instanceof Blob ? f.size : 0;
  }
  filesText.textContent = `${files.length} file${files.length === 1 ? '' : 's'}, ${formatBytes(bytes)}${folder ? ` from ${folder}/` : ''}`;
  if (!domainInput.value && folder) {
    const name = folder.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63);
    if (LABEL.test(name)) domainInput.value = name;
  }
  publishError.textContent = '';
  paintPublish();
}

picker.addEventListener('change', () => {
  const files = picker.files;
  if (!files || !files.length) return;
  choose(files, (files[0].webkitRelativePath || '').split('/')[0]);
});
domainInput.addEventListener('input', paintPublish);

for (const t of ['dragenter', 'dragover']) {
  drop.addEventListener(t, (ev) => {
    ev.preventDefault();
    if (!picker.disabled) drop.classList.add('over');
  });
}
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  if (picker.disabled || !ev.dataTransfer) return;
  try {
    const { files, folder } = await dropped(ev.dataTransfer);
    if (files.length) choose(files, folder);
  } catch (err) {
    publishError.textContent = `The dropped folder could not be read: ${message(err)}`;
  }
});

/**
 * dropped reads a drop's files, folders walked: their paths relative to
 * the one folder dropped (or to the drop, for several items).
 * @param {DataTransfer} dt
 * @returns {Promise<{files: SiteFile[], folder: string}>}
 */
async function dropped(dt) {
  /** @type {FileSystemEntry[]} */
  const entries = [];
  for (const item of Array.from(dt.items)) {
    const e = item.kind === 'file' && item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (e) entries.push(e);
  }
  /** @type {SiteFile[]} */
  const files = [];
  const one = entries.length === 1 && entries[0].isDirectory ? entries[0] : null;
  /** @param {FileSystemEntry} e @param {string} prefix */
  const walk = async (e, prefix) => {
    if (e.isFile) {
      const file = await new Promise((resolve, reject) => /** @type {FileSystemFileEntry} */ (e).file(resolve, reject));
      files.push({ path: prefix + e.name, data: file, type: file.type });
      return;
    }
    const reader = /** @type {FileSystemDirectoryEntry} */ (e).createReader();
    for (;;) {
      /** @type {FileSystemEntry[]} */
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child, `${prefix}${e === one ? '' : `${e.name}/`}`);
    }
  };
  for (const e of entries) await walk(e, '');
  return { files, folder: one ? one.name : '' };
}

publishForm.addEventListener('submit', async () => {
  if (!ddt || !chosen || publishing) return;
  const domain = `${domainInput.value.trim().toLowerCase().replace(/\.ddt$/, '')}.ddt`;
  publishing = true;
  paintPublish();
  publishError.textContent = '';
  publishResult.hidden = true;
  publishXfer.hidden = false;
  publishBar.removeAttribute('value');
  publishStatus.textContent = `Publishing ${domain}…`;
  try {
    const r = await ddt.publishSite(domain, chosen, { onProgress: paintPublishProgress });
    publishXfer.hidden = true;
    resultDomain.textContent = r.domain;
    resultVersion.textContent = String(r.version);
    resultManifest.textContent = r.manifest;
    resultOpen.href = `#${addressOf(r.domain, '/')}`;
    resultOpen.textContent = `Open ${r.domain}`;
    publishResult.hidden = false;
    log(`Published ${r.domain}, version ${r.version}.`, 'ok');
  } catch (err) {
    publishXfer.hidden = true;
    publishError.textContent = message(err);
    log(`Publishing ${domain} failed: ${message(err)}`, 'err');
  } finally {
    publishing = false;
    paintPublish();
  }
});

/** @param {PublishProgress} p */
function paintPublishProgress(p) {
  if (p.totalBytes > 0) {
    publishBar.max = p.totalBytes;
    publishBar.value = p.bytes;
  }
  publishStatus.textContent = {
    files: `Storing the files: ${p.files} of ${p.totalFiles} (${formatBytes(p.bytes)} of ${formatBytes(p.totalBytes)})`,
    manifest: 'Publishing the site\u2019s manifest…',
    claim: 'Claiming the domain at its home relay…',
    done: 'Published.',
  }[p.phase] || p.phase;
}
