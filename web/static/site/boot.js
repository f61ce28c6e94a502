// boot.js: the boot page, what a site's origin shows before its service
// worker controls it (the relay serves it at every path of a site host).
// In a frame of a DDT page it asks the page to connect this site (which
// makes the connect frame, registering the worker and handing it the
// node's port) and then loads its path once — if the worker still does
// not answer, it says so rather than reload again. Opened on its own, it
// sends the reader to the DDT page with the site's address.

import { domain, pageOrigins, parentOrigin, trusted } from './page.js';

// How long a connect may take before the page says it is stuck.
const CONNECT_WAIT_MS = 30000;
// A second boot of the same path within this time means the worker did
// not take over: no reload, a message.
const RELOAD_GUARD_MS = 30000;

const main = /** @type {HTMLElement} */ (document.getElementById('ddt-boot'));
const title = /** @type {HTMLElement} */ (document.getElementById('ddt-boot-title'));
const statusEl = /** @type {HTMLElement} */ (document.getElementById('ddt-boot-status'));
const path = location.pathname + location.search + location.hash;
const address = `ddt://${domain()}${path}`;

/** @param {string} state @param {string} head @param {string} text */
function say(state, head, text) {
  main.dataset.ddtBoot = state;
  title.textContent = head;
  statusEl.textContent = text;
}

/** the DDT page a reader should open this site in */
function pageLink() {
  const meta = document.querySelector('meta[name="ddt-page"]');
  const base = (meta && meta.getAttribute('content')) || [...pageOrigins()][0] || '';
  return `${base.replace(/\/$/, '')}/#${address}`;
}

// guarded reports whether this path has booted too often lately to load
// it again: once in RELOAD_GUARD_MS when no worker controls this page (it
// did not take over: a reload would boot again), a few times when the
// worker served this page because no DDT page served the site yet (after
// the connect, it will have a port).
function guarded() {
  try {
    const key = `ddt-boot:${path}`;
    const now = Date.now();
    const recent = JSON.parse(sessionStorage.getItem(key) || '[]').filter((/** @type {number} */ t) => now - t < RELOAD_GUARD_MS);
    const allowed = navigator.serviceWorker && navigator.serviceWorker.controller ? 3 : 1;
    if (recent.length >= allowed) return true;
    sessionStorage.setItem(key, JSON.stringify([...recent, now]));
    return false;
  } catch {
    return true; // no storage to remember a reload by: never reload
  }
}

if (window.parent === window) {
  say('redirect', 'Opening in DDT…', 'A DDT site opens in a DDT page, where your node serves it.');
  location.replace(pageLink());
} else {
  const page = parentOrigin();
  let done = false;
  window.addEventListener('message', (e) => {
    if (!trusted(e) || done) return;
    const m = e.data;
    if (m && m.ddt === 'booted') {
      done = true;
      if (guarded()) {
        say('stuck', 'This site did not start', 'Its service worker does not answer its pages. Reload the DDT page to try again.');
        return;
      }
      say('loading', 'Opening this DDT site…', 'Loading the page.');
      location.reload();
    } else if (m && m.ddt === 'boot-failed') {
      done = true;
      say('failed', 'This site could not start', String(m.message || ''));
    }
  });
  // The path is all this says, and only to a DDT page (or, where the
  // browser cannot tell the parent's origin, to whoever embeds the frame,
  // which chose the address anyway).
  window.parent.postMessage({ ddt: 'boot', path }, page || '*');
  setTimeout(() => {
    if (done) return;
    say('stuck', 'This site is not connected', 'No DDT page answered. Open the site from your DDT page: ' + pageLink());
  }, CONNECT_WAIT_MS);
}
