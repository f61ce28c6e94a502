// app.js is the DDT page: it starts this tab's node with ddt.js (the loader
// any host uses), shows the download's progress, and hands the running node
// to each view, which from then on reads only the public window.ddt API.
// It holds no protocol logic. No framework, no build step: every file under
// views/ is a native ES module that owns one part of the page.
//
// The page honours three knobs, set before this script runs: window.DDT_RELAY
// (the relay; default this page's origin), window.DDT_MAX_PEERS (the
// connection budget) and localStorage 'ddt-log' (the console's log level).

import { start } from './ddt.js';
import * as boot from './views/boot.js';
import { message } from './views/dom.js';
import * as findUser from './views/finduser.js';
import * as identity from './views/identity.js';
import { log } from './views/log.js';
import * as peers from './views/peers.js';
import * as routing from './views/routing.js';
import * as username from './views/username.js';

/** @import {DDT, StartConfig, StartError} from './ddt.js' */

/** Views in the order they attach; each returns its detach function. */
const views = [identity, username, findUser, peers, routing];

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
function attach(ddt) {
  running = true;
  boot.done();
  log('Node started in this tab.');
  detach = views.map((v) => v.attach(ddt));
}

/**
 * stopped says the node has stopped, or exited before it started.
 * @param {string} why
 */
function stopped(why) {
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

start(config(), { onProgress: boot.progress, onExit: (err) => stopped(exitWords(err)) }).then(attach, (/** @type {StartError} */ err) => {
  if (err.code === 'exited') return stopped(exitWords(err));
  if (err.code === 'start') return stopped(message(err));
  boot.done();
  identity.stopped('The node is not running.');
  boot.fail('DDT could not start.', message(err));
  log(message(err), 'err');
});
