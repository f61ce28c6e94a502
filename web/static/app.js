// app.js hosts the DDT node on this page and shows what it reports.
//
// It downloads /ddt.wasm with a progress bar, runs it with Go's wasm_exec.js
// (loaded before this file), waits for the node to define window.ddt and
// dispatch "ddt:loaded", and from then on only reads the public window.ddt
// API: ready, address, zone, relay, state, username, peers(), ping(),
// lookup(), connect(), routing(), register(), resolve() and on(). It holds
// no protocol logic. No framework, no build step.
'use strict';

(() => {
  const WASM_URL = '/ddt.wasm';
  const PEER_REFRESH_MS = 2000;
  const LOG_CAP = 50;

  const $ = (id) => document.getElementById(id);
  const ui = {
    error: $('error'),
    boot: $('boot'),
    progress: $('boot-progress'),
    bootStatus: $('boot-status'),
    state: $('state'),
    stateDetail: $('state-detail'),
    address: $('address'),
    copy: $('copy-address'),
    zone: $('zone'),
    relay: $('relay'),
    peers: $('peers'),
    peerCount: $('peer-count'),
    peersEmpty: $('peers-empty'),
    log: $('log'),
    buckets: $('buckets'),
    bucketsEmpty: $('buckets-empty'),
    contactCount: $('contact-count'),
    overlayStats: $('overlay-stats'),
    find: $('find'),
    findAddress: $('find-address'),
    findLookup: $('find-lookup'),
    findConnect: $('find-connect'),
    findResult: $('find-result'),
    meName: $('me-name'),
    usernameCard: $('username-card'),
    usernameForm: $('username-form'),
    usernameInput: $('username-input'),
    usernameRegister: $('username-register'),
    usernameNote: $('username-note'),
    usernameError: $('username-error'),
    usernameDone: $('username-done'),
    usernameDoneName: $('username-done-name'),
    findUser: $('find-user'),
    findUserInput: $('find-user-input'),
    findUserGo: $('find-user-go'),
    findUserError: $('find-user-error'),
    findUserResult: $('find-user-result'),
  };

  // ---- small helpers ------------------------------------------------------

  function h(tag, props, ...children) {
    const n = document.createElement(tag);
    Object.assign(n, props);
    n.append(...children);
    return n;
  }

  function shortAddress(a) {
    return a && a.length > 16 ? `${a.slice(0, 8)}…${a.slice(-6)}` : a || '?';
  }

  function formatMs(ms) {
    if (typeof ms !== 'number' || !isFinite(ms)) return '?';
    return ms < 10 ? ms.toFixed(1) : String(Math.round(ms));
  }

  function formatBytes(n) {
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`;
    return `${(n / (1024 * 1024)).toFixed(1)} MB`;
  }

  function message(err) {
    return (err && err.message) || String(err);
  }

  // linkify returns text as DOM nodes with its http(s) URLs made into links,
  // so a refusal such as "zone full; try https://other.example" is one click.
  function linkify(text) {
    const out = [];
    let last = 0;
    for (const m of text.matchAll(/https?:\/\/[^\s"'<>]+/g)) {
      const url = m[0].replace(/[.,;:!?)\]]+$/, '');
      out.push(text.slice(last, m.index), h('a', { href: url, textContent: url }));
      last = m.index + url.length;
    }
    out.push(text.slice(last));
    return out;
  }

  function showError(title, detail) {
    ui.error.replaceChildren(
      h('strong', { textContent: title }),
      h('span', { textContent: detail ? ` ${detail}` : '' }),
      h('button', { type: 'button', className: 'btn small', textContent: 'Reload', onclick: () => location.reload() }),
    );
    ui.error.hidden = false;
  }

  // ---- event log ----------------------------------------------------------

  function log(text, kind = 'info') {
    const now = new Date();
    const time = h('time', {
      dateTime: now.toISOString(),
      // Formatted by hand: the first Intl call loads locale data, which
      // costs a first visit tens of milliseconds.
      textContent: [now.getHours(), now.getMinutes(), now.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':'),
    });
    ui.log.prepend(h('li', { className: `log-${kind}` }, time, h('span', { textContent: text })));
    while (ui.log.children.length > LOG_CAP) ui.log.lastElementChild.remove();
  }

  // ---- loading the node ---------------------------------------------------

  // expectedLength is the number of bytes the body will have once decoded:
  // the server's X-Uncompressed-Length if given, else Content-Length when the
  // body is not compressed, else 0 (unknown).
  function expectedLength(headers) {
    const raw = parseInt(headers.get('X-Uncompressed-Length'), 10);
    if (raw > 0) return raw;
    const encoding = (headers.get('Content-Encoding') || 'identity').trim().toLowerCase();
    const length = parseInt(headers.get('Content-Length'), 10);
    return encoding === 'identity' && length > 0 ? length : 0;
  }

  function showProgress(received, total) {
    if (total > 0) {
      ui.progress.max = total;
      ui.progress.value = Math.min(received, total);
      const pct = Math.min(100, Math.floor((received / total) * 100));
      ui.bootStatus.textContent = `Downloading the node… ${formatBytes(received)} of ${formatBytes(total)} (${pct}%)`;
    } else {
      ui.progress.removeAttribute('value'); // indeterminate
      ui.bootStatus.textContent = `Downloading the node… ${formatBytes(received)}`;
    }
  }

  // instantiate fetches the wasm and compiles it while it streams in. The
  // response goes to the compiler untouched, so the browser can cache the
  // compiled code for the next visit; a clone of it feeds the progress bar.
  async function instantiate(url, importObject) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
    const total = expectedLength(res.headers);
    showProgress(0, total);
    const counter = res.clone().body.getReader();
    (async () => {
      let received = 0;
      for (;;) {
        const { done, value } = await counter.read();
        if (done) return;
        received += value.byteLength;
        showProgress(received, total);
      }
    })().catch(() => {});
    return WebAssembly.instantiateStreaming(res, importObject);
  }

  async function boot() {
    if (typeof WebAssembly !== 'object') {
      throw new Error('This browser cannot run WebAssembly, which the DDT node needs.');
    }
    if (typeof Go !== 'function') {
      throw new Error('/wasm_exec.js did not load, so the node cannot start.');
    }
    const go = new Go();
    let exitCode = null;
    const exit = go.exit;
    go.exit = (code) => {
      exitCode = code;
      exit(code);
    };
    let instance;
    try {
      ({ instance } = await instantiate(WASM_URL, go.importObject));
      performance.mark('ddt:compiled');
    } catch (err) {
      throw new Error(`Could not download and start the node (${WASM_URL}): ${message(err)}`);
    }
    ui.progress.max = 1;
    ui.progress.value = 1;
    ui.bootStatus.textContent = 'Starting the node…';

    // run() executes the node's main until it blocks; the node defines
    // window.ddt and dispatches "ddt:loaded" during this call. Attach on a
    // later task so our first calls into ddt do not re-enter Go mid-dispatch.
    // The promise settles only when the node exits.
    window.addEventListener('ddt:loaded', () => setTimeout(attach, 0), { once: true });
    const running = go.run(instance);
    if (typeof globalThis.ddtStart !== 'function') throw new Error('the node did not define ddtStart');
    // The node reads no page globals: this page tells it its configuration.
    const config = { relay: window.DDT_RELAY || location.origin, logLevel: localStorage.getItem('ddt-log') || 'warn' };
    if (typeof window.DDT_MAX_PEERS === 'number') config.maxPeers = window.DDT_MAX_PEERS;
    globalThis.ddtStart(config).catch((err) => stopped(message(err)));
    running.then(
      () => stopped(exitCode === null ? '' : `It exited with code ${exitCode}`),
      (err) => stopped(message(err)),
    );
  }

  // ---- the running node ---------------------------------------------------

  let ddt = null;
  let dead = false; // the node has exited; window.ddt must not be called
  let unsubscribe = [];
  let pollTimer = 0;

  function attach() {
    if (ddt || dead) return;
    ddt = window.ddt;
    if (!ddt) return;
    ui.boot.hidden = true;
    log('Node started in this tab.');

    unsubscribe = [
      ddt.on('state', onState),
      ddt.on('peer', onPeer),
      ddt.on('peer-gone', onPeerGone),
      ddt.on('username', onUsername),
    ].filter((f) => typeof f === 'function');

    renderUsername(ddt.username || '');
    ui.usernameCard.hidden = false;

    onState({ state: ddt.state || 'connecting', detail: '', retryInMs: 0 });
    Promise.resolve(ddt.ready).then(renderIdentity, (err) => {
      // The "state" event normally carries the same sentence; this covers a
      // refusal that happened before we subscribed.
      if (!currentDetail) renderState({ state: ddt.state, detail: message(err), retryInMs: 0 });
    });

    refreshPeers();
    refreshRouting();
    pollTimer = setInterval(() => {
      refreshPeers();
      refreshRouting();
    }, PEER_REFRESH_MS);
  }

  function stopped(why) {
    dead = true;
    clearInterval(pollTimer);
    clearInterval(countdownTimer);
    for (const off of unsubscribe) {
      try {
        off();
      } catch {
        // the node is gone; nothing to unsubscribe from
      }
    }
    unsubscribe = [];
    const title = ddt ? 'The node has stopped.' : 'The node exited before it started.';
    markStopped(title);
    showError(title, `${why ? why.replace(/\.?$/, '. ') : ''}See the browser console for details.`);
    log(`Node stopped${why ? `: ${why}` : ''}.`, 'err');
  }

  // markStopped shows that no node is running in this tab (it failed to
  // start or exited); "stopped" is the page's own word, not a ddt.state.
  function markStopped(title) {
    ui.boot.hidden = true;
    clearInterval(countdownTimer);
    ui.state.textContent = 'stopped';
    ui.state.dataset.state = 'stopped';
    headlineEl = null;
    ui.stateDetail.replaceChildren(h('strong', { textContent: title }), ' Reload the page to try again.');
  }

  function renderIdentity() {
    if (!ddt) return;
    const address = ddt.address || '';
    ui.address.textContent = address;
    ui.address.title = address;
    ui.copy.disabled = !address;
    ui.zone.textContent = ddt.zone || '';
    ui.relay.textContent = ddt.relay || '';
  }

  // ---- state badge --------------------------------------------------------

  let currentDetail = '';
  let retryDeadline = 0;
  let countdownTimer = 0;

  function secondsLeft() {
    return Math.max(0, Math.ceil((retryDeadline - Date.now()) / 1000));
  }

  function retryText() {
    const s = secondsLeft();
    return s > 0 ? `retrying in ${s} s` : 'retrying now…';
  }

  // headline returns the sentence shown beside the badge for a state.
  function headline(state) {
    switch (state) {
      case 'connecting':
        return 'Connecting to the relay…';
      case 'admitted':
        return ddt.zone ? `Connected to zone “${ddt.zone}”.` : 'Connected to the zone.';
      case 'retrying':
        return `Relay unreachable — ${retryText()}.`;
      case 'refused':
        return retryDeadline ? `Refused by the relay — trying again in ${secondsLeft()} s.` : 'Refused by the relay.';
      default:
        return state ? `State: ${state}.` : 'Starting…';
    }
  }

  let headlineEl = null;

  // paintState writes the sentence beside the badge. The countdown calls it
  // every 250 ms, so it touches the DOM only when the words change.
  function paintState(state, fresh) {
    const text = headline(state);
    if (!fresh && headlineEl) {
      if (headlineEl.textContent !== text) headlineEl.textContent = text;
      return;
    }
    headlineEl = h('strong', { textContent: text });
    const parts = [headlineEl];
    if (currentDetail && state !== 'admitted') parts.push(h('span', { className: 'why' }, ...linkify(currentDetail)));
    ui.stateDetail.replaceChildren(...parts);
  }

  function renderState({ state, detail, retryInMs }) {
    state = state || 'connecting';
    currentDetail = detail || '';
    ui.state.textContent = state;
    ui.state.dataset.state = state;
    clearInterval(countdownTimer);
    retryDeadline = retryInMs > 0 && (state === 'retrying' || state === 'refused') ? Date.now() + retryInMs : 0;
    paintState(state, true);
    if (retryDeadline) {
      countdownTimer = setInterval(() => {
        paintState(state);
        if (secondsLeft() === 0) clearInterval(countdownTimer);
      }, 250);
    }
  }

  let lastConnecting = '';

  function onState(ev) {
    ev = ev || {};
    renderIdentity();
    renderState(ev);
    admitted = ev.state === 'admitted';
    paintRegister();
    const detail = ev.detail ? `: ${ev.detail}` : '';
    const wait = ev.retryInMs > 0 ? ` — next try in ${Math.ceil(ev.retryInMs / 1000)} s` : '';
    if (ev.state !== 'connecting') lastConnecting = '';
    switch (ev.state) {
      case 'connecting': {
        // The page paints the state it finds, then hears the node's own
        // event for the same attempt: say it once.
        const line = `Connecting to ${ddt.relay || 'the relay'}…`;
        if (line !== lastConnecting) log(line);
        lastConnecting = line;
        break;
      }
      case 'admitted':
        log(`Admitted to zone “${ddt.zone}” as ${shortAddress(ddt.address)}.`, 'ok');
        break;
      case 'retrying': {
        const why = ev.detail ? ev.detail.charAt(0).toUpperCase() + ev.detail.slice(1) : 'Relay unreachable';
        log(`${why}${wait}.`, 'warn');
        break;
      }
      case 'refused':
        log(`Refused${detail}${wait}.`, 'err');
        break;
      default:
        log(`State ${ev.state}${detail}.`);
    }
  }

  // ---- peers --------------------------------------------------------------

  const rows = new Map(); // address → {li, kind, rtt}
  let generation = 0; // bumped by peer events so a stale poll does not undo them
  let polling = false;

  function peerRow(address) {
    let row = rows.get(address);
    if (row) return row;
    const kind = h('span', { className: 'tag' });
    const via = h('span', { className: 'tag via' });
    const rtt = h('span', { className: 'rtt' });
    const result = h('span', { className: 'ping-result' });
    result.setAttribute('role', 'status');
    const ping = h('button', { type: 'button', className: 'btn small', textContent: 'Ping' });
    ping.setAttribute('aria-label', `Ping ${shortAddress(address)}`);
    ping.addEventListener('click', async () => {
      ping.disabled = true;
      result.className = 'ping-result';
      result.textContent = '…';
      try {
        const ms = await ddt.ping(address);
        result.textContent = `${formatMs(ms)} ms`;
        result.classList.add('ok');
      } catch (err) {
        result.textContent = message(err);
        result.classList.add('err');
      } finally {
        ping.disabled = false;
      }
    });
    const addr = h('code', { className: 'address', textContent: shortAddress(address), title: address });
    const tags = h('span', { className: 'tags' }, kind, via);
    const li = h('li', { className: 'peer' }, addr, tags, rtt, h('span', { className: 'ping' }, ping, result));
    li.dataset.address = address;
    ui.peers.append(li);
    row = { li, kind, via, rtt };
    rows.set(address, row);
    return row;
  }

  function paintPeer(row, { native, rttMs, via }) {
    row.li.dataset.native = native ? 'true' : 'false';
    row.kind.textContent = native ? 'native' : 'browser';
    row.kind.title = native ? 'a headless native node' : 'a node in a browser tab';
    if (via) {
      row.li.dataset.via = via;
      row.via.textContent = `via ${via}`;
      row.via.title = via === 'overlay'
        ? 'this channel was signaled through other peers, without the relay'
        : 'this channel was signaled through the relay';
    }
    if (typeof rttMs === 'number' && rttMs > 0) {
      row.rtt.textContent = `${formatMs(rttMs)} ms`;
      row.rtt.title = 'round-trip time';
    } else if (rttMs !== undefined || !row.rtt.textContent) {
      row.rtt.textContent = '— ms';
      row.rtt.title = 'not measured yet';
    }
  }

  function paintCount() {
    ui.peerCount.textContent = String(rows.size);
    ui.peersEmpty.hidden = rows.size > 0;
  }

  function removePeer(address) {
    const row = rows.get(address);
    if (!row) return;
    row.li.remove();
    rows.delete(address);
  }

  async function refreshPeers() {
    if (!ddt || polling) return;
    polling = true;
    const started = generation;
    try {
      const list = (await ddt.peers()) || [];
      if (started !== generation) return;
      const seen = new Set();
      for (const p of list) {
        if (!p || !p.address) continue;
        seen.add(p.address);
        paintPeer(peerRow(p.address), p);
      }
      for (const address of [...rows.keys()]) if (!seen.has(address)) removePeer(address);
      paintCount();
    } catch (err) {
      // Keep the last list; the next poll may succeed. Say so once in the console.
      console.debug('ddt.peers() failed:', err);
    } finally {
      polling = false;
    }
  }

  function onPeer(ev) {
    if (!ev || !ev.address) return;
    generation++;
    paintPeer(peerRow(ev.address), { native: ev.native, rttMs: undefined, via: ev.via });
    paintCount();
    log(`Peer connected: ${shortAddress(ev.address)} (${ev.native ? 'native' : 'browser'}, via ${ev.via || 'relay'}).`, 'ok');
  }

  function onPeerGone(ev) {
    if (!ev || !ev.address) return;
    generation++;
    removePeer(ev.address);
    paintCount();
    log(`Peer left: ${shortAddress(ev.address)}${ev.reason ? ` — ${ev.reason}` : ''}.`);
  }

  // ---- routing table ------------------------------------------------------

  const BUCKET_SIZE = 20;
  let routingBusy = false;

  async function refreshRouting() {
    if (!ddt || routingBusy || typeof ddt.routing !== 'function') return;
    routingBusy = true;
    try {
      const r = await ddt.routing();
      paintRouting(r || {});
    } catch (err) {
      console.debug('ddt.routing() failed:', err);
    } finally {
      routingBusy = false;
    }
  }

  function paintRouting({ buckets = [], contacts = 0, overlay }) {
    ui.contactCount.textContent = String(contacts);
    ui.bucketsEmpty.hidden = buckets.length > 0;
    const items = buckets.map((b) => {
      const fill = Math.min(1, b.contacts / BUCKET_SIZE);
      const bar = h('span', { className: 'bucket-bar' });
      bar.style.setProperty('--fill', String(fill));
      const dots = h('span', { className: 'bucket-dots' });
      for (let i = 0; i < Math.min(b.connected, 8); i++) dots.append(h('span', { className: 'dot' }));
      const li = h('li', { className: 'bucket' },
        h('span', { className: 'bucket-index', textContent: String(b.index) }),
        bar,
        h('span', { className: 'bucket-count', textContent: `${b.contacts}` }),
        dots);
      li.title = `bucket ${b.index}: ${b.contacts} contact${b.contacts === 1 ? '' : 's'}, ${b.connected} with an open channel`;
      return li;
    });
    ui.buckets.replaceChildren(...items);
    if (overlay) {
      ui.overlayStats.textContent = `Routed messages — sent ${overlay.sent}, delivered here ${overlay.delivered}, ` +
        `forwarded ${overlay.forwarded}, dropped ${overlay.dropped}.`;
    }
  }

  // ---- find a node --------------------------------------------------------

  function findTarget() {
    const v = ui.findAddress.value.trim().toLowerCase();
    if (!/^[0-9a-f]{40}$/.test(v)) {
      findSays('An address is 40 hex digits.', 'err');
      return '';
    }
    return v;
  }

  function findSays(text, kind = '') {
    ui.findResult.textContent = text;
    ui.findResult.className = `find-result ${kind}`;
  }

  function findBusy(busy) {
    ui.findLookup.disabled = busy;
    ui.findConnect.disabled = busy;
  }

  ui.find.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const target = findTarget();
    if (!target || !ddt) return;
    findBusy(true);
    findSays('Looking up…');
    try {
      const r = await ddt.lookup(target);
      const rounds = `${r.hops} round${r.hops === 1 ? '' : 's'}, ${r.messages} messages, ${formatMs(r.ms)} ms`;
      if (r.found) findSays(`Found ${shortAddress(target)}: ${rounds}.`, 'ok');
      else findSays(`Not found (${rounds}). Closest known: ${(r.closest || []).slice(0, 3).map(shortAddress).join(', ') || 'none'}.`, 'err');
    } catch (err) {
      findSays(message(err), 'err');
    } finally {
      findBusy(false);
    }
  });

  ui.findConnect.addEventListener('click', async () => {
    const target = findTarget();
    if (!target || !ddt) return;
    findBusy(true);
    findSays('Opening a data channel…');
    try {
      const p = await ddt.connect(target);
      findSays(`Connected to ${shortAddress(target)} via ${p.via}.`, 'ok');
      refreshPeers();
    } catch (err) {
      findSays(message(err), 'err');
    } finally {
      findBusy(false);
    }
  });

  // ---- usernames ----------------------------------------------------------

  let admitted = false;
  let registering = false;

  // renderUsername shows the node's username in the header and turns the
  // "Choose a username" card into one line once there is one.
  function renderUsername(name) {
    const has = !!name;
    ui.meName.textContent = has ? `@${name}` : '';
    ui.meName.hidden = !has;
    ui.usernameForm.hidden = has;
    ui.usernameDone.hidden = !has;
    ui.usernameDoneName.textContent = has ? `@${name}` : '';
    ui.usernameCard.classList.toggle('compact', has);
  }

  function paintRegister() {
    ui.usernameRegister.disabled = registering || !admitted;
    ui.usernameRegister.textContent = registering ? 'Registering…' : 'Register';
    ui.usernameInput.readOnly = registering;
    ui.usernameNote.textContent = admitted || registering ? '' : 'Available once the node is connected.';
  }

  function onUsername(rec) {
    if (!rec || !rec.name) return;
    renderUsername(rec.name);
  }

  ui.usernameForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!ddt || registering || !admitted) return;
    registering = true;
    ui.usernameError.textContent = '';
    paintRegister();
    try {
      const rec = await ddt.register(ui.usernameInput.value.trim());
      renderUsername(rec.name);
      log(`Registered as @${rec.name} (ledger entry ${rec.seq}).`, 'ok');
    } catch (err) {
      ui.usernameError.textContent = message(err);
    } finally {
      registering = false;
      paintRegister();
    }
  });

  ui.usernameInput.addEventListener('input', () => {
    ui.usernameError.textContent = '';
  });

  // ---- find a user --------------------------------------------------------

  let lastFound = '';

  function findUserSays(text) {
    ui.findUserError.textContent = text;
    if (text) ui.findUserResult.hidden = true;
  }

  // showUser paints a verified record with buttons to reach its node.
  function showUser(rec) {
    const status = h('span', { id: 'find-user-status', className: 'ping-result' });
    status.setAttribute('role', 'status');
    const connect = h('button', { id: 'find-user-connect', type: 'button', className: 'btn small', textContent: 'Connect' });
    const ping = h('button', { id: 'find-user-ping', type: 'button', className: 'btn small', textContent: 'Ping' });
    const self = ddt && rec.address === ddt.address;
    connect.disabled = self;
    ping.disabled = self;
    const says = (text, kind = '') => {
      status.textContent = text;
      status.className = `ping-result ${kind}`;
    };
    if (self) says('this node');
    const busy = (b) => {
      connect.disabled = b;
      ping.disabled = b;
    };
    connect.addEventListener('click', async () => {
      busy(true);
      says('Opening a data channel…');
      try {
        const p = await ddt.connect(rec.address);
        says(`Connected via ${p.via}.`, 'ok');
        refreshPeers();
      } catch (err) {
        says(message(err), 'err');
      } finally {
        busy(false);
      }
    });
    ping.addEventListener('click', async () => {
      busy(true);
      says('…');
      try {
        if (!rows.has(rec.address)) {
          says('Opening a data channel…');
          await ddt.connect(rec.address);
          refreshPeers();
        }
        says(`${formatMs(await ddt.ping(rec.address))} ms`, 'ok');
      } catch (err) {
        says(message(err), 'err');
      } finally {
        busy(false);
      }
    });
    const ledger = rec.ledger || {};
    const fact = (term, ...value) => h('div', {}, h('dt', { textContent: term }), h('dd', {}, ...value));
    ui.findUserResult.replaceChildren(
      h('div', { className: 'user-head' },
        h('strong', { className: 'user-name', textContent: `@${rec.name}` }),
        h('span', {
          className: 'verified',
          textContent: 'verified ✓',
          title: `signed by its owner and proven in the ledger of zone ${ledger.zone} (entry ${ledger.index} of ${ledger.size})`,
        })),
      h('dl', { className: 'user-facts' },
        fact('Address', h('code', { className: 'address', textContent: shortAddress(rec.address), title: rec.address })),
        fact('Zone', rec.zone || '?'),
        fact('Ledger entry', h('code', { textContent: rec.seq, title: `relay key ${ledger.relayKey || '?'}` }))),
      h('div', { className: 'user-actions' }, connect, ping, status),
    );
    ui.findUserResult.dataset.name = rec.name;
    ui.findUserResult.dataset.address = rec.address;
    ui.findUserResult.hidden = false;
  }

  ui.findUser.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!ddt) return;
    const name = ui.findUserInput.value.trim();
    ui.findUserGo.disabled = true;
    ui.findUserGo.textContent = 'Finding…';
    findUserSays('');
    try {
      // Asking for the same name again means "look again", past the cache.
      const rec = await ddt.resolve(name, { fresh: name.toLowerCase() === lastFound });
      lastFound = rec.name;
      showUser(rec);
    } catch (err) {
      lastFound = '';
      findUserSays(message(err));
    } finally {
      ui.findUserGo.disabled = false;
      ui.findUserGo.textContent = 'Find';
    }
  });

  // ---- copy button --------------------------------------------------------

  let copyReset = 0;

  function copied(text) {
    ui.copy.textContent = text;
    clearTimeout(copyReset);
    copyReset = setTimeout(() => {
      ui.copy.textContent = 'Copy';
    }, 1500);
  }

  ui.copy.addEventListener('click', async () => {
    const text = ui.address.textContent;
    if (!text) return;
    try {
      await navigator.clipboard.writeText(text);
      copied('Copied');
    } catch {
      // No clipboard API (e.g. plain http on a LAN address): select the text.
      const range = document.createRange();
      range.selectNodeContents(ui.address);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      let ok = false;
      try {
        ok = document.execCommand('copy');
      } catch {
        ok = false;
      }
      copied(ok ? 'Copied' : 'Press Ctrl+C');
    }
  });

  // ---- start --------------------------------------------------------------

  paintCount();
  boot().catch((err) => {
    dead = true;
    markStopped('The node is not running.');
    showError('DDT could not start.', message(err));
    log(message(err), 'err');
  });
})();
