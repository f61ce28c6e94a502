// files.js: the Files card: share a file (picker or drag-and-drop) with a
// progress bar and the resulting content id; download an item by its id
// with a progress bar and a link to save it; and the storage meter (used
// of pledged, pinned). It calls only ddt.put, ddt.get, ddt.storage and the
// content.penalty event; the bytes go from the file to the node's store
// and back as Blobs, never through this script.

import { $, formatBytes, message } from './dom.js';
import { log } from './log.js';

/** @import {ContentError, ContentProgress, DDT, PenaltyEvent, StateEvent, StorageUsage} from '../ddt.js' */

const REFRESH_MS = 3000;

const chunksCount = $('storage-chunks');
const meter = $('storage-meter');
const meterPinned = $('storage-pinned');
const meterOthers = $('storage-others');
const storageText = $('storage-text');

const drop = $('share-drop', HTMLLabelElement);
const picker = $('share-input', HTMLInputElement);
const shareXfer = $('share-xfer');
const shareBar = $('share-progress', HTMLProgressElement);
const shareStatus = $('share-status');
const shareResult = $('share-result');
const shareId = $('share-id');
const shareCopy = $('share-copy', HTMLButtonElement);
const shareError = $('share-error');

const fetchForm = $('fetch', HTMLFormElement);
const fetchInput = $('fetch-id', HTMLInputElement);
const fetchGo = $('fetch-go', HTMLButtonElement);
const fetchCancel = $('fetch-cancel', HTMLButtonElement);
const fetchXfer = $('fetch-xfer');
const fetchBar = $('fetch-progress', HTMLProgressElement);
const fetchStatus = $('fetch-status');
const fetchNote = $('fetch-note');
const fetchError = $('fetch-error');
const fetchResult = $('fetch-result');
const fetchSave = $('fetch-save', HTMLAnchorElement);
const fetchMeta = $('fetch-meta');

/** @type {DDT | null} */
let ddt = null;
let admitted = false;
let sharing = false;
/** @type {AbortController | null} */
let downloading = null;
/** The object URL of the last download, revoked when the next replaces it. */
let savedURL = '';
/** Peers penalised during the download under way. */
const penalised = new Set();

/**
 * attach shows the node's storage and enables sharing and downloading.
 * @param {DDT} node
 * @returns {() => void} detach
 */
export function attach(node) {
  ddt = node;
  const offs = [node.on('state', onState), node.on('content.penalty', onPenalty)];
  onState({ state: node.state || 'connecting', detail: '', retryInMs: 0 });
  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => {
    clearInterval(timer);
    offs.forEach((off) => off());
  };
}

/** @param {StateEvent} ev */
function onState(ev) {
  admitted = ev.state === 'admitted';
  paintControls();
}

/** @param {PenaltyEvent} ev */
function onPenalty(ev) {
  if (!downloading || !ev || !ev.peer) return;
  penalised.add(ev.peer);
  const n = penalised.size;
  fetchNote.textContent = `${n} peer${n === 1 ? '' : 's'} sent corrupt bytes; the download went on from others, and ${n === 1 ? 'it was' : 'they were'} penalised.`;
  log(`A peer sent corrupt bytes (${ev.reason}); routed around it.`, 'warn');
}

function paintControls() {
  const ready = !!ddt && admitted;
  picker.disabled = !ready || sharing;
  drop.setAttribute('aria-disabled', String(!ready || sharing));
  fetchGo.disabled = !ready || !!downloading;
  fetchInput.readOnly = !!downloading;
  fetchCancel.hidden = !downloading;
}

// ---- storage ------------------------------------------------------------

let refreshing = false;

async function refresh() {
  if (!ddt || refreshing || typeof ddt.storage !== 'function') return;
  refreshing = true;
  try {
    paintStorage(await ddt.storage());
  } catch (err) {
    console.debug('ddt.storage() failed:', err);
  } finally {
    refreshing = false;
  }
}

/** @param {StorageUsage} s */
function paintStorage(s) {
  const others = Math.max(0, s.usedBytes - s.pinnedBytes);
  // The bar is the pledge plus what this node keeps for itself: its own
  // and pinned content is outside the pledge, so both show side by side.
  const scale = Math.max(1, s.pledgedBytes + s.pinnedBytes);
  meterPinned.style.setProperty('--fill', String(Math.min(1, s.pinnedBytes / scale)));
  meterOthers.style.setProperty('--fill', String(Math.min(1, others / scale)));
  meter.setAttribute('aria-valuemax', String(scale));
  meter.setAttribute('aria-valuenow', String(s.usedBytes));
  chunksCount.textContent = String(s.chunks);
  storageText.replaceChildren(
    keyed('key-pinned', `${formatBytes(s.pinnedBytes)} yours and pinned`),
    ' · ',
    keyed('key-others', `${formatBytes(others)} cache and replicas, of ${formatBytes(s.pledgedBytes)} pledged`),
    s.persisted ? ' · persistent' : ' · not persistent: the browser may clear it if disk runs short',
  );
}

/**
 * @param {string} key
 * @param {string} text
 */
function keyed(key, text) {
  const span = document.createElement('span');
  const dot = document.createElement('span');
  dot.className = `key ${key}`;
  span.append(dot, text);
  return span;
}

// ---- progress -----------------------------------------------------------

/**
 * paint shows p on a progress bar and its status line.
 * @param {HTMLProgressElement} bar
 * @param {HTMLElement} status
 * @param {ContentProgress} p
 * @param {string} verb what the bytes are ("shared", "downloaded")
 */
function paint(bar, status, p, verb) {
  if (p.total > 0) {
    bar.max = p.total;
    bar.value = Math.min(p.bytes, p.total);
  } else {
    bar.removeAttribute('value');
  }
  const rate = p.bytesPerSec > 0 ? ` · ${formatBytes(p.bytesPerSec)}/s` : '';
  const of = p.total > 0 ? `${formatBytes(p.bytes)} of ${formatBytes(p.total)}` : formatBytes(p.bytes);
  const providers = p.providers > 0 ? ` · from ${p.providers} peer${p.providers === 1 ? '' : 's'}` : '';
  switch (p.phase) {
    case 'hashing':
    case 'storing':
      status.textContent = `Hashing and storing… ${of}${rate}`;
      break;
    case 'finding':
      bar.removeAttribute('value');
      status.textContent = 'Looking for peers that hold it…';
      break;
    case 'downloading':
      status.textContent = `Downloading… ${of}${rate}${providers} · chunk ${p.chunksDone} of ${p.chunks}`;
      break;
    case 'done':
      bar.max = 1;
      bar.value = 1;
      status.textContent = `${formatBytes(Math.max(p.total, p.bytes))} ${verb}.`;
      break;
    default:
      status.textContent = `${of}${rate}`;
  }
}

/**
 * words is what the page says of a failed put or get.
 * @param {unknown} err
 */
function words(err) {
  const code = /** @type {Partial<ContentError>} */ (err || {}).code;
  switch (code) {
    case 'not-found':
      return 'Nobody holds this item right now: its publisher and every replica are offline, or the id is wrong.';
    case 'corrupt':
      return 'Every peer that had this item sent corrupt bytes; nothing of them was kept, and they were penalised.';
    case 'quota':
      return `Not enough room: ${message(err)}`;
    case 'aborted':
      return 'Cancelled.';
    default: // invalid and the rest say it best themselves
      return message(err);
  }
}

// ---- share --------------------------------------------------------------

/** @param {File} file */
async function share(file) {
  if (!ddt || sharing || !admitted) return;
  sharing = true;
  paintControls();
  shareError.textContent = '';
  shareResult.hidden = true;
  shareXfer.hidden = false;
  paint(shareBar, shareStatus, { phase: 'hashing', bytes: 0, total: file.size, bytesPerSec: 0, providers: 0, chunks: 0, chunksDone: 0 }, 'shared');
  try {
    const id = await ddt.put(file, { onProgress: (p) => paint(shareBar, shareStatus, p, 'shared') });
    paint(shareBar, shareStatus, { phase: 'done', bytes: file.size, total: file.size, bytesPerSec: 0, providers: 0, chunks: 0, chunksDone: 0 }, 'shared');
    shareStatus.textContent = `Shared ${file.name} (${formatBytes(file.size)}). Anyone with this id can download it:`;
    shareId.textContent = id;
    shareResult.hidden = false;
    log(`Shared ${file.name} as ${id.slice(0, 8)}…`, 'ok');
  } catch (err) {
    shareXfer.hidden = true;
    shareError.textContent = words(err);
    log(`Could not share ${file.name}: ${message(err)}`, 'err');
  } finally {
    sharing = false;
    picker.value = '';
    paintControls();
    refresh();
  }
}

picker.addEventListener('change', () => {
  const file = picker.files && picker.files[0];
  if (file) share(file);
});

drop.addEventListener('dragover', (ev) => {
  ev.preventDefault(); // allows the drop
  if (ev.dataTransfer) ev.dataTransfer.dropEffect = picker.disabled ? 'none' : 'copy';
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  drop.classList.remove('over');
  const file = ev.dataTransfer && ev.dataTransfer.files[0];
  if (file && !picker.disabled) share(file);
});

/** @type {ReturnType<typeof setTimeout> | undefined} */
let copyReset;

shareCopy.addEventListener('click', async () => {
  const text = shareId.textContent || '';
  if (!text) return;
  let ok = true;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard API (plain http on a LAN address): select the id.
    const range = document.createRange();
    range.selectNodeContents(shareId);
    const sel = getSelection();
    sel?.removeAllRanges();
    sel?.addRange(range);
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
  }
  shareCopy.textContent = ok ? 'Copied' : 'Press Ctrl+C';
  clearTimeout(copyReset);
  copyReset = setTimeout(() => {
    shareCopy.textContent = 'Copy';
  }, 1500);
});

// ---- download -----------------------------------------------------------

fetchForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!ddt || downloading || !admitted) return;
  const id = fetchInput.value.trim().toLowerCase();
  fetchError.textContent = '';
  fetchNote.textContent = '';
  if (!/^[0-9a-f]{64}$/.test(id)) {
    fetchError.textContent = 'A content id is 64 hex digits.';
    return;
  }
  const ctl = new AbortController();
  downloading = ctl;
  penalised.clear();
  fetchResult.hidden = true;
  if (savedURL) URL.revokeObjectURL(savedURL);
  savedURL = '';
  fetchXfer.hidden = false;
  paint(fetchBar, fetchStatus, { phase: 'finding', bytes: 0, total: 0, bytesPerSec: 0, providers: 0, chunks: 0, chunksDone: 0 }, 'downloaded');
  paintControls();
  try {
    // A download is kept as cache, which lives within the pledge; one
    // larger than the pledge could not fit, so it is kept pinned instead
    // (the pledge bounds what the node lends, not what its user fetches),
    // and the card says so.
    let pin = false;
    let pledged = 0;
    try {
      const [st, mine] = await Promise.all([ddt.stat(id), ddt.storage()]);
      pledged = mine.pledgedBytes;
      pin = !st.local && st.size > pledged;
    } catch {
      // ddt.get below says why, in its own words.
    }
    const file = await ddt.get(id, { signal: ctl.signal, pin, onProgress: (p) => paint(fetchBar, fetchStatus, p, 'downloaded') });
    if (pin) {
      fetchNote.textContent = `Kept on this node (pinned): it is larger than the ${formatBytes(pledged)} this node keeps as cache.`;
    }
    // A stranger chose the file's type: a blob: URL of text/html opened
    // in a tab would run the stranger's script in this page's origin, with
    // the node's keys. Offered as bytes, it can only be saved.
    savedURL = URL.createObjectURL(new Blob([file], { type: 'application/octet-stream' }));
    const name = file.name || `${id.slice(0, 12)}.bin`;
    fetchSave.href = savedURL;
    fetchSave.download = name;
    fetchSave.textContent = `Save ${name}`;
    fetchMeta.textContent = `${formatBytes(file.size)}${file.type ? ` · ${file.type}` : ''}`;
    fetchResult.hidden = false;
    fetchBar.max = 1;
    fetchBar.value = 1;
    fetchStatus.textContent = `Downloaded ${formatBytes(file.size)}, every chunk checked against its hash.`;
    log(`Downloaded ${name} (${formatBytes(file.size)}).`, 'ok');
  } catch (err) {
    fetchXfer.hidden = true;
    fetchError.textContent = words(err);
    log(`Download of ${id.slice(0, 8)}… failed: ${message(err)}`, 'err');
  } finally {
    downloading = null;
    paintControls();
    refresh();
  }
});

fetchCancel.addEventListener('click', () => downloading?.abort());
