// address.js: what the user typed for a DDT site (in the omnibox after
// "ddt", in the popup), as the DDT page's fragment takes it. The page
// parses and checks it (views/sites.js parseAddress) and says what is
// wrong with it; this only takes off a scheme typed with it.

/**
 * siteAddress is text as a ddt:// address ('' if it is empty).
 * @param {string} text
 */
export function siteAddress(text) {
  const t = text.trim().replace(/^(ddt:\/\/|web\+ddt:(\/\/)?)/i, '');
  return t ? `ddt://${t}` : '';
}

/**
 * pageURL is the extension's DDT page, showing the site text names (or
 * its cards, when text is empty).
 * @param {string} text
 */
export function pageURL(text) {
  const address = siteAddress(text);
  return chrome.runtime.getURL(address ? `index.html#${address}` : 'index.html');
}
