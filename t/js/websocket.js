// Real clients over WebSocket through the gateway: ethers 6's
// WebSocketProvider and viem's webSocket transport make the calls of a
// wallet against ganache, and each answer is set beside what the same
// client gets over HTTP from the gateway and from the node directly; the
// ws package sends what these libraries may send on the wire (fragments,
// pings, a close with an application's code).  Prints one JSON object of
// findings for t/017-websocket-clients.t.
//   node websocket.js WS_URL GATEWAY_HTTP_URL NODE_URL
'use strict';
const { JsonRpcProvider, WebSocketProvider, Network, zeroPadValue } = require('ethers');
const viem = require('viem');
const WebSocket = require('ws');

const [wsUrl, httpUrl, nodeUrl] = process.argv.slice(2);
const network = Network.from(1337);
const out = { ethers: [], viem: [], raw: {}, uncaught: [], malformed: [] };

// a frame a library cannot take throws inside its message handler: noted,
// and the call it answered times out instead of hanging the script
process.on('uncaughtException', e => out.uncaught.push(String(e.stack || e).slice(0, 2000)));
function timed(promise, ms, what) {
    let timer;
    return Promise.race([promise, new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: nothing in ${ms} ms`)), ms);
    })]).finally(() => clearTimeout(timer));
}

// values as JSON: bigints as strings, library objects through their toJSON
function plain(v) {
    const s = JSON.stringify(v, (k, x) => typeof x === 'bigint' ? x.toString() : x);
    return s === undefined ? null : JSON.parse(s);
}

// the JSON-RPC error inside a library's error, or the library's own code
function rpcError(e) {
    for (let x = e; x; x = x.cause) {
        const rpc = x.error || (x.info && x.info.error);
        if (rpc && typeof rpc.code === 'number') {
            return { code: rpc.code, message: rpc.message };
        }
        if (typeof x.code === 'number' && typeof x.details === 'string') {
            return { code: x.code, message: x.details };   // viem
        }
    }
    return { error: String(e.code || e.message) };
}

async function attempt(f) {
    try {
        return plain(await timed(f(), 5000, 'call'));
    } catch (e) {
        return { rpc_error: rpcError(e) };
    }
}

// one call through each of the three clients, in turn, so that the chain is
// the same for all three; gateway_only: the gateway answers it itself
async function same(list, clients, name, f, gateway_only) {
    const [ws, http, node] = [await attempt(() => f(clients[0])),
                              await attempt(() => f(clients[1])),
                              await attempt(() => f(clients[2]))];
    list.push({ name, ws, http, node, gateway_only: !!gateway_only });
    return ws;
}

// a contract without a compiler: it emits LOG1(topic 0x2a, calldata) and
// returns its calldata
//   CALLDATASIZE PUSH1 0 PUSH1 0 CALLDATACOPY  PUSH1 2a CALLDATASIZE PUSH1 0
//   LOG1  CALLDATASIZE PUSH1 0 RETURN
const runtime = '36600060003760' + '2a' + '366000a1' + '366000f3';
const initcode = '0x6010600c6000396010' + '6000f3' + runtime;   // 16 bytes at 12
const topic = zeroPadValue('0x2a', 32);
const echo = i => '0x' + i.toString(16).padStart(8, '0');   // calldata the contract returns

function tracked(socket) {
    // ids in the order calls left and answers came back over one socket
    const t = { sent: [], received: [] };
    const send = socket.send.bind(socket);
    socket.send = (m, ...rest) => {
        try {
            const c = JSON.parse(m);
            t.sent.push(c.id);
            if (c.method === 'test_sleep') t.slow = c.id;
        } catch (e) { /* not ours */ }
        return send(m, ...rest);
    };
    socket.on('message', m => {
        try {
            t.received.push(JSON.parse(m.toString()).id);
        } catch (e) {
            t.received.push('?');
            out.malformed.push(m.toString().slice(0, 300));
        }
    });
    return t;
}

// the node's answer to a JSON body, as parsed JSON
async function post(url, body) {
    const r = await fetch(url, { method: 'POST', body,
                                 headers: { 'Content-Type': 'application/json' } });
    return { status: r.status, text: await r.text() };
}

async function ethers(accounts) {
    const opts = { staticNetwork: network, cacheTimeout: -1 };
    const ws = new WebSocketProvider(wsUrl, network, opts);
    const http = new JsonRpcProvider(httpUrl, network, opts);   // batches
    const node = new JsonRpcProvider(nodeUrl, network, opts);
    const errors = out.ethers_errors = [];
    ws.on('error', e => errors.push(String(e.shortMessage || e.message)));
    ws.websocket.on('error', e => errors.push(String(e.message)));
    await timed(ws._waitUntilReady(), 10000, 'connect');
    const t = tracked(ws.websocket);
    const c = [ws, http, node];
    const L = out.ethers;
    const [a0, a1, a2] = accounts;

    await same(L, c, 'eth_chainId', p => p.send('eth_chainId', []));
    await same(L, c, 'net_version', p => p.send('net_version', []));
    await same(L, c, 'getBlockNumber', p => p.getBlockNumber());
    for (const a of [a0, a1, a2]) {
        await same(L, c, `getBalance ${a}`, p => p.getBalance(a));
    }
    await same(L, c, 'getBlock latest', p => p.getBlock('latest'));
    await same(L, c, 'getBlock 0 with transactions', p => p.getBlock(0, true));
    await same(L, c, 'getTransactionCount', p => p.getTransactionCount(a0));
    await same(L, c, 'getTransactionCount pending', p => p.getTransactionCount(a0, 'pending'));
    await same(L, c, 'eth_gasPrice', p => p.send('eth_gasPrice', []));

    // a transfer from an unlocked account, sent over the WebSocket
    const signer = await ws.getSigner(a0);
    const tx = await signer.sendTransaction({ to: a1, value: 1000n });
    const receipt = await tx.wait(1, 10000);
    out.ethers_transfer = { status: receipt.status, to: receipt.to, from: receipt.from };
    await same(L, c, 'getTransactionReceipt', p => p.getTransactionReceipt(tx.hash));
    await same(L, c, 'getTransaction', p => p.getTransaction(tx.hash));
    await same(L, c, 'getBalance after transfer', p => p.getBalance(a1));
    await same(L, c, 'getTransactionCount after transfer', p => p.getTransactionCount(a0));

    // a contract deployed, called and made to log, over the WebSocket
    const deploy = await (await signer.sendTransaction({ data: initcode })).wait(1, 10000);
    const contract = deploy.contractAddress;
    out.contract = contract;
    await same(L, c, 'getCode', p => p.getCode(contract));
    await same(L, c, 'estimateGas transfer', p => p.estimateGas({ from: a0, to: a1, value: 1n }));
    await same(L, c, 'estimateGas contract', p => p.estimateGas({ from: a0, to: contract, data: '0x01020304' }));
    await same(L, c, 'call', p => p.call({ to: contract, data: '0xdeadbeef' }));
    const logged = await (await signer.sendTransaction({ to: contract, data: '0xc0ffee' })).wait(1, 10000);
    out.ethers_log = { status: logged.status, logs: logged.logs.length,
                       data: logged.logs.length ? logged.logs[0].data : null };
    await same(L, c, 'getLogs', p => p.getLogs({ address: contract, fromBlock: 0, toBlock: 'latest' }));
    await same(L, c, 'getLogs by topic', p => p.getLogs({ topics: [topic], fromBlock: 0 }));
    await same(L, c, 'getStorage', p => p.getStorage(contract, 0));

    // errors: the node's own, and the gateway's for a denied method
    await same(L, c, 'unknown method', p => p.send('no_such_method', []));
    await same(L, c, 'denied method', p => p.send('personal_listAccounts', []), true);

    // reads as an application makes them at start: ethers batches them
    // over HTTP, sends them one by one over the WebSocket
    const latest = await node.getBlockNumber();
    await same(L, c, 'batch of reads', p => Promise.all([
        p.send('eth_chainId', []), p.getBlockNumber(),
        ...accounts.map(a => p.getBalance(a)),
        p.getTransactionCount(a0), p.getBlock(latest).then(b => b.hash),
        p.getCode(contract), p.call({ to: contract, data: '0x0badf00d' }),
    ]));

    // 200 calls at once over one WebSocket, each answer told apart: the
    // contract echoes a number of each call, balances at different blocks
    const jobs = Array.from({ length: 200 }, (_, i) => i % 2
        ? p => p.call({ to: contract, data: echo(i) })
        : p => p.getBalance(accounts[i % accounts.length], i % (latest + 1)));
    t.sent.length = t.received.length = 0;
    const got = await Promise.all(jobs.map(f => f(ws)));
    const want = await Promise.all(jobs.map(f => f(node)));
    out.ethers_concurrent = { calls: jobs.length, same: got.filter((v, i) => v === want[i]).length,
                              echoed: got.filter((v, i) => i % 2 && v === echo(i)).length,
                              in_order: JSON.stringify(t.sent) === JSON.stringify(t.received) };

    // a slow call first (routed to an upstream that sleeps), quick ones after
    // it: answers come back out of order and each still finds its call
    t.sent.length = t.received.length = 0;
    const [slow, ...quick] = await Promise.all([
        ws.send('test_sleep', [400]),
        ...accounts.map((a, i) => ws.call({ to: contract, data: echo(1000 + i) })),
    ]);
    out.ethers_out_of_order = {
        slow, quick: quick.length, same: quick.filter((v, i) => v === echo(1000 + i)).length,
        slow_sent: t.sent.indexOf(t.slow), slow_received: t.received.indexOf(t.slow),
        answers: t.received.length,
    };
    for (const p of c) {
        p.destroy();
    }
}

async function viemClients(accounts) {
    const chain = viem.defineChain({
        id: 1337, name: 'ganache',
        nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
        rpcUrls: { default: { http: [nodeUrl], webSocket: [wsUrl] } },
    });
    const opts = { chain, cacheTime: 0, pollingInterval: 50 };
    // keepAlive: viem's own ping, a net_version call with id null
    const wsTransport = viem.webSocket(wsUrl, { keepAlive: { interval: 500 },
                                                 reconnect: false, retryCount: 0 });
    const ws = viem.createPublicClient({ ...opts, transport: wsTransport });
    const http = viem.createPublicClient({
        ...opts, transport: viem.http(httpUrl, { batch: true, retryCount: 0 }) });
    const node = viem.createPublicClient({
        ...opts, transport: viem.http(nodeUrl, { retryCount: 0 }) });
    const rpc = await ws.transport.getRpcClient();
    const t = tracked(rpc.socket);
    const c = [ws, http, node];
    const L = out.viem;
    const [a0, a1] = accounts;
    const contract = out.contract;

    await same(L, c, 'getChainId', p => p.getChainId());
    await same(L, c, 'getBlockNumber', p => p.getBlockNumber());
    await same(L, c, 'getBalance', p => p.getBalance({ address: a1 }));
    await same(L, c, 'getBlock latest with transactions',
               p => p.getBlock({ blockTag: 'latest', includeTransactions: true }));
    await same(L, c, 'getTransactionCount', p => p.getTransactionCount({ address: a0 }));

    // a transfer from the node's unlocked account (eth_sendTransaction)
    const wallet = viem.createWalletClient({ ...opts, account: a0, transport: wsTransport });
    const hash = await wallet.sendTransaction({ to: a1, value: 2000n });
    const receipt = await ws.waitForTransactionReceipt({ hash, timeout: 10000 });
    out.viem_transfer = { status: receipt.status };
    await same(L, c, 'getTransactionReceipt', p => p.getTransactionReceipt({ hash }));
    await same(L, c, 'getTransaction', p => p.getTransaction({ hash }));
    await same(L, c, 'getBalance after transfer', p => p.getBalance({ address: a1 }));
    await same(L, c, 'estimateGas', p => p.estimateGas({ account: a0, to: a1, value: 1n }));
    await same(L, c, 'call', p => p.call({ to: contract, data: '0x1234' }));
    await same(L, c, 'getLogs', p => p.getLogs({ address: contract, fromBlock: 0n }));
    await same(L, c, 'getBytecode', p => p.getCode({ address: contract }));
    await same(L, c, 'unknown method', p => p.request({ method: 'no_such_method', params: [] }));
    await same(L, c, 'denied method', p => p.request({ method: 'personal_listAccounts', params: [] }), true);

    // viem batches what one tick asks over HTTP (batch: true); over the
    // WebSocket each call is a message of its own
    await same(L, c, 'batch of reads', p => Promise.all([
        p.getChainId(), p.getBlockNumber(),
        ...accounts.map(a => p.getBalance({ address: a })),
        p.getTransactionCount({ address: a0 }),
        p.getBlock({ blockNumber: 1n }).then(b => b.hash),
        p.call({ to: contract, data: '0xabcdef' }),
    ]));

    const latest = Number(await node.getBlockNumber());
    const jobs = Array.from({ length: 200 }, (_, i) => i % 2
        ? p => p.call({ to: contract, data: echo(i) }).then(r => r.data)
        : p => p.getBalance({ address: accounts[(i * 3) % accounts.length],
                              blockNumber: BigInt(i % (latest + 1)) }));
    const got = await Promise.all(jobs.map(f => f(ws)));
    const want = await Promise.all(jobs.map(f => f(node)));
    out.viem_concurrent = { calls: jobs.length, same: got.filter((v, i) => v === want[i]).length,
                            echoed: got.filter((v, i) => i % 2 && v === echo(i)).length };

    t.sent.length = t.received.length = 0;
    const [slow, ...quick] = await Promise.all([
        ws.request({ method: 'test_sleep', params: [400] }),
        ...accounts.map((a, i) => ws.call({ to: contract, data: echo(2000 + i) }).then(r => r.data)),
    ]);
    out.viem_out_of_order = {
        slow, quick: quick.length, same: quick.filter((v, i) => v === echo(2000 + i)).length,
        slow_sent: t.sent.filter(id => id !== null).indexOf(t.slow),
        slow_received: t.received.filter(id => id !== null).indexOf(t.slow),
        answers: t.received.filter(id => id !== null).length,
    };
    // viem's keepAlive pings (id null) were answered too
    out.viem_keepalive_answers = t.received.filter(id => id === null).length;
    rpc.close();
}

// a raw WebSocket; answer(id) waits for the frame that answers the message
// with that id (the first id of a batch), and keeps any other frame in
// extra, so that one stray frame does not shift every later check
function open(url, extra) {
    return new Promise((resolve, reject) => {
        const s = new WebSocket(url);
        const waiting = new Map();
        s.on('message', (m, binary) => {
            const text = m.toString();
            let id;
            try {
                const v = JSON.parse(text);
                id = Array.isArray(v) ? (v[0] || {}).id : v.id;
            } catch (e) { /* kept in extra */ }
            const w = waiting.get(JSON.stringify(id));
            if (w && !binary) {
                waiting.delete(JSON.stringify(id));
                w(text);
            } else {
                extra.push(binary ? `binary: ${text}` : text);
            }
        });
        s.answer = (id, ms = 10000) => new Promise((res, rej) => {
            const timer = setTimeout(() => rej(new Error(`no answer for id ${id}`)), ms);
            waiting.set(JSON.stringify(id), t => { clearTimeout(timer); res(t); });
        });
        s.pongs = [];
        s.on('pong', p => s.pongs.push(p.toString('hex')));
        s.closed = new Promise(res => s.on('close', (code, reason) =>
            res({ code, reason: reason.toString() })));
        s.once('open', () => resolve(s));
        s.once('error', reject);
    });
}
const sleep = ms => new Promise(r => setTimeout(r, ms));
function send(s, data, opts) {
    return new Promise((res, rej) => s.send(data, opts || {}, e => e ? rej(e) : res()));
}

async function raw(accounts) {
    const R = out.raw;
    R.extra = [];
    const s = await open(wsUrl, R.extra);
    // ws offers permessage-deflate; the gateway takes no extension and no
    // subprotocol was asked for
    R.handshake = { extensions: s.extensions, protocol: s.protocol };

    // the same bytes as a message and as an HTTP body: the same bytes back
    const reads = JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] },
        { jsonrpc: '2.0', id: 'two', method: 'eth_getBalance', params: [accounts[0], 'latest'] },
        { jsonrpc: '2.0', id: 3, method: 'eth_getBlockByNumber', params: ['0x1', false] },
        { jsonrpc: '2.0', id: 4, method: 'eth_getTransactionCount', params: [accounts[0], 'latest'] },
    ]);
    const mixed = '[{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]},'
        + '{"jsonrpc":"2.0","method":"eth_chainId","params":[]},'
        + '{"jsonrpc":"2.0","id":2,"method":"personal_listAccounts","params":[]},'
        + '{"foo":1},'
        + '{"jsonrpc":"2.0","id":3,"method":"no_such_method"}]';
    const single = '{"jsonrpc":"2.0","id":"s€","method":"eth_getBalance","params":["' + accounts[2] + '","latest"]}';
    for (const [name, body, id] of [['batch of reads', reads, 1], ['mixed batch', mixed, 1],
                                    ['single', single, 's€']]) {
        const answer = s.answer(id);
        await send(s, body);
        const ws = await answer;
        const http = (await post(httpUrl, body)).text;
        const node = (await post(nodeUrl, body)).text;
        R[name] = { ws, http, node };
    }

    // a notification gets nothing (a frame for it would land in extra)
    const after = s.answer('after');
    await send(s, '{"jsonrpc":"2.0","method":"eth_blockNumber","params":[]}');
    await send(s, '{"jsonrpc":"2.0","id":"after","method":"eth_chainId","params":[]}');
    R.after_notification = await after;

    // 1 MiB exactly, in 1,000+ fragments of every length encoding, one
    // boundary inside a UTF-8 character, a ping between two fragments
    const head = '{"jsonrpc":"2.0","id":"frag-€","method":"eth_call","params":[{"to":"'
        + accounts[3] + '","data":"0x';
    let tail = '"},"latest"]}';
    let zeros = 1048576 - Buffer.byteLength(head) - Buffer.byteLength(tail);
    if (zeros % 2) { tail = '"}, "latest"]}'; zeros--; }
    const big = Buffer.concat([Buffer.from(head), Buffer.alloc(zeros, '0'), Buffer.from(tail)]);
    const euro = big.indexOf(Buffer.from('€'));
    const sizes = [euro + 1, 1, 2, 125, 126, 127, 128, 65535, 65536, 65537, 200000];
    const parts = [];
    let at = 0;
    for (let i = 0; at < big.length; i++) {
        const n = Math.min(i < sizes.length ? sizes[i] : (i * 37) % 1024 + 1, big.length - at);
        parts.push(big.subarray(at, at + n));
        at += n;
    }
    const started = Date.now();
    const answer = s.answer('frag-€', 20000);
    for (let i = 0; i < parts.length; i++) {
        if (i === 5) {
            s.ping(Buffer.from('between fragments'));
        }
        await send(s, parts[i], { binary: false, fin: i === parts.length - 1, compress: false });
    }
    R.fragmented = {
        ws: await answer, ms: Date.now() - started, bytes: big.length, fragments: parts.length, node: (await post(nodeUrl, big)).text,
        pongs: s.pongs.slice(),
    };

    // pings: empty, short, 125 bytes; an unsolicited pong is ignored
    s.pongs.length = 0;
    const p125 = Buffer.alloc(125, 'p');
    for (const p of [Buffer.alloc(0), Buffer.from('hello'), p125]) {
        s.ping(p);
    }
    s.pong(Buffer.from('unasked'));
    const seven = s.answer(7);
    await send(s, '{"jsonrpc":"2.0","id":7,"method":"eth_chainId","params":[]}');
    R.after_pings = await seven;
    for (let i = 0; i < 100 && s.pongs.length < 3; i++) {
        await sleep(10);
    }
    R.pongs = { got: s.pongs.slice(), want: ['', Buffer.from('hello').toString('hex'), p125.toString('hex')] };

    // the close handshake with an application's code: the gateway echoes it
    s.close(4000, 'done');
    R.close = await Promise.race([s.closed, sleep(5000).then(() => ({ code: 'none' }))]);

    // a connection of known counts for the access log: 2 messages, 4 calls
    const l = await open(wsUrl, R.extra);
    let a = l.answer(1);
    await send(l, '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}');
    await a;
    a = l.answer(2);
    await send(l, '[{"jsonrpc":"2.0","id":2,"method":"eth_chainId","params":[]},'
                + '{"jsonrpc":"2.0","id":3,"method":"net_version","params":[]},'
                + '{"jsonrpc":"2.0","id":4,"method":"eth_blockNumber","params":[]}]');
    await a;
    l.close(4001);
    R.logged_close = (await l.closed).code;

    // a close without a code (what ethers' destroy() and viem's close()
    // send): an empty close back (1005 to ws), and the gateway goes on
    const e = await open(wsUrl, R.extra);
    e.close();
    R.empty_close = await Promise.race([e.closed, sleep(3000).then(() => ({ code: 'none in 3 s' }))]);
    const n = await open(wsUrl, R.extra);
    a = n.answer('next', 3000);
    await send(n, '{"jsonrpc":"2.0","id":"next","method":"eth_chainId","params":[]}');
    R.after_empty_close = await a.catch(err => String(err.message));
    n.close(1000);
}

async function main() {
    const node = new JsonRpcProvider(nodeUrl, network, { staticNetwork: network });
    const accounts = await node.send('eth_accounts', []);
    node.destroy();
    const started = Date.now();
    for (const [name, f] of [['ethers', ethers], ['viem', viemClients], ['raw', raw]]) {
        try {
            await timed(f(accounts), 30000, name);
        } catch (e) {
            out[`${name}_failed`] = String(e.stack || e);
        }
    }
    out.ms = Date.now() - started;
}

main().then(() => { console.log(JSON.stringify(out)); process.exit(0); },
            e => { console.error(e); process.exit(1); });
