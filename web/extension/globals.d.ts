// What the extension's service worker (background.js) uses that the DOM
// library, which the extension's pages need, does not declare (it is
// lib.webworker's, which cannot be loaded beside the DOM's).

/** A message to a service worker: waitUntil keeps the worker up until its promise settles. */
interface ExtendableMessageEvent extends MessageEvent {
  waitUntil(promise: Promise<unknown>): void;
}

// The service worker's self (typed Window here, with the DOM library)
// hears its pages' messages as ExtendableMessageEvents.
interface Window {
  addEventListener(type: 'message', listener: (ev: ExtendableMessageEvent) => unknown): void;
}
