// log.js: the Events card, newest line first, at most LOG_CAP lines.

import { $, h } from './dom.js';

const LOG_CAP = 50;
const list = $('log', HTMLOListElement);

/**
 * log adds a line to the event log.
 * @param {string} text
 * @param {'info' | 'ok' | 'warn' | 'err'} [kind]
 */
export function log(text, kind = 'info') {
  const now = new Date();
  const time = h('time', {
    dateTime: now.toISOString(),
    // Formatted by hand: the first Intl call loads locale data, which
    // costs a first visit tens of milliseconds.
    textContent: [now.getHours(), now.getMinutes(), now.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':'),
  });
  list.prepend(h('li', { className: `log-${kind}` }, time, h('span', { textContent: text })));
  while (list.children.length > LOG_CAP) list.lastElementChild?.remove();
}
