// boot.js: the "Starting your node" card with its progress bar, and the
// alert that says the node could not start or has stopped.

import { $, formatBytes, h } from './dom.js';

/** @import {Progress} from '../ddt.js' */

const card = $('boot');
const bar = $('boot-progress', HTMLProgressElement);
const status = $('boot-status');
const alert = $('error');

/**
 * progress shows how the download goes, then that the node is starting.
 * @param {Progress} p
 */
export function progress({ phase, received, total }) {
  if (phase === 'start') {
    bar.max = 1;
    bar.value = 1;
    status.textContent = 'Starting the node…';
  } else if (total > 0) {
    bar.max = total;
    bar.value = Math.min(received, total);
    const pct = Math.min(100, Math.floor((received / total) * 100));
    status.textContent = `Downloading the node… ${formatBytes(received)} of ${formatBytes(total)} (${pct}%)`;
  } else {
    bar.removeAttribute('value'); // indeterminate
    status.textContent = `Downloading the node… ${formatBytes(received)}`;
  }
}

/** done hides the card: the node runs, or never will. */
export function done() {
  card.hidden = true;
}

/**
 * fail shows the alert, with a Reload button.
 * @param {string} title
 * @param {string} [detail]
 */
export function fail(title, detail) {
  alert.replaceChildren(
    h('strong', { textContent: title }),
    h('span', { textContent: detail ? ` ${detail}` : '' }),
    h('button', { type: 'button', className: 'btn small', textContent: 'Reload', onclick: () => location.reload() }),
  );
  alert.hidden = false;
}
