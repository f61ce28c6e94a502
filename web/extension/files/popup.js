// popup.js: the toolbar popup.
import { start } from './ddt.js';

const stateEl = /** @type {HTMLElement} */ (document.getElementById('state'));
const detailEl = /** @type {HTMLElement} */ (document.getElementById('detail'));
const addressEl = /** @type {HTMLElement} */ (document.getElementById('address'));

start(undefined, {
  onStatus: (s) => {
    stateEl.textContent = s.state;
    stateEl.dataset.state = s.state;
    detailEl.textContent = s.detail;
  },
}).then((ddt) => {
  const paint = () => {
    addressEl.textContent = ddt.address || '—';
  };
  paint();
  setInterval(paint, 1000);
});
