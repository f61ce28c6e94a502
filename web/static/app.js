// app.js is the DDT page: it starts this tab's node with ddt.js (the loader
// any host uses), shows the download's progress, and hands the running node
// to each view, which from then on reads only the public window.ddt API.
// It holds no protocol logic. No framework, no build step: every file under
// views/ is a native ES module that owns one part of the page: boot (the
// progress bar and the alert), identity (state badge, address), username,
// finduser, chat (friends, requests, conversations), files (share,
// download, storage), sites (browse and publish DDT sites), peers, routing
// (with find-a-node) and log, with dom's helpers.
//
// The page honours four knobs, set before this script runs: window.DDT_RELAY
// (the relay; default this page's origin), window.DDT_MAX_PEERS (the
// connection budget), window.DDT_PLEDGE (the storage pledge, in bytes) and
// localStorage 'ddt-log' (the console's log level).
//
// index.html starts compiling the node in an inline script (window.ddtEarly:
// the wasm's response is read only as fast as it is compiled, and a module
// runs after the first paint), and runs this module async and
// render-blocking, so it starts the node as soon as it, the loader and the
// boot card are in. The other views, which find their elements when they
// load, load once the node has started (or failed to): the node's start
// runs on this page's thread (Go in wasm has no other), and its storage and
// its relay wait for the page's tasks, so the cards would slow it there.

import { start } from './ddt.js';
import * as boot from './views/boot.js';
import { message } from './views/dom.js';

/** @import {DDT, StartConfig, StartError} from './ddt.js' */

// The page's forms never navigate; each view handles its own, once loaded.
document.addEventListener('submit', (ev) => ev.preventDefault(), { capture: true });

const parsed = document.readyState === 'loading'
  ? new Promise((resolve) => document.addEventListener('DOMContentLoaded', resolve, { once: true }))
  : Promise.resolve();

/** @type {() => void} */
let settled = () => {};
const startedAt = new Promise((resolve) => {
  settled = () => resolve(undefined);
});

// The cards, in the order they attach; each attach returns its detach
// function.
const ui = Promise.all([parsed, startedAt]).then(() => Promise.all([
  import('./views/log.js'),
  Promise.all([
    import('./views/identity.js'),
    import('./views/username.js'),
    import('./views/finduser.js'),
    import('./views/chat.js'),
    import('./views/files.js'),
    import('./views/sites.js'),
    import('./views/peers.js'),
    import('./views/routing.js'),
  ]),
]).then(([log, views]) => ({ log: log.log, views })));

/** @type {(() => void)[]} */
let detach = [];
let running = false;

/** config is this page's configuration of its node. @returns {StartConfig} */
function config() {
  /** @type {StartConfig} */
  const c = { logLevel: /** @type {StartConfig['logLevel']} */ (localStorage.getItem('ddt-log') || 'warn') };
  if (window.DDT_RELAY) c.relay = window.DDT_RELAY;
  if (typeof window.DDT_MAX_PEERS === 'number') c.maxPeers = window.DDT_MAX_PEERS;
  if (typeof window.DDT_PLEDGE === 'number') c.pledge = window.DDT_PLEDGE;
  if (window.ddtEarly) c.wasm = window.ddtEarly; // index.html's compile, under way
  return c;
}

/** @param {DDT} ddt */
async function attach(ddt) {
  const { log, views } = await ui;
  running = true;
  boot.done();
  log('Node started in this tab.');
  detach = views.map((v) => v.attach(ddt));
}

/**
 * stopped says the node has stopped, or exited before it started.
 * @param {string} why
 */
async function stopped(why) {
  const { log, views } = await ui;
  const [identity] = views;
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
  const { log, views } = await ui;
  if (err.code === 'exited') return stopped(exitWords(err));
  if (err.code === 'start') return stopped(message(err));
  const [identity] = views;
  boot.done();
  identity.stopped('The node is not running.');
  boot.fail('DDT could not start.', message(err));
  log(message(err), 'err');
}

start(config(), { onProgress: boot.progress, onExit: (err) => stopped(exitWords(err)) })
  .finally(settled) // a node that failed to load shows that too
  .then(attach, failed)
  .catch(async (err) => {
    // A view of the page did not load.
    console.error('ddt: the page could not start:', err);
    await parsed;
    boot.done();
    boot.fail('DDT could not start.', message(err));
    ui.then(({ log }) => log(message(err), 'err'), () => {});
  });
