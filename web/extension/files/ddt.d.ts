// The extension's window.ddt: the node's API (web/static/ddt.d.ts), backed
// by the extension's offscreen node, and what the extension adds.

import type { DDT, Progress, StartConfig, StartError, StateEvent } from '../../static/ddt.js';

/** The extension node's own state (beside `ddt.state`, its relay state). */
export interface NodeStatus {
  /** starting: its document is starting it; running: it runs; failed: it could not start or stopped, and tries again by itself. */
  state: 'starting' | 'running' | 'failed';
  /** A sentence for people: what happens, why it failed and when it tries again. */
  detail: string;
  /** The relay the node runs on. */
  relay: string;
}

/** window.ddt in the extension's pages (the popup, its DDT page). */
export interface ExtensionDDT extends DDT {
  /** Makes url the relay of the extension's node (saved; the node starts again on it with the same identity); '' goes back to the relay the extension was built for. */
  setRelay(url: string): Promise<void>;
}

/** Connects to the extension's node; resolves with its API once it runs. */
export declare function start(
  config?: StartConfig,
  hooks?: { onProgress?: (p: Progress) => void; onExit?: (e: StartError) => void; onStatus?: (s: NodeStatus) => void },
): Promise<ExtensionDDT>;
export declare function setRelay(url: string): Promise<void>;
export declare function relayChoice(): Promise<{ relay: string; builtin: string }>;
export declare function nodeStatus(): NodeStatus;
export declare function lastState(): StateEvent;
