// dom.js: the small helpers every view uses to find, make and word things.

/**
 * $ returns the page's element with this id, of this type (HTMLElement by
 * default); it throws if the page has none, so a renamed id fails loudly.
 * @template {HTMLElement} [T=HTMLElement]
 * @param {string} id
 * @param {new (...args: any[]) => T} [type]
 * @returns {T}
 */
export function $(id, type) {
  const el = document.getElementById(id);
  const want = type || HTMLElement;
  if (!(el instanceof want)) throw new Error(`the page has no ${want.name} #${id}`);
  return /** @type {T} */ (el);
}

/**
 * h makes an element with these properties and children.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Partial<HTMLElementTagNameMap[K]>} [props]
 * @param {...(Node | string)} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, props, ...children) {
  const n = document.createElement(tag);
  Object.assign(n, props);
  n.append(...children);
  return n;
}

/** @param {string} a */
export function shortAddress(a) {
  return a && a.length > 16 ? `${a.slice(0, 8)}…${a.slice(-6)}` : a || '?';
}

/** @param {unknown} ms */
export function formatMs(ms) {
  if (typeof ms !== 'number' || !isFinite(ms)) return '?';
  return ms < 10 ? ms.toFixed(1) : String(Math.round(ms));
}

/** @param {number} n */
export function formatBytes(n) {
  if (n < 1e6) return `${(n / 1e3).toFixed(0)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/**
 * message is what an error says to people.
 * @param {unknown} err
 */
export function message(err) {
  const text = err && typeof err === 'object' && 'message' in err ? err.message : '';
  return (typeof text === 'string' && text) || String(err);
}

/**
 * linkify returns text as DOM nodes with its http(s) URLs made into links,
 * so a refusal such as "zone full; try https://other.example" is one click.
 * @param {string} text
 * @returns {(Node | string)[]}
 */
export function linkify(text) {
  /** @type {(Node | string)[]} */
  const out = [];
  let last = 0;
  for (const m of text.matchAll(/https?:\/\/[^\s"'<>]+/g)) {
    const url = m[0].replace(/[.,;:!?)\]]+$/, '');
    out.push(text.slice(last, m.index), h('a', { href: url, textContent: url }));
    last = (m.index || 0) + url.length;
  }
  out.push(text.slice(last));
  return out;
}
