// page.js: which DDT page a site's frames answer to. The relay names its
// page in a meta element (ddt-page) and the DDT extensions whose pages it
// trusts in another (ddt-extensions: their origins, space-separated, from
// its -extension-origins); a site under *.localhost may also be shown by
// the page at another loopback name of the same port (127.0.0.1,
// localhost, [::1]). The frames talk to their parent only if it is one of
// these, and only to it.

/** pageOrigins is every origin of a DDT page this site's frames serve. */
export function pageOrigins() {
  const meta = document.querySelector('meta[name="ddt-page"]');
  const out = new Set();
  try {
    if (meta) out.add(new URL(meta.getAttribute('content') || '').origin);
  } catch {
    // a relay without a URL: only the loopback names below
  }
  const ext = document.querySelector('meta[name="ddt-extensions"]');
  for (const o of (ext?.getAttribute('content') || '').split(' ')) {
    if (/^(chrome|moz)-extension:\/\/[a-z0-9-]+$/.test(o)) out.add(o);
  }
  if (location.hostname.endsWith('.localhost')) {
    for (const host of ['127.0.0.1', 'localhost', '[::1]']) {
      out.add(`${location.protocol}//${host}${location.port ? `:${location.port}` : ''}`);
    }
  }
  return out;
}

/**
 * parentOrigin is the origin of this frame's parent when it is a DDT page
 * this site serves, else '' (not in a frame, or a stranger's page). It
 * reads location.ancestorOrigins where the browser has it; elsewhere the
 * parent is known by its first message (see trusted).
 */
export function parentOrigin() {
  if (window.parent === window) return '';
  const a = location.ancestorOrigins;
  const o = a && a.length ? a[0] : '';
  return pageOrigins().has(o) ? o : '';
}

/**
 * trusted reports whether a message came from this frame's parent, a DDT
 * page this site serves.
 * @param {MessageEvent} e
 */
export function trusted(e) {
  return e.source === window.parent && window.parent !== window && pageOrigins().has(e.origin);
}

/** domain is this origin's DDT domain: "example.ddt" for example.ddt.localhost. */
export function domain() {
  return `${location.hostname.split('.ddt.')[0]}.ddt`;
}
