// background.js: the extension's service worker. It keeps the node up: the
// node is the offscreen document (a service worker has no window, so no
// RTCPeerConnection for pion's js backend), exactly one at a time, made
// again whenever it is gone — when the browser starts, when the extension
// is installed, when the document's keepalive port drops (it was closed,
// crashed or reloaded), on an alarm every 30 s, and whenever a page asks
// for the node. It hands each extension page that asks a MessagePort to
// the node (a page cannot reach the offscreen document itself), tells
// pages when the node goes down, and answers the omnibox keyword "ddt".

import { pageURL, siteAddress } from './address.js';
import config from './config.js';

const OFFSCREEN = 'offscreen.html';
// The channel the extension's pages hear the node's comings and goings on.
const news = new BroadcastChannel('ddt-node');

/** @returns {Promise<string>} the relay the user chose, else the built-in one */
async function relay() {
  try {
    const { relay } = await chrome.storage.local.get('relay');
    if (typeof relay === 'string' && relay) return relay;
  } catch {
    // storage unavailable: the built-in relay
  }
  return config.relay;
}

/** @type {Promise<void> | null} a check or creation under way: only one at a time */
let creating = null;

/**
 * ensureNode makes the offscreen document unless it exists. Callers that
 * come while one looks share its answer, so two never both create.
 * @returns {Promise<void>}
 */
function ensureNode() {
  if (!creating) {
    creating = (async () => {
      const contexts = await chrome.runtime.getContexts({ contextTypes: [chrome.runtime.ContextType.OFFSCREEN_DOCUMENT] });
      if (contexts.length > 0) return;
      const url = `${OFFSCREEN}?relay=${encodeURIComponent(await relay())}`;
      try {
        await chrome.offscreen.createDocument({
          url,
          reasons: [chrome.offscreen.Reason.WEB_RTC],
          justification: 'The DDT node keeps WebRTC data channels to its peers while the browser runs.',
        });
      } catch (err) {
        // One made meanwhile (by the browser's own restore): one is all we want.
        if (!String(err).includes('single offscreen')) throw err;
      }
    })().finally(() => {
      creating = null;
    });
  }
  return creating;
}

/** restartNode closes the node's document and makes it again (a new relay). */
async function restartNode() {
  if (creating) await creating.catch(() => {});
  try {
    await chrome.offscreen.closeDocument();
  } catch {
    // there was none
  }
  await ensureNode();
}

/** @param {unknown} err */
function failed(err) {
  console.error('ddt: the node could not be started:', err);
  news.postMessage({ ddt: 'status', state: 'failed', detail: `The extension could not start its node: ${String(err)}` });
}

// The node's document keeps a port to this worker open: when it drops the
// document is gone (or reloading), and the node is made again at once.
chrome.runtime.onConnect.addListener((port) => {
  if (port.name !== 'ddt-node') return;
  port.onMessage.addListener(() => {}); // its pings keep this worker awake
  port.onDisconnect.addListener(() => {
    news.postMessage({ ddt: 'down' });
    ensureNode().catch(failed);
  });
});

// A page of the extension asks for a port to the node.
self.addEventListener('message', (/** @type {ExtendableMessageEvent} */ e) => {
  const m = e.data;
  if (!m || typeof m !== 'object') return;
  if (m.ddt === 'connect' && e.ports[0]) {
    const port = e.ports[0];
    // A failed hand-over is that page's to hear (it asks again), not
    // every page's: the node may be running.
    e.waitUntil(handOver(port).catch((err) => {
      console.warn('ddt: a page\u2019s port could not be handed to the node:', err);
      port.postMessage({ op: 'unavailable', detail: String(err) });
    }));
  }
});

/**
 * handOver gives port to the node's document, making it first if need be.
 * @param {MessagePort} port
 */
async function handOver(port) {
  for (let attempt = 0; attempt < 3; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 250)); // a document just made may not be listed yet
    await ensureNode();
    const all = await /** @type {any} */ (self).clients.matchAll({ includeUncontrolled: true });
    const node = all.find((/** @type {{url: string}} */ c) => new URL(c.url).pathname === `/${OFFSCREEN}`);
    if (node) {
      node.postMessage({ ddt: 'client' }, [port]);
      return;
    }
  }
  throw new Error('the node\u2019s document is not running');
}

chrome.storage.onChanged.addListener((changes, area) => {
  if (area === 'local' && 'relay' in changes) restartNode().catch(failed);
});

chrome.runtime.onStartup.addListener(() => ensureNode().catch(failed));
chrome.runtime.onInstalled.addListener(() => ensureNode().catch(failed));
// Made once: made again at every start of this worker, it would wait its
// whole period anew each time.
chrome.alarms.get('ddt-node').then((a) => {
  if (!a) chrome.alarms.create('ddt-node', { periodInMinutes: 0.5 });
});
chrome.alarms.onAlarm.addListener((a) => {
  if (a.name === 'ddt-node') ensureNode().catch(failed);
});
ensureNode().catch(failed);

// The omnibox: "ddt example.ddt/path" opens that DDT site in the
// extension's DDT page, which serves it from this node through the site's
// own origin, as a DDT page does.

/**
 * onOmniboxEntered opens the site the user typed after the keyword, where
 * the browser asks (this tab, a new one, or one in the background).
 * @param {string} text
 * @param {`${chrome.omnibox.OnInputEnteredDisposition}`} disposition
 */
async function onOmniboxEntered(text, disposition) {
  const url = pageURL(text);
  ensureNode().catch(failed);
  if (disposition === 'currentTab') {
    const [tab] = await chrome.tabs.query({ active: true, currentWindow: true });
    if (tab && tab.id !== undefined) {
      await chrome.tabs.update(tab.id, { url });
      return;
    }
  }
  await chrome.tabs.create({ url, active: disposition !== 'newBackgroundTab' });
}

chrome.omnibox.setDefaultSuggestion({ description: 'Open a DDT site: example.ddt/path' });
chrome.omnibox.onInputChanged.addListener((text, suggest) => {
  const address = siteAddress(text);
  chrome.omnibox.setDefaultSuggestion({ description: address ? `Open ${address} on DDT` : 'Open a DDT site: example.ddt/path' });
  suggest([]);
});
chrome.omnibox.onInputEntered.addListener(onOmniboxEntered);
// The handler as the browser calls it, for tests (the omnibox cannot be
// typed into headless).
/** @type {any} */ (self).ddtOmnibox = onOmniboxEntered;
