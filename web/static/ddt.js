// ddt.js loads a DDT node into the page, or extension document, that
// imports it, and starts it:
//
//   import {start} from 'https://relay.example/ddt.js';
//   const ddt = await start({relay: 'https://relay.example'});
//
// It finds ddt.wasm and Go's wasm_exec.js beside itself (config.wasmURL and
// config.wasmExecURL say otherwise), starts compiling the wasm as it streams
// in (or takes over config.wasm, a compile the host started earlier), loads
// wasm_exec.js meanwhile unless globalThis.Go is defined, runs it, and
// hands the rest of config to the node's globalThis.ddtStart, whose promise
// of the API (window.ddt) it returns. The relay defaults to the origin this
// file came from. It holds no protocol logic. Types: ddt.d.ts.

/** @import {DDTConfig, EarlyWasm, Progress, StartError, StartErrorCode} from './ddt.js' */

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
  const { wasmURL, wasmExecURL, wasm, ...rest } = config || {};
  /** @type {DDTConfig} */
  const nodeConfig = { ...rest, relay: rest.relay || new URL(here).origin };
  if (!runtime) {
    runtime = load(new URL(wasmURL || 'ddt.wasm', here), new URL(wasmExecURL || 'wasm_exec.js', here), onProgress, wasm);
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
 * @param {EarlyWasm | undefined} early a compile the host started itself
 * @returns {Promise<{exited: Promise<StartError>}>}
 */
async function load(wasmURL, wasmExecURL, onProgress, early) {
  if (typeof WebAssembly !== 'object' || typeof WebAssembly.compileStreaming !== 'function') {
    throw failure('unsupported', 'This browser cannot run WebAssembly, which the DDT node needs.');
  }
  // The compile starts before anything else: a preloaded response is not
  // read until someone consumes it, so every moment before this one would
  // add to the download. It needs no imports; Go's come next.
  const compiling = early ? adopt(early, onProgress || (() => {})) : compile(wasmURL, onProgress || (() => {}));
  compiling.catch(() => {}); // awaited below
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
    instance = await WebAssembly.instantiate(await compiling, go.importObject);
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
 * compile fetches the wasm and compiles it while it streams in. The
 * response goes to the compiler untouched, so the browser can cache the
 * compiled code for the next visit; a clone of it, read at once, feeds the
 * progress reports.
 * @param {URL} url
 * @param {(p: Progress) => void} onProgress
 * @returns {Promise<WebAssembly.Module>}
 */
function compile(url, onProgress) {
  /** @type {((p: Progress) => void)[]} */
  const listeners = [];
  const response = fetch(url);
  response.then((res) => count(res, (p) => listeners.forEach((fn) => fn(p)))).catch(() => {});
  const module = response.then((res) => {
    if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
    return WebAssembly.compileStreaming(res);
  });
  return adopt({ module, progress: (fn) => listeners.push(fn) }, onProgress);
}

/**
 * count reports the download's progress from a clone of res until its end.
 * @param {Response} res
 * @param {(p: Progress) => void} onProgress
 */
async function count(res, onProgress) {
  if (!res.ok || !res.body) return;
  const total = expectedLength(res);
  const reader = res.clone().body?.getReader();
  let received = 0;
  onProgress({ phase: 'download', received, total });
  for (let chunk = await reader?.read(); chunk && !chunk.done; chunk = await reader?.read()) {
    received += chunk.value.byteLength;
    onProgress({ phase: 'download', received, total });
  }
}

/**
 * adopt waits for a compile under way, passing on its progress reports
 * (if it gives them) until the module is compiled, then says so.
 * @param {EarlyWasm} early
 * @param {(p: Progress) => void} onProgress
 * @returns {Promise<WebAssembly.Module>}
 */
async function adopt({ module, progress }, onProgress) {
  let compiled = false;
  /** @type {Progress} */
  let last = { phase: 'download', received: 0, total: 0 };
  progress?.((p) => {
    last = p;
    if (!compiled) onProgress(p);
  });
  let done;
  try {
    done = await module;
  } finally {
    compiled = true;
  }
  onProgress({ phase: 'start', received: Math.max(last.received, last.total), total: last.total });
  return done;
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
