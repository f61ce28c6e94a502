// The extension's ddt.js: the client its pages start instead of the
// loader. The API's types (ExtensionDDT, NodeStatus) are the page's
// (web/static/ddt.d.ts).

import type { ExtensionDDT, NodeStatus, Progress, StartConfig, StateEvent } from '../../static/ddt.js';

export type { ExtensionDDT, NodeStatus };

/** Connects to the extension's node; resolves with its API once it runs. */
export declare function start(
  config?: StartConfig,
  hooks?: { onProgress?: (p: Progress) => void; onStatus?: (s: NodeStatus) => void },
): Promise<ExtensionDDT>;
export declare function setRelay(url: string): Promise<void>;
export declare function relayChoice(): Promise<{ relay: string; builtin: string }>;
export declare function lastState(): StateEvent;
