// node/ddt.js is the page's loader (web/static/ddt.js), which Assemble
// copies there for the offscreen document.
export * from '../../../static/ddt.js';
