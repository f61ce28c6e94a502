// A host page's script: a page that is not DDT's runs a node with the loader
// from its relay. `make types` checks it against static/ddt.d.ts (which a
// host gets from the relay too: https://relay.example/ddt.d.ts).
//
//   <script type="module" src="example.js"></script>

import { start, type ContentError, type NameError, type StartError } from 'https://relay.example/ddt.js';

const relay = 'https://relay.example';
const ddt = await start({ relay, logLevel: 'info', storage: 'example', pledge: 256 << 20, cache: { types: ['image/'], maxAgeDays: 30 } }, {
  onProgress: ({ phase, received, total }) => console.log(phase, received, 'of', total || '?', 'bytes'),
  onExit: (err: StartError) => console.error('the node exited', err.exitCode ?? '', err.message),
});
console.log('the same node as window.ddt:', ddt === window.ddt);

const { address, zone } = await ddt.ready;
console.log(`admitted to zone ${zone} as ${address}, relay ${ddt.relay}, state ${ddt.state}`);

const offPeer = ddt.on('peer', (p) => console.log('peer', p.address, p.native ? 'native' : 'browser', 'via', p.via));
ddt.on('peer-gone', ({ address, reason }) => console.log('gone', address, reason));
ddt.on('state', ({ state, detail, retryInMs }) => console.log(state, detail, retryInMs > 0 ? `retry in ${retryInMs} ms` : ''));
ddt.on('username', (rec) => console.log('this node is', rec.name, 'entry', rec.seq));

for (const p of await ddt.peers()) {
  console.log(p.address, p.via, `${p.rttMs} ms`, await ddt.ping(p.address), 'ms now');
}

if (!ddt.username) {
  try {
    const me = await ddt.register('alice');
    console.log('registered', me.name, 'in the ledger of zone', me.ledger.zone, 'entry', me.ledger.index);
  } catch (e) {
    const err = e as NameError;
    if (err.code === 'taken') console.log('someone else is alice');
    else console.log(err.code, err.message);
  }
}

const bob = await ddt.resolve('Bob', { fresh: true }); // verified: claim signature, checkpoint, inclusion proof
const peer = await ddt.connect(bob.address);
console.log('connected to', bob.name, 'via', peer.via);

const { found, hops, closest } = await ddt.lookup(bob.address);
const { buckets, overlay } = await ddt.routing();
console.log(found, hops, closest.length, buckets.length, overlay.forwarded);
offPeer();

// Share a file and fetch it back; the File is backed by the node's store.
const picked = document.querySelector<HTMLInputElement>('input[type=file]')?.files?.[0];
if (picked) {
  const id = await ddt.put(picked, { onProgress: (p) => console.log(p.phase, p.bytes, 'of', p.total) });
  const { replicas, pinned } = await ddt.stat(id);
  console.log('shared', id, 'pinned', pinned, 'replicas', replicas);
  ddt.on('content.replicas', (e) => e.id === id && console.log(e.replicas, 'replicas now'));
  const cancel = new AbortController();
  try {
    const file = await ddt.get(id, { signal: cancel.signal, onProgress: (p) => console.log(p.bytesPerSec, 'B/s from', p.providers) });
    const a = Object.assign(document.createElement('a'), { href: URL.createObjectURL(file), download: file.name });
    document.body.append(a);
  } catch (e) {
    const err = e as ContentError;
    if (err.code === 'not-found' || err.code === 'corrupt' || err.code === 'quota') console.log(err.message);
  }
  const { usedBytes, pledgedBytes, persisted } = await ddt.storage();
  console.log(usedBytes, 'of', pledgedBytes, persisted ? 'persistent' : '');
  await ddt.unpin(id);
}
