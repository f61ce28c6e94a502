// ddt.js loads a DDT node into the page, or extension document, that
// imports it, and starts it:
//
//   import {start} from 'https://relay.example/ddt.js';
//   const ddt = await start({relay: 'https://relay.example'});
//
// It finds ddt.wasm and Go's wasm_exec.js beside itself (config.wasmURL and
// config.wasmExecURL say otherwise), loads wasm_exec.js unless globalThis.Go
// is defined, fetches the wasm and compiles it as it streams in, runs it, and
// hands the rest of config to the node's globalThis.ddtStart, whose promise
// of the API (window.ddt) it returns. The relay defaults to the origin this
// file came from. It holds no protocol logic. Types: ddt.d.ts.

/** @import {DDTConfig, Progress, StartError, StartErrorCode} from './ddt.js' */

const here = import.meta.url;

/**
 * The runtime this module started: loading, or running until `exited`
 * settles. null until the first start() and after a failed load, so that a
 * later call can try again.
 * @type {Promise<{exited: Promise<StartError>}> | null}
 */
let runtime = null;

/** @type {typeof import('./ddt.js').start} */
export async function start(config = {}, { onProgress, onExit } = {}) {
  const { wasmURL, wasmExecURL, ...rest } = config || {};
  /** @type {DDTConfig} */
  const nodeConfig = { ...rest, relay: rest.relay || new URL(here).origin };
  if (!runtime) {
    runtime = load(new URL(wasmURL || 'ddt.wasm', here), new URL(wasmExecURL || 'wasm_exec.js', here), onProgress);
    runtime.catch(() => {
      runtime = null;
    });
  }
  const { exited } = await runtime;
  const ddtStart = globalThis.ddtStart;
  if (typeof ddtStart !== 'function') throw failure('start', 'The node did not define ddtStart, so it cannot start.');
  const started = ddtStart(nodeConfig).catch((err) => {
    throw failure('start', message(err), err);
  });
  const api = await Promise.race([started, exited.then((err) => Promise.reject(err))]);
  if (onExit) exited.then(onExit);
  return api;
}

/**
 * load runs the node's wasm: it returns once the Go program's main has
 * defined ddtStart, with a promise of the Error that says how it exited.
 * @param {URL} wasmURL
 * @param {URL} wasmExecURL
 * @param {((p: Progress) => void) | undefined} onProgress
 * @returns {Promise<{exited: Promise<StartError>}>}
 */
async function load(wasmURL, wasmExecURL, onProgress) {
  if (typeof WebAssembly !== 'object' || typeof WebAssembly.instantiateStreaming !== 'function') {
    throw failure('unsupported', 'This browser cannot run WebAssembly, which the DDT node needs.');
  }
  if (typeof globalThis.Go !== 'function') {
    try {
      await import(wasmExecURL.href);
    } catch (err) {
      throw failure('wasm-exec', `${wasmExecURL} did not load, so the node cannot start: ${message(err)}`, err);
    }
    if (typeof globalThis.Go !== 'function') {
      throw failure('wasm-exec', `${wasmExecURL} did not define Go, so the node cannot start.`);
    }
  }
  const go = new globalThis.Go();
  /** @type {number | null} */
  let exitCode = null;
  const exit = go.exit;
  go.exit = (code) => {
    exitCode = code;
    exit(code);
  };
  let instance;
  try {
    ({ instance } = await instantiate(wasmURL, go.importObject, onProgress || (() => {})));
    performance.mark('ddt:compiled');
  } catch (err) {
    throw failure('download', `Could not download and start the node (${wasmURL}): ${message(err)}`, err);
  }
  // run() executes the Go program's main until it blocks, having defined
  // ddtStart; its promise settles only when the program exits.
  const exited = go.run(instance).then(
    () => exitFailure(exitCode === null ? 'The node exited.' : `The node exited with code ${exitCode}.`, exitCode),
    (err) => exitFailure(`The node stopped: ${message(err)}`, exitCode, err),
  );
  return { exited };
}

/**
 * instantiate fetches the wasm and compiles it while it streams in. The
 * response goes to the compiler untouched, so the browser can cache the
 * compiled code for the next visit; a clone of it feeds onProgress.
 * @param {URL} url
 * @param {WebAssembly.Imports} importObject
 * @param {(p: Progress) => void} onProgress
 */
async function instantiate(url, importObject, onProgress) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
  const total = expectedLength(res);
  let received = 0;
  let compiled = false;
  onProgress({ phase: 'download', received, total });
  const counter = res.clone().body?.getReader();
  (async () => {
    for (;;) {
      const chunk = await counter?.read();
      if (!chunk || chunk.done || compiled) return;
      received += chunk.value.byteLength;
      onProgress({ phase: 'download', received, total });
    }
  })().catch(() => {});
  const result = await WebAssembly.instantiateStreaming(res, importObject);
  compiled = true;
  counter?.cancel().catch(() => {});
  onProgress({ phase: 'start', received: Math.max(received, total), total });
  return result;
}

/**
 * expectedLength is the number of bytes the body will have once decoded:
 * the server's X-Uncompressed-Length if given (a relay exposes it to pages
 * of other origins), else Content-Length when the body is not compressed,
 * else 0 (unknown). Across origins an unexposed Content-Encoding reads as
 * absent, so there a Content-Length says nothing.
 * @param {Response} res
 */
function expectedLength({ headers, type }) {
  const raw = parseInt(headers.get('X-Uncompressed-Length') || '', 10);
  if (raw > 0) return raw;
  if (type === 'cors') return 0;
  const encoding = (headers.get('Content-Encoding') || 'identity').trim().toLowerCase();
  const length = parseInt(headers.get('Content-Length') || '', 10);
  return encoding === 'identity' && length > 0 ? length : 0;
}

/**
 * @param {StartErrorCode} code
 * @param {string} text
 * @param {unknown} [cause]
 * @returns {StartError}
 */
function failure(code, text, cause) {
  return Object.assign(new Error(text, cause === undefined ? undefined : { cause }), { code });
}

/**
 * @param {string} text
 * @param {number | null} exitCode
 * @param {unknown} [cause]
 */
function exitFailure(text, exitCode, cause) {
  const err = failure('exited', text, cause);
  if (exitCode !== null) err.exitCode = exitCode;
  return err;
}

/** @param {unknown} err */
function message(err) {
  const text = err && typeof err === 'object' && 'message' in err ? err.message : '';
  return (typeof text === 'string' && text) || String(err);
}
