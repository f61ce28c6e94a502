// boot.js: the "Starting your node" card with its progress bar, and the
// alert that says the node could not start or has stopped. It loads with
// app.js, before the rest of the page may be parsed: it finds its elements
// when first used, and progress before the card is parsed waits for it.

import { $, formatBytes, h } from './dom.js';

/** @import {Progress} from '../ddt.js' */

/** @type {{card: HTMLElement, bar: HTMLProgressElement, status: HTMLElement} | null} */
let els = null;

/** elements are the card's, once the document has them. */
function elements() {
  if (!els && document.getElementById('boot-status')) {
    els = { card: $('boot'), bar: $('boot-progress', HTMLProgressElement), status: $('boot-status') };
  }
  return els;
}

/** @type {Progress | null} */
let pending = null;

/**
 * progress shows how the download goes, then that the node is starting.
 * @param {Progress} p
 */
export function progress(p) {
  const e = elements();
  if (!e) {
    if (!pending) document.addEventListener('DOMContentLoaded', () => pending && progress(pending), { once: true });
    pending = p;
    return;
  }
  pending = null;
  const { phase, received, total } = p;
  const { bar, status } = e;
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
  const e = elements();
  if (e) e.card.hidden = true;
}

/**
 * fail shows the alert, with a Reload button.
 * @param {string} title
 * @param {string} [detail]
 */
export function fail(title, detail) {
  const alert = $('error');
  alert.replaceChildren(
    h('strong', { textContent: title }),
    h('span', { textContent: detail ? ` ${detail}` : '' }),
    h('button', { type: 'button', className: 'btn small', textContent: 'Reload', onclick: () => location.reload() }),
  );
  alert.hidden = false;
}
