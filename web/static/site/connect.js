// connect.js: the connect frame, a hidden frame the DDT page makes at
// /.ddt/connect of a site's origin. It registers the site's service worker
// (telling the page how that goes: installing, activating, ready), hands
// the worker each MessagePort the page sends (made and bound to this
// site's domain by ddt.serveSite in the page), keeps the worker alive
// while the page shows the site, and asks the page for a new port when the
// worker restarts and has none. It takes messages only from its parent,
// a DDT page this site serves (page.js).

import { parentOrigin, trusted } from './page.js';

// A worker idles out 30 s after its last event; a ping every 10 s keeps it
// for as long as this frame lives.
const KEEPALIVE_MS = 10000;

let page = parentOrigin();

/** @param {any} m */
function tell(m) {
  if (page) window.parent.postMessage(m, page);
}

/** @param {string} state @param {string} [message] */
function status(state, message) {
  tell({ ddt: 'status', state, message: message || '' });
}

const sw = navigator.serviceWorker;

async function register() {
  if (!sw) throw new Error('This browser runs no service workers here (a private window, or a page that is not a secure context).');
  status('registering');
  const reg = await sw.register('/.ddt/sw.js', { scope: '/', updateViaCache: 'none' });
  const w = reg.installing || reg.waiting;
  if (w) {
    /** @param {string} s */
    const say = (s) => status(s === 'installed' || s === 'activating' ? 'activating' : s === 'activated' ? 'ready' : 'installing');
    say(w.state);
    w.addEventListener('statechange', () => say(w.state));
  }
  const ready = await sw.ready;
  status('ready');
  return ready;
}

const registered = register();
registered.catch((err) => status('failed', String((err && err.message) || err)));

window.addEventListener('message', async (e) => {
  if (!trusted(e)) return;
  page = e.origin;
  const m = e.data;
  if (!m || m.ddt !== 'port' || !e.ports[0]) return;
  try {
    const reg = await registered;
    const w = reg.active;
    if (!w) throw new Error('The site\u2019s service worker is not active.');
    w.postMessage({ ddt: 'port' }, [e.ports[0]]);
    tell({ ddt: 'connected' });
  } catch (err) {
    status('failed', String((err && /** @type {any} */ (err).message) || err));
  }
});

if (sw) {
  sw.addEventListener('message', (e) => {
    if (e.data && e.data.ddt === 'need-port') tell({ ddt: 'need-port' });
  });
  sw.startMessages();
  // A new worker (an update of sw.js) starts with no port: it will ask.
  setInterval(() => {
    registered.then((reg) => reg.active && reg.active.postMessage({ ddt: 'ping' }), () => {});
  }, KEEPALIVE_MS);
}
