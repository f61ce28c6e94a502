// sw.js: a DDT site's service worker. It answers every request of its
// origin (but /.ddt/, the frames the relay serves) by asking the node for
// the bytes: the node lives in a page of the DDT origin (a service worker
// cannot hold WebRTC connections) and answers over a MessagePort that page
// made, bound there to this origin's domain, and handed here through the
// connect frame (/.ddt/connect). So nothing here names a domain: the port
// serves this site's files and no other's.
//
// The port protocol (structured clone), one id per request:
//   → {id, op: 'open', path, range, navigate}
//   ← {id, status, type, total, start, end, version} | {id, error: {code, message}}
//   → {id, op: 'pull'}    ← {id, data: Uint8Array} | {id, done: true} | {id, error}
//   → {id, op: 'cancel'}
// A body is pulled a piece at a time, as the browser reads it (WebTorrent's
// worker-server pattern), so a video seeked far ahead costs only the
// pieces played.


/** @type {any} */
const sw = self;

// How long a request waits for a port (the connect frame asks the DDT page
// for one when this worker has just started) before it is answered with
// the "node unreachable" page.
const PORT_WAIT_MS = 10000;
// How long the node may take to open a file: on a first visit it resolves
// the domain and fetches the manifest and the file from peers first.
const OPEN_WAIT_MS = 180000;
// How long one piece of a body may take: the file is already local.
const PULL_WAIT_MS = 60000;

/** @typedef {{port: MessagePort, client: string}} Link */

/** @type {Link | null} the port requests go to, and the connect frame it came from */
let link = null;
/** @type {((l: Link) => void)[]} requests waiting for a port */
let waiting = [];
/** @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void, link: Link}>} */
const pending = new Map();
let nextID = 1;

sw.addEventListener('install', () => sw.skipWaiting());
sw.addEventListener('activate', (/** @type {any} */ e) => e.waitUntil(sw.clients.claim()));

// Only the connect frame hands this worker a port; its pings need no
// answer (the event itself keeps the worker alive while the DDT page shows
// the site).
sw.addEventListener('message', (/** @type {any} */ e) => {
  const src = e.source;
  if (!src || typeof src.url !== 'string' || new URL(src.url).pathname !== '/.ddt/connect') return;
  const m = e.data;
  if (m && m.ddt === 'port' && e.ports && e.ports[0]) connect(e.ports[0], src.id);
});

/**
 * connect makes port the one new requests use.
 * @param {MessagePort} port
 * @param {string} client
 */
function connect(port, client) {
  const l = { port, client };
  port.onmessage = (ev) => {
    const m = ev.data;
    const p = m && pending.get(m.id);
    if (!p || p.link !== l) return;
    pending.delete(m.id);
    p.resolve(m);
  };
  link = l;
  const w = waiting;
  waiting = [];
  for (const resolve of w) resolve(l);
}

/**
 * portFor returns a live port: the current one while its connect frame is
 * open, else a new one asked of every connect frame of this origin; null
 * when none comes (no DDT page shows this site).
 * @returns {Promise<Link | null>}
 */
async function portFor() {
  if (link && (await sw.clients.get(link.client))) return link;
  // The frame that gave the port is gone (its DDT page closed): requests
  // still waiting on it never get an answer.
  if (link) drop(link, 'The DDT page that served this site has closed.');
  link = null;
  const all = await sw.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const frames = all.filter((/** @type {any} */ c) => new URL(c.url).pathname === '/.ddt/connect');
  if (!frames.length) return null;
  const got = new Promise((resolve) => {
    waiting.push(resolve);
    setTimeout(() => resolve(null), PORT_WAIT_MS);
  });
  for (const c of frames) c.postMessage({ ddt: 'need-port' });
  return got;
}

/**
 * boot is the boot page, for a page load that no DDT page serves yet (the
 * frame came here by a link from another site): it asks the DDT page
 * around it to connect this site, then loads its path once. Made afresh,
 * so the document keeps the request's URL.
 */
async function boot() {
  const r = await fetch('/.ddt/boot', { cache: 'no-store' });
  return new Response(await r.text(), { status: 200, headers: { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' } });
}

/** connectFrames reports whether any connect frame of this origin is open. */
async function connectFrames() {
  const all = await sw.clients.matchAll({ type: 'window', includeUncontrolled: true });
  return all.some((/** @type {any} */ c) => new URL(c.url).pathname === '/.ddt/connect');
}

/**
 * drop fails every request waiting on l.
 * @param {Link} l
 * @param {string} why
 */
function drop(l, why) {
  for (const [id, p] of pending) {
    if (p.link === l) {
      pending.delete(id);
      p.reject(new Error(why));
    }
  }
}

/**
 * ask sends m on l and waits for the answer with m's id.
 * @param {Link} l
 * @param {any} m
 * @param {number} ms
 * @returns {Promise<any>}
 */
function ask(l, m, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pending.delete(m.id);
      reject(new Error('The node did not answer in time.'));
    }, ms);
    pending.set(m.id, {
      resolve: (v) => { clearTimeout(timer); resolve(v); },
      reject: (e) => { clearTimeout(timer); reject(e); },
      link: l,
    });
    l.port.postMessage(m);
  });
}

sw.addEventListener('fetch', (/** @type {any} */ e) => {
  const url = new URL(e.request.url);
  if (url.origin !== location.origin || url.pathname.startsWith('/.ddt/')) return;
  e.respondWith(answer(e.request, url));
});

/**
 * answer is the response to one of the site's requests.
 * @param {Request} req
 * @param {URL} url
 * @returns {Promise<Response>}
 */
async function answer(req, url) {
  const navigate = req.mode === 'navigate';
  // The path as the URL has it (escaped); the node unescapes and checks it.
  const path = url.pathname.slice(1);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return failure(navigate, url, { code: 'method', message: `A DDT site is read-only: ${req.method} is not served.` });
  }
  const l = await portFor();
  if (!l) {
    if (navigate && !(await connectFrames())) return boot();
    return failure(navigate, url, { code: 'unreachable', message: 'No DDT page is serving this site: open it from a DDT page.' });
  }
  const id = nextID++;
  let head;
  try {
    head = await ask(l, { id, op: 'open', path, range: req.headers.get('Range') || '', navigate }, OPEN_WAIT_MS);
  } catch (err) {
    return failure(navigate, url, { code: 'unreachable', message: String((err && /** @type {any} */ (err).message) || err) });
  }
  if (head.error) return failure(navigate, url, head.error);
  const length = head.end - head.start + 1;
  const headers = new Headers({
    'Content-Type': head.type || 'application/octet-stream',
    'Content-Length': String(length),
    'Accept-Ranges': 'bytes',
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
    // Its own agent cluster whatever the site sets document.domain to:
    // sites share a registrable domain (ddt.localhost).
    'Origin-Agent-Cluster': '?1',
    'X-DDT-Version': String(head.version),
  });
  if (head.status === 206) headers.set('Content-Range', `bytes ${head.start}-${head.end}/${head.total}`);
  if (req.method === 'HEAD' || length <= 0) {
    l.port.postMessage({ id, op: 'cancel' });
    return new Response(null, { status: head.status, headers });
  }
  const body = new ReadableStream({
    async pull(ctl) {
      let m;
      try {
        m = await ask(l, { id, op: 'pull' }, PULL_WAIT_MS);
      } catch (err) {
        l.port.postMessage({ id, op: 'cancel' });
        ctl.error(err);
        return;
      }
      if (m.error) ctl.error(new Error(m.error.message));
      else if (m.done) ctl.close();
      else ctl.enqueue(m.data);
    },
    cancel() {
      l.port.postMessage({ id, op: 'cancel' });
    },
  }, { highWaterMark: 0 });
  return new Response(body, { status: head.status, headers });
}

// What a failure's code means to the reader, and its HTTP status.
/** @type {Record<string, [number, string]>} */
const FAILURES = {
  'unknown-domain': [404, 'No such DDT site'],
  'not-found': [404, 'Page not found'],
  'bad-range': [416, 'Range not satisfiable'],
  invalid: [400, 'Not a page of a DDT site'],
  method: [405, 'Read-only site'],
  unreachable: [503, 'The node is unreachable'],
  unavailable: [503, 'The site is unavailable'],
  timeout: [504, 'The site did not answer in time'],
  'rate-limited': [429, 'Too many requests at once'],
};

/**
 * failure answers a request the site cannot: a page that says why to a
 * navigation, the same words as text to a script or an image.
 * @param {boolean} navigate
 * @param {URL} url
 * @param {{code: string, message: string}} err
 */
function failure(navigate, url, err) {
  const [status, title] = FAILURES[err.code] || [502, 'The site could not be loaded'];
  const domain = location.hostname.split('.ddt.')[0] + '.ddt';
  const headers = new Headers({ 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', 'Origin-Agent-Cluster': '?1', 'X-DDT-Error': err.code });
  if (!navigate) {
    headers.set('Content-Type', 'text/plain; charset=utf-8');
    return new Response(`${title}: ${err.message}\n`, { status, headers });
  }
  headers.set('Content-Type', 'text/html; charset=utf-8');
  headers.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'");
  const esc = (/** @type {string} */ s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const address = `ddt://${domain}${url.pathname}`;
  const hint = {
    'unknown-domain': `Nobody holds <b>${esc(domain)}</b>: check the address, or publish a site under it.`,
    'not-found': `<b>${esc(domain)}</b> has no file at <code>${esc(url.pathname)}</code>.`,
    unreachable: 'The DDT page that serves this site is gone or has stopped. Open the site from a DDT page.',
  }[err.code] || '';
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark"><title>${esc(title)} — ${esc(domain)}</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;display:grid;place-items:center;min-height:100vh;background:Canvas;color:CanvasText}
main{max-width:34rem;padding:2rem}
.code{font:600 3.5rem/1 system-ui,sans-serif;color:#256a5c;margin:0}
h1{font-size:1.4rem;margin:.5rem 0}
p{margin:.5rem 0}
.why{color:GrayText}
code{font:.9em ui-monospace,monospace;overflow-wrap:anywhere}
</style></head><body><main data-ddt-error="${esc(err.code)}">
<p class="code">${status}</p><h1>${esc(title)}</h1>
${hint ? `<p>${hint}</p>` : ''}<p class="why">${esc(err.message)}</p>
<p class="why"><code>${esc(address)}</code></p>
</main></body></html>`;
  return new Response(html, { status, headers });
}
