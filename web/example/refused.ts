// What the types must refuse: each line below is a mistake a host could
// make, and tsc must report it (`@ts-expect-error` fails the check if not).

import { start, type DDT } from 'https://relay.example/ddt.js';

export async function mistakes(ddt: DDT) {
  // @ts-expect-error: there is no such event
  ddt.on('peers', () => {});
  // @ts-expect-error: a peer event is no username record
  ddt.on('peer', (p: { name: string }) => p.name);
  // @ts-expect-error: peer-gone carries a reason, not a via
  ddt.on('peer-gone', (g) => g.via);
  // @ts-expect-error: the state is one of four words
  if (ddt.state === 'online') return;
  // @ts-expect-error: the API is read-only
  ddt.address = 'f'.repeat(40);
  // @ts-expect-error: ping takes an address
  await ddt.ping();
  // @ts-expect-error: no reverse lookup: resolve takes a name, not options alone
  await ddt.resolve({ address: ddt.address });
  // @ts-expect-error: the log level is one of four words
  await start({ logLevel: 'verbose' });
  // @ts-expect-error: maxPeers is a number
  await start({ maxPeers: '8' });
  // @ts-expect-error: put takes bytes, a Blob or a string, not a number
  await ddt.put(42);
  // @ts-expect-error: a get's progress has no percent
  await ddt.get('a'.repeat(64), { onProgress: (p) => p.percent });
  // @ts-expect-error: the pledge is a number of bytes
  await start({ pledge: '1GiB' });
  try {
    await ddt.register('alice');
  } catch (e) {
    // @ts-expect-error: a name error's code is one of the documented ones
    if ((e as import('https://relay.example/ddt.js').NameError).code === 'exists') return;
  }
}
