// ethers, the most used Ethereum client library, against the gateway and
// against the node directly: the answers must be the same.  Prints one JSON
// object of findings for t/012-clients.t.
//   node clients.js GATEWAY_URL NODE_URL
'use strict';
const { JsonRpcProvider, Network } = require('ethers');

const [gatewayUrl, nodeUrl] = process.argv.slice(2);
const network = Network.from(1337);
const out = {};

function provider(url, options) {
    const p = new JsonRpcProvider(url, network, {
        staticNetwork: network,
        cacheTimeout: -1,       // every call goes out, none is answered twice
        ...options,
    });
    p.pollingInterval = 100;
    return p;
}

// every read an application makes at start, batched by ethers itself
async function reads(p, accounts) {
    const r = await Promise.all([
        p.send('eth_chainId', []),
        p.getBlockNumber(),
        ...accounts.map(a => p.getBalance(a)),
        p.getTransactionCount(accounts[0]),
        p.getBlock('latest').then(b => b.hash),
        p.send('net_version', []),
    ]);
    return JSON.stringify(r, (k, v) => typeof v === 'bigint' ? v.toString() : v);
}

async function error(p, method) {
    try {
        await p.send(method, []);
        return 'no error';
    } catch (e) {
        // the JSON-RPC error object, where ethers keeps it
        const rpc = e.error || (e.info && e.info.error);
        return rpc ? rpc.code : String(e.code);
    }
}

async function main() {
    const gw = provider(gatewayUrl);
    const node = provider(nodeUrl);
    const accounts = await node.send('eth_accounts', []);

    // a batch of reads
    const [a, b] = [await reads(gw, accounts), await reads(node, accounts)];
    out.reads = { same: a === b, calls: accounts.length + 5 };

    // a transaction sent and mined through the gateway
    const before = await node.getBalance(accounts[1]);
    const signer = await gw.getSigner(accounts[0]);
    const tx = await signer.sendTransaction({ to: accounts[1], value: 1000n });
    const receipt = await tx.wait();
    const after = await node.getBalance(accounts[1]);
    out.transaction = { status: receipt.status,
                        received: (after - before).toString(),
                        seen: (await gw.getTransaction(tx.hash)).hash === tx.hash };

    // many clients with one call each: the gateway batches them upstream
    const singles = Array.from({ length: 32 },
                               () => provider(gatewayUrl, { batchMaxCount: 1 }));
    let same = 0, calls = 0;
    for (let round = 0; round < 5; round++) {
        const got = await Promise.all(singles.map((p, i) =>
            p.getBalance(accounts[i % accounts.length])));
        const want = await Promise.all(singles.map((p, i) =>
            node.getBalance(accounts[i % accounts.length])));
        got.forEach((v, i) => { calls++; same += v === want[i]; });
    }
    out.singles = { calls, same };

    // errors reach the client as the node or the gateway made them
    out.errors = {
        unknown: [await error(gw, 'no_such_method'),
                  await error(node, 'no_such_method')],
        denied: await error(gw, 'personal_listAccounts'),
    };

    for (const p of [gw, node, ...singles]) {
        p.destroy();
    }
}

main().then(() => console.log(JSON.stringify(out)),
            e => { console.error(e); process.exit(1); });
