// A real Ethereum node (ganache, in memory) for the tests: deterministic
// accounts, a block per transaction.  Prints "ready" once it listens.
//   node ganache.js PORT
'use strict';
const ganache = require('ganache');

const server = ganache.server({
    logging: { quiet: true },
    wallet: { deterministic: true, totalAccounts: 10 },
    chain: { chainId: 1337 },
});

server.listen(Number(process.argv[2]), '127.0.0.1', err => {
    if (err) {
        console.error(err);
        process.exit(1);
    }
    console.log('ready');
});

process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
