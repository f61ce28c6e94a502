// config.js, which Assemble writes: what the extension was built for.
declare const config: {
  /** The relay the node uses until its user picks another. */
  relay: string;
  /** The extension's version. */
  version: string;
};
export default config;
