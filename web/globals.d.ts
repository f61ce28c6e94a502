// What the page's modules use that is not theirs to declare: Go's
// wasm_exec.js (which defines globalThis.Go) and the DDT page's knobs. The
// public API's types are in static/ddt.d.ts.

/** Go's WebAssembly host, from wasm_exec.js. */
interface GoRuntime {
  importObject: WebAssembly.Imports;
  /** Called with the exit code when the program exits. */
  exit: (code: number) => void;
  /** Runs the program's main until it blocks; settles when the program exits. */
  run(instance: WebAssembly.Instance): Promise<void>;
}

declare var Go: (new () => GoRuntime) | undefined;

interface Window {
  /** The DDT page's relay (default: the page's origin). */
  DDT_RELAY?: string;
  /** The DDT page's connection budget. */
  DDT_MAX_PEERS?: number;
  /** The DDT page's storage pledge, in bytes. */
  DDT_PLEDGE?: number;
}
