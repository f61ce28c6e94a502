// app.js is the DDT page: it starts this tab's node with ddt.js (the loader
// any host uses), shows the download's progress, and hands the running node
// to each view, which from then on reads only the public window.ddt API.
// It holds no protocol logic. No framework, no build step: every file under
// views/ is a native ES module that owns one part of the page: boot (the
// progress bar and the alert), identity (state badge, address), username,
// finduser, peers, routing (with find-a-node) and log, with dom's helpers.
//
// The page honours three knobs, set before this script runs: window.DDT_RELAY
// (the relay; default this page's origin), window.DDT_MAX_PEERS (the
// connection budget) and localStorage 'ddt-log' (the console's log level).

import { start } from './ddt.js';
import * as boot from './views/boot.js';
import { message } from './views/dom.js';
import { log } from './views/log.js';

/** @import {DDT, StartConfig, StartError} from './ddt.js' */

// The page's forms never navigate; each view handles its own, once loaded.
document.addEventListener('submit', (ev) => ev.preventDefault(), { capture: true });

// The cards that show the running node load beside the wasm rather than
// before it, so that its download starts with the fewest requests in its
// way (index.html modulepreloads only what the download waits for). They
// attach in this order; each attach returns its detach function.
const views = Promise.all([
  import('./views/identity.js'),
  import('./views/username.js'),
  import('./views/finduser.js'),
  import('./views/peers.js'),
  import('./views/routing.js'),
]);

/** @type {(() => void)[]} */
let detach = [];
let running = false;

/** config is this page's configuration of its node. @returns {StartConfig} */
function config() {
  /** @type {StartConfig} */
  const c = { logLevel: /** @type {StartConfig['logLevel']} */ (localStorage.getItem('ddt-log') || 'warn') };
  if (window.DDT_RELAY) c.relay = window.DDT_RELAY;
  if (typeof window.DDT_MAX_PEERS === 'number') c.maxPeers = window.DDT_MAX_PEERS;
  return c;
}

/** @param {DDT} ddt */
async function attach(ddt) {
  const all = await views;
  running = true;
  boot.done();
  log('Node started in this tab.');
  detach = all.map((v) => v.attach(ddt));
}

/**
 * stopped says the node has stopped, or exited before it started.
 * @param {string} why
 */
async function stopped(why) {
  const [identity] = await views;
  for (const off of detach) {
    try {
      off();
    } catch {
      // the node is gone; nothing to unsubscribe from
    }
  }
  detach = [];
  const title = running ? 'The node has stopped.' : 'The node exited before it started.';
  boot.done();
  identity.stopped(title);
  boot.fail(title, `${why ? why.replace(/\.?$/, '. ') : ''}See the browser console for details.`);
  log(`Node stopped${why ? `: ${why}` : ''}.`, 'err');
}

/**
 * exitWords is how the page says why the node exited.
 * @param {StartError} err
 */
function exitWords(err) {
  if (err.exitCode !== undefined) return `It exited with code ${err.exitCode}`;
  return err.cause === undefined ? '' : message(err.cause);
}

/**
 * failed says the node could not start.
 * @param {StartError} err
 */
async function failed(err) {
  if (err.code === 'exited') return stopped(exitWords(err));
  if (err.code === 'start') return stopped(message(err));
  const [identity] = await views;
  boot.done();
  identity.stopped('The node is not running.');
  boot.fail('DDT could not start.', message(err));
  log(message(err), 'err');
}

start(config(), { onProgress: boot.progress, onExit: (err) => stopped(exitWords(err)) })
  .then(attach, failed)
  .catch((err) => {
    // A view of the page did not load.
    boot.done();
    boot.fail('DDT could not start.', message(err));
    log(message(err), 'err');
  });
