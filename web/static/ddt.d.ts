// Types of a DDT node as a page or an extension sees it: the loader
// (ddt.js: start), the node's configuration (DDTConfig) and the public API
// (DDT, window.ddt), with its events and its username records. The README's
// "window.ddt — the public API" section is the reference; a test checks that
// it, this file and the running node name the same members and events.

/** A DDT address: 40 lowercase hex digits. */
export type Address = string;

/** The node's relay state, as `ddt.state` and the `state` event give it. */
export type State = 'connecting' | 'admitted' | 'retrying' | 'refused';

/** How a data channel was signaled: through the relay, or routed through other peers. */
export type Via = 'relay' | 'overlay';

/** What `ddt.ready` resolves with once the node is admitted to a zone. */
export interface Admission {
  /** This node's DDT address. */
  address: Address;
  /** The zone's name. */
  zone: string;
}

/** A peer with an open data channel, as `ddt.peers()` and `ddt.connect()` give it. */
export interface Peer {
  address: Address;
  /** The last keepalive round trip in ms (0 before the first). */
  rttMs: number;
  /** True for headless native nodes, false for browser tabs. */
  native: boolean;
  /** How the channel was signaled. */
  via: Via;
}

/** What `ddt.throughput()` measured. */
export interface Throughput {
  /** Bytes of test data sent. */
  bytes: number;
  /** From the first byte sent to the peer's receipt, in ms. */
  ms: number;
  mibPerSec: number;
}

/** An iterative DHT lookup's outcome, as `ddt.lookup()` gives it. */
export interface Lookup {
  /** True when the node at the address itself answered. */
  found: boolean;
  /** The sequential query rounds until it was first reported. */
  hops: number;
  ms: number;
  /** Requests sent. */
  messages: number;
  /** The closest live addresses found, closest first. */
  closest: Address[];
}

/** One bucket of the routing table. */
export interface Bucket {
  /** Bits shared with this node's address. */
  index: number;
  /** Contacts in the bucket (at most 20). */
  contacts: number;
  /** Contacts with an open data channel. */
  connected: number;
}

/** The routed-message counters. */
export interface OverlayStats {
  sent: number;
  delivered: number;
  forwarded: number;
  dropped: number;
  /** Frames of message types this node does not know (a newer peer's), skipped. */
  unknown: number;
  /** Routed messages for this node whose signed time was more than 2 minutes off (also in `dropped`). */
  stale: number;
  /** Routed messages for this node already seen, or older than the replay filter remembers (also in `dropped`). */
  replayed: number;
  /** Frames dropped because a peer's send queue was full (it reads slowly or not at all). */
  queueFull: number;
  /** Peers closed because they stopped reading. */
  stalled: number;
  /** Requests refused because too many were being answered. */
  busy: number;
  /** WebRTC offers refused: the budget, or the pending offers of their signaler or in all, were full. */
  offersRefused: number;
}

/** The routing table by bucket and the routed-message counters, as `ddt.routing()` gives them. */
export interface Routing {
  buckets: Bucket[];
  /** Contacts in all buckets. */
  contacts: number;
  overlay: OverlayStats;
}

/**
 * A verified username record, as `ddt.register()`, `ddt.resolve()` and the
 * `username` event give it.
 */
export interface UserRecord {
  /** The name, in lower case. */
  name: string;
  /** The owner's DDT address. */
  address: Address;
  /** The owner's zone. */
  zone: string;
  /** The owner's Ed25519 key, hex. */
  signKey: string;
  /** The owner's X25519 key, hex. */
  agreeKey: string;
  /** The claim's version: 1, and one more at every claim from a new address. */
  version: number;
  /** Where the claim was sequenced. */
  ledger: {
    /** The home relay's zone. */
    zone: string;
    /** The entry's index in that zone's ledger. */
    index: number;
    /** That relay's key, hex. */
    relayKey: string;
    /** The size of the checkpoint the inclusion proof is against. */
    size: number;
  };
  /** `"<ledger zone>:<index>"`, e.g. `"b:5"`. */
  seq: string;
}

/**
 * Why `ddt.register()` or `ddt.resolve()` failed: `invalid` (empty, longer
 * than 16, or other characters), `taken` (another key holds the name),
 * `not-found` (nobody holds it), `already-registered` (this node holds another
 * name), `unavailable` (the home relay is unreachable, or the relay is still
 * joining), `rate-limited` (over 5 claims/s or 20 lookups/s per node),
 * `not-admitted` (not in a zone yet), `timeout` (no answer in 15 s), `forged`
 * (a record that does not verify), `error` (anything else).
 */
export type NameErrorCode =
  | 'invalid'
  | 'taken'
  | 'not-found'
  | 'already-registered'
  | 'unavailable'
  | 'rate-limited'
  | 'not-admitted'
  | 'timeout'
  | 'forged'
  | 'error';

/** The Error `ddt.register()` and `ddt.resolve()` reject with; its message is meant for people. */
export type NameError = Error & { code: NameErrorCode };

/**
 * Why any other call of `window.ddt` rejected: `invalid` (a bad argument: an
 * address that is not 40 hex digits, a byte count out of range),
 * `not-admitted` (not in a zone yet), `not-connected` (no open data channel
 * to that address), `timeout` (no answer in time), `unsupported` (the peer
 * or relay does not run that service), `error` (anything else).
 */
export type ErrorCode = 'invalid' | 'not-admitted' | 'not-connected' | 'timeout' | 'unsupported' | 'error';

/** The Error the other calls of `window.ddt` reject with; its message is meant for people. */
export type DDTError = Error & { code: ErrorCode };

/** A content id: the SHA-256 of an item's manifest, 64 lowercase hex digits. */
export type ContentID = string;

/**
 * How a `ddt.put()` or `ddt.get()` goes, as its `onProgress` hears it (about
 * ten times a second, and at every change of phase).
 */
export interface ContentProgress {
  /**
   * `"hashing"` and `"storing"` (a put: reading, hashing and storing the
   * chunks here), `"finding"` (a get: asking the DHT for providers),
   * `"downloading"`, or `"done"`.
   */
  phase: 'hashing' | 'storing' | 'finding' | 'downloading' | 'done';
  /** Bytes done so far in this phase. */
  bytes: number;
  /** Bytes in all (the item's size); -1 while it is not known yet (phase `finding`). */
  total: number;
  /** The rate since the transfer began, in bytes per second. */
  bytesPerSec: number;
  /** Providers the download is fetching from now (0 for a put). */
  providers: number;
  /** Chunks in the item. */
  chunks: number;
  /** Chunks done (hashed and stored, or downloaded and verified). */
  chunksDone: number;
}

/** What `ddt.put()` takes besides the data. */
export interface PutOptions {
  /** The item's name (default: a File's own name, else none). At most 255 bytes. */
  name?: string;
  /** Its media type (default: a Blob's own type; a string's is `text/plain;charset=utf-8`). At most 127 bytes. */
  type?: string;
  /** Private data: at most one replica, instead of at least three. */
  unicast?: boolean;
  onProgress?: (progress: ContentProgress) => void;
  /** Cancels the put: the promise rejects with code `aborted` (what was stored so far is cache, not pinned). */
  signal?: AbortSignal;
}

/** What `ddt.pin()` takes besides the id. */
export interface PinOptions {
  /** Cancels the fetch of what is missing: the promise rejects with code `aborted`. */
  signal?: AbortSignal;
}

/** What `ddt.get()` takes besides the id. */
export interface GetOptions {
  onProgress?: (progress: ContentProgress) => void;
  /** Cancels the download: the promise rejects with code `aborted`. */
  signal?: AbortSignal;
  /**
   * Pin the item once it is here (kept outside the pledge, never evicted,
   * until `unpin`). Without it the item is cache, within the pledge: one
   * larger than the pledge rejects with code `quota`.
   */
  pin?: boolean;
}

/** What `ddt.stat()` says of an item. */
export interface ContentStat {
  id: ContentID;
  /** The name its publisher gave it (a label, not verified). */
  name: string;
  /** Bytes. */
  size: number;
  /** Its media type (a label, not verified). */
  type: string;
  /** Chunks of at most 4 MiB. */
  chunks: number;
  /** Every chunk is stored on this node. */
  local: boolean;
  /** Pinned here: never evicted. */
  pinned: boolean;
  /** Live copies the network holds, as this node last counted (0 when unknown). */
  replicas: number;
}

/** This node's storage, as `ddt.storage()` gives it. */
export interface StorageUsage {
  /** Bytes of chunks stored here, own and others'. */
  usedBytes: number;
  /** Bytes this node lends others for replicas and cache (config `pledge`). */
  pledgedBytes: number;
  /** Bytes of its own and pinned content (not counted against the pledge). */
  pinnedBytes: number;
  /** Chunks stored here. */
  chunks: number;
  /** The browser granted persistent storage (`navigator.storage.persist()`): it will not evict this origin's data when disk runs short. */
  persisted: boolean;
}

/**
 * Why a content call rejected: `not-found` (no provider holds the item, or
 * an id nobody published), `corrupt` (every provider served bytes that do not
 * hash to what was asked; each was penalised), `quota` (the browser or the
 * pledge has no room), `aborted` (the `signal` aborted), `invalid` (a bad
 * argument: an id that is not 64 hex digits, data of another kind), or the
 * codes of {@link ErrorCode}.
 */
export type ContentErrorCode = 'not-found' | 'corrupt' | 'quota' | 'aborted' | ErrorCode;

/** The Error the content calls reject with; its message is meant for people. */
export type ContentError = Error & { code: ContentErrorCode };

/** The `peer` event: a data channel opened and the peer proved its lease. */
export interface PeerEvent {
  address: Address;
  native: boolean;
  via: Via;
}

/** The `peer-gone` event: that channel closed (tab closed, peer silent for 7 s, …). */
export interface PeerGoneEvent {
  address: Address;
  /** Why, in words. */
  reason: string;
}

/** The `state` event: the relay state changed. */
export interface StateEvent {
  state: State;
  /** A readable sentence. */
  detail: string;
  /** The wait before the next attempt when retrying or refused, else 0. */
  retryInMs: number;
}

/** The `dial-failed` event: an attempt of this node's to open a data channel failed or stalled. */
export interface DialFailedEvent {
  address: Address;
  /** Why, in words (e.g. "no data channel after 5s"). */
  reason: string;
  /** When the node tries again by itself, in ms; 0 when it does not. */
  retryInMs: number;
}

/** The `content.replicas` event. */
export interface ReplicasEvent {
  id: ContentID;
  /** Live copies counted, the publisher's own included. */
  replicas: number;
}

/** The `content.penalty` event. */
export interface PenaltyEvent {
  /** The peer's address. */
  peer: Address;
  /** Why, in words (e.g. "served corrupt bytes for chunk 1a2b3c4d"). */
  reason: string;
}

/** A friend (or a friend request of ours), as `ddt.friends()` and event `friend` give it. */
export interface Friend {
  /** Its username. */
  name: string;
  /** Its last known address. */
  address: Address;
  /** It answered or sent something lately. */
  online: boolean;
  /** When the friendship began (Unix ms); 0 while the request is pending. */
  since: number;
  /** `"friend"`, `"requested"` (we asked; no answer yet) or `"declined"`. */
  state: 'friend' | 'requested' | 'declined';
  /** The end-to-end session: `"none"`, `"connecting"` (the chained key exchange runs) or `"ready"`. */
  session: 'none' | 'connecting' | 'ready';
  /** Messages received since `markRead`. */
  unread: number;
  /** The safety number: 12 groups of five digits, the same on both sides; compare it out of band. */
  safety: string;
}

/** A friend request waiting for this node's answer (`ddt.requests()`, event `friend-request`). */
export interface FriendRequest {
  /** The asker's username, its record verified. */
  from: string;
  address: Address;
  /** When it came (Unix ms). */
  at: number;
}

/** One message of a conversation (`ddt.history()`, event `message`). */
export interface ChatMessage {
  /** 32 hex digits, chosen by the sender. */
  id: string;
  /** The sender's name; `""` for this node's own. */
  from: string;
  /** The receiver's name; `""` for one to this node. */
  to: string;
  text: string;
  /** When it was sent, by the sender's clock (Unix ms). */
  at: number;
  /**
   * This node's own: `"sending"` (also while it waits in the outbox), `"stored"` (held for the offline friend at
   * the node closest to its address), `"delivered"` (the friend acknowledged
   * it); `"received"` for one to this node.
   */
  state: 'sending' | 'stored' | 'delivered' | 'received';
}

/** What `ddt.send()` resolves with. */
export interface Sent {
  id: string;
  /**
   * `"direct"`: the friend acknowledged it now; `"stored"`: held for it at the
   * node closest to its address, event `delivered` follows when it collects
   * it; `"queued"`: it waits in this node's outbox and goes when it can (no
   * session with the friend yet, or neither the friend nor a holder could be
   * reached now).
   */
  delivered: 'direct' | 'stored' | 'queued';
}

/** The `delivered` event: a friend acknowledged one of this node's messages. */
export interface DeliveredEvent {
  to: string;
  id: string;
}

/** The `session` event: a session with a friend was established or lost. */
export interface SessionEvent {
  name: string;
  state: 'none' | 'connecting' | 'ready';
}

/** What the chat service did (`ddt.chatStats()`). */
export interface ChatStats {
  /** Onion layers this node peeled and passed on, as an intermediary. */
  onionsForwarded: number;
  /** Onion layers refused: not for it, stale, replayed, a flood. */
  onionsDropped: number;
  /** Key-exchange chains this node started. */
  chainsSent: number;
  /** Chains sent again on other hops for want of an acknowledgement. */
  chainsRetried: number;
  /** Messages this node holds for offline receivers, and their bytes. */
  held: number;
  heldBytes: number;
}

/**
 * Why a chat call failed: `invalid` (not a username, an empty or oversized
 * text), `no-username` (register one first), `not-found` (nobody holds that
 * name), `forged` (a record that does not verify), `not-friend`, `self`,
 * `declined`, `no-request` (accept or decline with no request from that
 * name), `too-large`, `mailbox-full`, `no-session`, `replay`, or the node
 * codes.
 */
export type ChatErrorCode = 'invalid' | 'no-username' | 'not-found' | 'forged' | 'not-friend' | 'self' | 'declined' | 'no-request'
  | 'too-large' | 'mailbox-full' | 'no-session' | 'replay' | ErrorCode;

/** The Error a chat call rejects with. */
export type ChatError = Error & { code: ChatErrorCode };

/** Every event of `ddt.on()`, by name, with its payload. */
export interface DDTEvents {
  /** A data channel opened and the peer proved its lease. */
  peer: PeerEvent;
  /** That channel closed (tab closed, peer silent for 7 s, …). */
  'peer-gone': PeerGoneEvent;
  /** The relay state changed. */
  state: StateEvent;
  /** An attempt to open a data channel failed or stalled; the node tries again by itself within seconds. */
  'dial-failed': DialFailedEvent;
  /** The record: this node registered a name, or claimed it again at a new address. */
  username: UserRecord;
  /** This node published an item and placed its replicas: the copies it counts, its own included. */
  'content.replicas': ReplicasEvent;
  /** A peer served bytes that did not hash to the chunk asked for (or broke the transfer rules): it was penalised and the download went elsewhere. */
  'content.penalty': PenaltyEvent;
  /** Someone asks to be this node's friend: answer with `accept` or `decline`. */
  'friend-request': FriendRequest;
  /** A friend was added, answered a request, came online or went away. */
  friend: Friend;
  /** A message from a friend: each once, in the order sent. */
  message: ChatMessage;
  /** A friend acknowledged one of this node's messages. */
  delivered: DeliveredEvent;
  /** A session with a friend was established or lost. */
  session: SessionEvent;
}

/** A running DDT node: `window.ddt`, and what `start()` resolves with. */
export interface DDT {
  /**
   * Promise of `{address, zone}` once admitted to a zone. It rejects with an
   * Error explaining a refusal (e.g. "zone local is full: it admits at most
   * 1024 nodes; try https://…"); after a later admission it is replaced by a
   * resolved promise.
   */
  readonly ready: Promise<Admission>;
  /** This node's DDT address: 40 lowercase hex digits (`""` before admission). */
  readonly address: Address;
  /** The zone's name. */
  readonly zone: string;
  /** The URL of the relay in use (it changes when the node follows a redirect or moves to another relay). */
  readonly relay: string;
  /** `"connecting"`, `"admitted"`, `"retrying"` or `"refused"`. */
  readonly state: State;
  /**
   * Peers with an open data channel; `rttMs` is the last keepalive round
   * trip; `native` is true for headless native nodes; `via` is `"relay"` or
   * `"overlay"`, how the channel was signaled.
   */
  peers(): Promise<Peer[]>;
  /**
   * The round-trip time in ms over the data channel; rejects with a
   * {@link DDTError}, code `not-connected`, if there is no open channel to
   * that address.
   */
  ping(address: Address): Promise<number>;
  /**
   * Sends `bytes` (default 16 MiB) of test data to a connected peer over the
   * link's bulk channel and waits for its receipt.
   */
  throughput(address: Address, bytes?: number): Promise<Throughput>;
  /**
   * An iterative DHT lookup. `found` is true when the node at `address` itself
   * answered; `hops` counts the sequential query rounds until it was first
   * reported; `closest` lists the closest live addresses found, closest first.
   */
  lookup(address: Address): Promise<Lookup>;
  /**
   * The peer (as in `peers()`) once a data channel to `address` is open;
   * signaled through the overlay when any peer is connected, else (or if that
   * fails) through the relay. The channel is kept open until `disconnect`.
   */
  connect(address: Address): Promise<Peer>;
  /** Whether a channel was open; closes it. */
  disconnect(address: Address): Promise<boolean>;
  /**
   * This node's verified username record once the name's home relay has
   * sequenced the claim; rejects with a {@link NameError} whose `code` says why
   * (`invalid`, `taken`, `already-registered`, `unavailable`, …). Registering
   * the name the node already holds returns its record.
   */
  register(name: string): Promise<UserRecord>;
  /**
   * The verified record of `name` (any case); rejects with a
   * {@link NameError}, code `not-found` (`no user named "bob"`) or `invalid`.
   * Cached 5 minutes unless `fresh: true`. There is no call from an address
   * to a name.
   */
  resolve(name: string, options?: { fresh?: boolean }): Promise<UserRecord>;
  /** This node's username (`""` until registered; kept across visits). */
  readonly username: string;
  /**
   * The routing table by bucket (index = bits shared with this node's
   * address) and the routed-message counters.
   */
  routing(): Promise<Routing>;
  /** Subscribes `fn` to `event`; returns an unsubscribe function. */
  on<E extends keyof DDTEvents>(event: E, fn: (payload: DDTEvents[E]) => void): () => void;
  /**
   * Shares `data` (a Uint8Array or ArrayBuffer, a Blob, a File or a string):
   * cuts it into chunks of 4 MiB, hashes them (WebCrypto), stores them here
   * (pinned: this node's own content), announces them and places replicas.
   * Resolves with the content id. A Blob's bytes go straight to IndexedDB, in
   * 4 MiB slices, so a large file never sits in the node's memory.
   */
  put(data: Uint8Array | ArrayBuffer | Blob | string, options?: PutOptions): Promise<ContentID>;
  /**
   * Fetches the item `id` from its providers (several in parallel, the
   * nearest first, each chunk verified) into this node's store, and resolves
   * with it as a File (a Blob with the item's name and type) backed by the
   * stored chunks. Rejects with a {@link ContentError}: `not-found`,
   * `corrupt`, `quota`, `aborted`, … Called before the node has any peer
   * (just after `ready`), it waits up to 15 s for one.
   */
  get(id: ContentID, options?: GetOptions): Promise<File>;
  /** What the node knows of item `id` (its manifest, fetched if need be). */
  stat(id: ContentID): Promise<ContentStat>;
  /** This node's storage: used, pledged and pinned bytes, chunks, persistence. */
  storage(): Promise<StorageUsage>;
  /** Keeps item `id` here for good (fetching it first if it is not here). */
  pin(id: ContentID, options?: PinOptions): Promise<void>;
  /** Lets item `id` go back to cache: evicted least recently used when room is needed. */
  unpin(id: ContentID): Promise<void>;
  /**
   * Publishes a site under `domain`: puts every file as this node's content
   * (pinned, replicated), publishes the site's manifest, and claims the
   * domain for it — version 1 for a new domain, the next version for one
   * this node's key holds. `files` is a list of `{path, data, type}` or a
   * folder picker's FileList (`<input type=file webkitdirectory>`: the
   * folder's own name is left out of the paths). Rejects with a
   * {@link SiteErrorCode}: `taken` when another key holds the domain,
   * `invalid` for a bad path, …
   */
  publishSite(domain: Domain, files: SiteFile[] | FileList, options?: PublishOptions): Promise<Published>;
  /**
   * The verified current record of `domain` (claim signature, checkpoint,
   * inclusion proof): cached, unless `fresh`. Rejects with `unknown-domain`
   * when nobody holds it.
   */
  resolveDomain(domain: Domain, options?: { fresh?: boolean }): Promise<DomainRecord>;
  /**
   * The URL of `path` on `domain`'s site origin under this page:
   * `http://example.ddt.localhost:8080/path` for a page on loopback, else
   * under the relay's sites domain. Each site has an origin of its own, apart
   * from the node's page. `null` (the reason on the console) for a string
   * that is not a domain, or a relay that serves no sites.
   */
  siteURL(domain: Domain, path?: string): string | null;
  /**
   * Answers `domain`'s service worker on `port`, a MessagePort this page made
   * and handed the worker through the site's connect frame (the DDT page
   * does this for the sites it shows): the worker's requests are for
   * `domain`'s files and no other's, whatever a message says. Returns a
   * function that stops it (closing the port, releasing open bodies), or
   * `null` (the reason on the console) for a bad domain or port.
   */
  serveSite(domain: Domain, port: MessagePort, options?: ServeSiteOptions): (() => void) | null;

  /**
   * Asks `name` to be this node's friend (its record verified first) and
   * waits up to 60 s for the answer: `"accepted"` or `"declined"`. The request
   * stays pending after that (sent again while the receiver is away); its
   * answer then comes as event `friend`. Rejects with a {@link ChatError}:
   * `no-username`, `not-found`, `self`, `forged`, …
   */
  befriend(name: string): Promise<'accepted' | 'declined'>;
  /** Accepts `name`'s request: the friendship begins and the chained key exchange runs (event `session` says when it is ready). */
  accept(name: string): Promise<void>;
  /** Declines `name`'s request. */
  decline(name: string): Promise<void>;
  /** Friends and this node's pending requests, by name. */
  friends(): Friend[];
  /** The friend requests waiting for this node's answer. */
  requests(): FriendRequest[];
  /**
   * Sends `text` (at most 16 KiB of UTF-8) to the friend `name`, sealed end to
   * end: `"direct"` once the friend acknowledged it, `"stored"` when it was
   * held for the offline friend (event `delivered` follows), `"queued"` when
   * it waits in the outbox to go when it can. It waits for the session while
   * the key exchange runs. Rejects with `not-friend`,
   * `invalid`, `too-large`, …
   */
  send(name: string, text: string): Promise<Sent>;
  /** The conversation with `name`, both directions, oldest first. */
  history(name: string): Promise<ChatMessage[]>;
  /** Sets `name`'s unread count to zero. */
  markRead(name: string): Promise<void>;
  /** What the chat service did: onions forwarded and dropped, chains sent and retried, messages held for others. */
  chatStats(): ChatStats;
}

/** A DDT domain: `"example.ddt"` (a DNS label, 1–63 of a–z, 0–9 and inner hyphens, then `.ddt`). */
export type Domain = string;

/** One file of a site to publish. */
export interface SiteFile {
  /** Its path in the site: relative, slash-separated (`"index.html"`, `"css/site.css"`); no `..`, no `.ddt/`. */
  path: string;
  /** Its bytes (a string is its UTF-8). */
  data: Blob | ArrayBuffer | ArrayBufferView | string;
  /** Its media type (default: a Blob's own, else by the path's extension). */
  type?: string;
}

/** How a `ddt.publishSite()` goes. */
export interface PublishProgress {
  /** `"files"` (putting the files), `"manifest"`, `"claim"` (the domain's record), `"done"`. */
  phase: 'files' | 'manifest' | 'claim' | 'done';
  /** Files put so far, of `totalFiles`. */
  files: number;
  totalFiles: number;
  /** Bytes put so far, of `totalBytes`. */
  bytes: number;
  totalBytes: number;
}

/** What `ddt.publishSite()` takes besides the domain and the files. */
export interface PublishOptions {
  onProgress?: (progress: PublishProgress) => void;
  /** Cancels the publication: the promise rejects with code `aborted`. */
  signal?: AbortSignal;
}

/** A site's publication, as `ddt.publishSite()` resolves with it. */
export interface Published {
  domain: Domain;
  /** The domain record's version: 1 for a new domain, one more for each update. */
  version: number;
  /** The site manifest's content id. */
  manifest: ContentID;
}

/** A domain's verified record, as `ddt.resolveDomain()` gives it. */
export interface DomainRecord {
  domain: Domain;
  /** The owner's signing key, hex: only it can update the domain. */
  owner: string;
  /** The current site manifest's content id. */
  site: ContentID;
  /** Grows with each update. */
  version: number;
  /** The zone whose ledger sequenced the claim, that relay's key (hex) and the entry's index. */
  zone: string;
  relay: string;
  index: number;
}

/**
 * How serving a site goes, as `ddt.serveSite()`'s `onProgress` hears it. A
 * page load (`navigate: true`) reports `"open"` as it starts, then — on a
 * first visit — `"resolving"` (the domain), `"manifest"` (the site's list of
 * files) and `"fetching"` (the file's chunks from peers, `chunks` of `of`),
 * and ends with `"served"` (the file that answered, the version) or
 * `"error"` (its `code`: `unknown-domain`, `not-found`, …). The site's other
 * requests report their `"fetching"` too, with `navigate: false`.
 */
export interface SiteProgress {
  phase: 'open' | 'resolving' | 'manifest' | 'fetching' | 'done' | 'served' | 'error';
  domain: Domain;
  /** The site's path asked for (`""` for the root), or for `"served"` the file that answered (`"docs/index.html"`). */
  path: string;
  navigate: boolean;
  /** Bytes of the file held so far, of `total`; chunks held, of `of` (`"fetching"`). */
  done?: number;
  total?: number;
  chunks?: number;
  of?: number;
  /** `"served"`: the HTTP status (200, 206) and the domain record's version. */
  status?: number;
  version?: number;
  /** `"error"`: why. */
  code?: SiteErrorCode | ErrorCode;
  message?: string;
}

/** What `ddt.serveSite()` takes besides the domain and the port. */
export interface ServeSiteOptions {
  onProgress?: (progress: SiteProgress) => void;
}

/**
 * Why a site call failed: `invalid` (not a domain, a path or a manifest the
 * node accepts), `taken` (another key holds the domain), `unknown-domain`
 * (nobody holds it), `forged` (a record or update that does not verify),
 * `stale` (an update whose version is not above the current one),
 * `not-found` (no file at that path), `bad-range` (a Range the file cannot
 * satisfy), or the content and node codes.
 */
export type SiteErrorCode = 'invalid' | 'taken' | 'unknown-domain' | 'forged' | 'stale' | 'not-found' | 'bad-range';

/** What the node takes when it starts (the wasm's `ddtStart(config)`). */
export interface DDTConfig {
  /** The relay's base URL, http or https. Required by `ddtStart`; `start()` defaults it to the origin ddt.js was loaded from. */
  relay: string;
  /** The connection budget: data channels kept open (default 32). */
  maxPeers?: number;
  /** The lowest level logged to the console (default `"warn"`). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /**
   * The IndexedDB database that keeps the node's identity (default `"ddt"`;
   * tab slot n > 0 uses `"<storage>-<n>"`); `"memory"` keeps nothing, so the
   * identity does not outlive the host.
   */
  storage?: string;
  /** Names the host software in the relay's logs (default `"ddt-browser"`). */
  agent?: string;
  /**
   * Bytes of storage this node lends others for replicas and cache (default
   * 64 MiB). Its own and pinned content does not count against it.
   */
  pledge?: number;
  /** What the node is willing to hold for others. */
  cache?: {
    /** Media-type prefixes it holds (e.g. `["image/", "text/"]`); empty or absent: every type. */
    types?: string[];
    /** Drop replicas and cache unused for this many days; 0 or absent: no limit. */
    maxAgeDays?: number;
  };
}

/**
 * A compile of ddt.wasm that the host started itself, before the loader could
 * run: a preloaded response is read only as fast as it is compiled, and a
 * module script runs after the page's first paint, so a page that starts the
 * compile in an inline script (as the DDT page does) saves that time.
 */
export interface EarlyWasm {
  /** `WebAssembly.compileStreaming` of the response. */
  module: Promise<WebAssembly.Module>;
  /**
   * Subscribes to the download's progress (read from a clone of the response
   * from the first moment, so that the compile never waits on the page): `fn`
   * gets the latest report at once, and every later one.
   */
  progress?: (fn: (p: Progress) => void) => void;
}

/** What `start()` takes: the node's configuration, and where to find its files. */
export interface StartConfig extends Partial<DDTConfig> {
  /** A compile of the node the host already started (then `wasmURL` is not fetched). */
  wasm?: EarlyWasm;
  /** The node's WebAssembly (default: `ddt.wasm` beside ddt.js). */
  wasmURL?: string | URL;
  /** Go's `wasm_exec.js`, loaded if `globalThis.Go` is not defined (default: beside ddt.js). */
  wasmExecURL?: string | URL;
}

/** A report of `start()`'s progress. */
export interface Progress {
  /** `"download"`: the wasm is arriving (and compiling as it streams); `"start"`: it is compiled and the node is starting. */
  phase: 'download' | 'start';
  /** Bytes of the wasm received so far, decoded. */
  received: number;
  /** Bytes it has in all (from `X-Uncompressed-Length`), 0 when unknown. */
  total: number;
}

/** What `start()` also takes. */
export interface StartOptions {
  /** Called as the wasm downloads and once it is compiled. */
  onProgress?: (progress: Progress) => void;
  /** Called if the node exits after `start()` resolved (before, `start()` rejects). */
  onExit?: (error: StartError) => void;
}

/**
 * Why `start()` failed: `unsupported` (no WebAssembly in this browser),
 * `wasm-exec` (Go's wasm_exec.js did not load or did not define `Go`),
 * `download` (the wasm could not be fetched or compiled: an HTTP error, the
 * network, a bad file), `start` (the node refused to start: a bad config, a
 * node already running), `exited` (the node exited).
 */
export type StartErrorCode = 'unsupported' | 'wasm-exec' | 'download' | 'start' | 'exited';

/** The DDT extension's node's own state (beside `ddt.state`, its relay state). */
export interface NodeStatus {
  /** starting: its document is starting it; running: it runs; failed: it could not start or stopped, and tries again by itself. */
  state: 'starting' | 'running' | 'failed';
  /** A sentence for people: what happens, why it failed and when it tries again. */
  detail: string;
  /** The relay the node runs on. */
  relay: string;
}

/**
 * `window.ddt` in the DDT extension's pages (its popup, its DDT page): the
 * API above, backed by the extension's node in its offscreen document, and
 * what the extension adds.
 */
export interface ExtensionDDT extends DDT {
  /** Makes url the relay of the extension's node (saved; the node starts again on it with the same identity); '' goes back to the relay the extension was built for. */
  setRelay(url: string): Promise<void>;
}

/** The Error `start()` rejects with (and `onExit` gets); its message is meant for people. */
export type StartError = Error & {
  code: StartErrorCode;
  /** The node's exit code, when it exited with one. */
  exitCode?: number;
};

/**
 * Loads the node (wasm_exec.js if needed, then ddt.wasm, compiled as it
 * downloads), runs it, and starts it with `config`: resolves with the API,
 * which is also `window.ddt`, once the node has its identity (admission comes
 * later: await `ready`). A page runs one node: a second call returns the
 * running node's refusal.
 */
export function start(config?: StartConfig, options?: StartOptions): Promise<DDT>;

declare global {
  interface Window {
    /** The page's node, once it runs (see {@link DDT}). */
    ddt: DDT;
  }
  interface WindowEventMap {
    /** Dispatched on `window` once `window.ddt` is defined. */
    'ddt:loaded': Event;
  }
  /** Defined by ddt.wasm once it runs; `start()` calls it. */
  var ddtStart: ((config: DDTConfig) => Promise<DDT>) | undefined;
  /** The DDT page's compile of its node, started by an inline script in its head. */
  var ddtEarly: EarlyWasm | undefined;
}
