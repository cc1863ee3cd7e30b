// Real subscribers through the gateway, for t/021-subscribe-clients.t:
// ethers 6's WebSocketProvider (on("block") and a log filter), viem's
// webSocket transport (watchBlockNumber, watchBlocks) and 50 clients of the
// ws package subscribing to newHeads, all against ganache over the
// gateway's ws:// URL.  Blocks are mined and transactions sent over HTTP to
// ganache directly.  Then ganache is killed (SIGKILL) and started again on
// the same port with the same chain (a database directory): every client
// keeps its connection and gets the next blocks and logs with its original
// subscription id.  Prints one JSON object of findings.
//   node subscribe.js WS_URL GANACHE_PORT DB_DIR      the driver
//   node subscribe.js --ganache PORT DB_DIR           ganache (its child)
'use strict';

if (process.argv[2] === '--ganache') {
    // prints "ready" once it listens, as t/js/ganache.js does
    const ganache = require('ganache');
    const [port, dbPath] = process.argv.slice(3);
    const server = ganache.server({
        logging: { quiet: true },
        wallet: { deterministic: true, totalAccounts: 2 },
        chain: { chainId: 1337 },
        database: { dbPath },
    });
    server.listen(Number(port), '127.0.0.1', err => {
        if (err) {
            console.error(String(err));
            process.exit(1);
        }
        console.log('ready');
    });
    process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
    return;
}

const { spawn } = require('child_process');
const { WebSocketProvider, Network, zeroPadValue } = require('ethers');
const viem = require('viem');
const WebSocket = require('ws');

const [wsUrl, nodePort, dbPath] = process.argv.slice(2);
const nodeUrl = `http://127.0.0.1:${nodePort}/`;
const network = Network.from(1337);
const out = { errors: [], uncaught: [] };
process.on('uncaughtException', e => out.uncaught.push(String(e.stack || e).slice(0, 2000)));

const sleep = ms => new Promise(r => setTimeout(r, ms));
const isId = id => typeof id === 'string' && /^0x[0-9a-f]{32}$/.test(id);

// waits until cond() is true, at most ms; returns whether it became true
async function until(cond, ms) {
    const end = Date.now() + ms;
    while (Date.now() < end) {
        if (cond()) return true;
        await sleep(20);
    }
    return !!cond();
}

// --- ganache, a child process of this script, killed by its PID

let node = null;

function startNode() {
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [__filename, '--ganache', nodePort, dbPath],
                            { stdio: ['ignore', 'pipe', 'inherit'] });
        child.stdout.once('data', d => (String(d).startsWith('ready')
            ? resolve(child) : reject(new Error(`ganache: ${d}`))));
        child.once('exit', code => reject(new Error(`ganache exited: ${code}`)));
    });
}

function killNode() {
    return new Promise(resolve => {
        if (!node || node.exitCode !== null) return resolve();
        node.once('exit', resolve);
        node.kill('SIGKILL');
    });
}

process.on('exit', () => { if (node) node.kill('SIGKILL'); });

async function rpc(method, params = []) {
    const r = await fetch(nodeUrl, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    const j = await r.json();
    if (j.error) throw new Error(`${method}: ${JSON.stringify(j.error)}`);
    return j.result;
}

async function mine() {
    await rpc('evm_mine');
    return parseInt(await rpc('eth_blockNumber'), 16);
}

// a transaction to the contract: the number of the block it was mined in
async function logTx(from, to, data) {
    const hash = await rpc('eth_sendTransaction', [{ from, to, data, gas: '0x30000' }]);
    const receipt = await rpc('eth_getTransactionReceipt', [hash]);
    return parseInt(receipt.blockNumber, 16);
}

// a contract that emits LOG1(topic 0x2a, calldata) (as in websocket.js)
const runtime = '36600060003760' + '2a' + '366000a1' + '366000f3';
const initcode = '0x6010600c6000396010' + '6000f3' + runtime;
const topic = zeroPadValue('0x2a', 32);

// --- the ws package: one client, one newHeads subscription

function rawClient(i) {
    const c = { i, id: null, events: [], early: 0, closed: null, errors: [] };
    c.ready = new Promise(resolve => {
        c.ws = new WebSocket(wsUrl);
        c.ws.on('open', () => c.ws.send(JSON.stringify(
            { jsonrpc: '2.0', id: i, method: 'eth_subscribe', params: ['newHeads'] })));
        c.ws.on('message', m => {
            const x = JSON.parse(m.toString());
            if (x.id === i) {
                c.id = x.result;
                c.answer = x;
                resolve(c);
            } else if (x.method === 'eth_subscription') {
                if (!c.id) c.early++;
                c.events.push({ sub: x.params.subscription,
                                number: parseInt(x.params.result.number, 16) });
            } else {
                c.errors.push(m.toString().slice(0, 300));
            }
        });
        c.ws.on('close', code => { c.closed = code; resolve(c); });
        c.ws.on('error', e => c.errors.push(String(e.message)));
    });
    return c;
}

// the frames one library's socket sent and got: subscribe and unsubscribe
// answers by request id
function tap(socket) {
    const t = { methods: {}, answers: {}, events: {} };
    const send = socket.send.bind(socket);
    socket.send = (m, ...rest) => {
        try {
            const x = JSON.parse(m);
            for (const c of Array.isArray(x) ? x : [x]) t.methods[c.id] = c.method;
        } catch (e) { /* not JSON */ }
        return send(m, ...rest);
    };
    const onMessage = m => {
        const x = JSON.parse(String(m.data !== undefined ? m.data : m));
        if (x.method && x.params) {
            const s = x.params.subscription;
            (t.events[s] = t.events[s] || []).push(x.params.result.number || x.params.result.blockNumber);
        } else if (x.id !== undefined && /subscribe$/.test(t.methods[x.id] || '')) {
            t.answers[x.id] = { method: t.methods[x.id], result: x.result, error: x.error };
        }
    };
    if (socket.on) socket.on('message', onMessage);
    else socket.addEventListener('message', onMessage);
    return t;
}

const subscribed = t => Object.values(t.answers).filter(a => a.method === 'eth_subscribe');

async function main() {
    node = await startNode();
    const [from] = await rpc('eth_accounts');
    const deployHash = await rpc('eth_sendTransaction', [{ from, data: initcode, gas: '0x30000' }]);
    const contract = (await rpc('eth_getTransactionReceipt', [deployHash])).contractAddress;

    // ethers: blocks and a log filter
    const ethers = new WebSocketProvider(wsUrl, network, { staticNetwork: network });
    ethers.on('error', e => out.errors.push(`ethers: ${e.shortMessage || e.message}`));
    await ethers._waitUntilReady();
    const et = tap(ethers.websocket);
    const eth = { blocks: [], logs: [] };
    await ethers.on('block', n => eth.blocks.push(n));
    await ethers.on({ address: contract, topics: [topic] },
                    log => eth.logs.push({ data: log.data, block: log.blockNumber }));

    // viem: block numbers and blocks
    const chain = viem.defineChain({ id: 1337, name: 'ganache', nativeCurrency:
        { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [nodeUrl] } } });
    const client = viem.createPublicClient({ chain, transport: viem.webSocket(wsUrl) });
    const vt = tap((await client.transport.getRpcClient()).socket);
    const vi = { numbers: [], blocks: [], errors: [] };
    const unwatch = [
        client.watchBlockNumber({ poll: false, onBlockNumber: n => vi.numbers.push(Number(n)),
                                  onError: e => vi.errors.push(String(e.shortMessage || e.message)) }),
        client.watchBlocks({ poll: false, onBlock: b => vi.blocks.push(Number(b.number)),
                             onError: e => vi.errors.push(String(e.shortMessage || e.message)) }),
    ];

    // 50 clients of the ws package
    const raw = Array.from({ length: 50 }, (_, i) => rawClient(i + 1));
    await Promise.all(raw.map(c => c.ready));
    await until(() => subscribed(et).length >= 2 && subscribed(vt).length >= 2, 10000);

    const all = n => raw.every(c => c.events.some(e => e.number === n))
        && eth.blocks.includes(n) && vi.numbers.includes(n) && vi.blocks.includes(n);

    // a block, then a transaction that logs (a block of its own)
    const b1 = await mine();
    const b2 = await logTx(from, contract, '0xc0ffee01');
    const t0 = Date.now();
    const reached = await until(() => all(b1) && all(b2) && eth.logs.length >= 1, 10000);
    out.before = {
        mined: [b1, b2], reached, ms: Date.now() - t0,
        raw_b1: raw.filter(c => c.events.some(e => e.number === b1)).length,
        raw_b2: raw.filter(c => c.events.some(e => e.number === b2)).length,
        ethers_blocks: eth.blocks.slice(), ethers_logs: eth.logs.slice(),
        viem_numbers: vi.numbers.slice(), viem_blocks: vi.blocks.slice(),
    };

    // ganache killed and started again on the same port, same chain; blocks
    // mined every 250 ms until every client got one (the gateway had to
    // reconnect and resubscribe first)
    const kill0 = Date.now();
    await killNode();
    await sleep(300);
    node = await startNode();
    const restartMs = Date.now() - kill0;
    const after = [];
    const back = Date.now();
    const gotOne = () => raw.every(c => c.events.some(e => e.number > b2))
        && eth.blocks.some(n => n > b2) && vi.numbers.some(n => n > b2) && vi.blocks.some(n => n > b2);
    while (!gotOne() && Date.now() - back < 20000) {
        after.push(await mine());
        await until(gotOne, 250);
    }
    const resumed = Date.now() - back;
    const b3 = await logTx(from, contract, '0xc0ffee02');
    const reachedAfter = await until(() => all(b3) && eth.logs.length >= 2, 10000);
    out.after = {
        restart_ms: restartMs, resumed_ms: resumed, mined: after, log_block: b3,
        reached: reachedAfter,
        raw_b3: raw.filter(c => c.events.some(e => e.number === b3)).length,
        ethers_blocks: eth.blocks.filter(n => n > b2), ethers_logs: eth.logs.slice(1),
        viem_numbers: vi.numbers.filter(n => n > b2), viem_blocks: vi.blocks.filter(n => n > b2),
    };

    // every client: its own id on every event, still connected
    out.raw = {
        clients: raw.length,
        ids: raw.filter(c => isId(c.id)).length,
        distinct: new Set(raw.map(c => c.id)).size,
        own_id_only: raw.filter(c => c.events.length && c.events.every(e => e.sub === c.id)).length,
        early: raw.reduce((n, c) => n + c.early, 0),
        closed: raw.filter(c => c.closed !== null).map(c => `${c.i}: ${c.closed}`),
        errors: raw.flatMap(c => c.errors).slice(0, 10),
        sample: raw[0].answer,
    };
    const libIds = [...subscribed(et), ...subscribed(vt)].map(a => a.result);
    out.libraries = {
        ethers_subscriptions: subscribed(et).map(a => a.result),
        viem_subscriptions: subscribed(vt).map(a => a.result),
        ids: libIds.filter(isId).length,
        distinct_from_raw: libIds.filter(id => !raw.some(c => c.id === id)).length,
        // events each library's socket got, per subscription: all of them
        // for ids it was given
        foreign_events: [...Object.keys(et.events).filter(s => !libIds.includes(s)),
                         ...Object.keys(vt.events).filter(s => !libIds.includes(s))],
        viem_errors: vi.errors,
    };

    // unsubscribing through the libraries: true for each
    ethers.off('block');
    await ethers.off({ address: contract, topics: [topic] });
    unwatch.forEach(u => u());
    await until(() => Object.values(et.answers).filter(a => a.method === 'eth_unsubscribe').length >= 2
                      && Object.values(vt.answers).filter(a => a.method === 'eth_unsubscribe').length >= 2,
                5000);
    out.unsubscribe = [...Object.values(et.answers), ...Object.values(vt.answers)]
        .filter(a => a.method === 'eth_unsubscribe').map(a => a.result);

    for (const c of raw) c.ws.close(1000);
    await ethers.destroy();
    await (await client.transport.getRpcClient()).close();
    await killNode();
}

const deadline = setTimeout(() => {
    out.errors.push('subscribe.js: over 120 s');
    console.log(JSON.stringify(out));
    process.exit(1);
}, 120000);

main().then(() => {
    clearTimeout(deadline);
    console.log(JSON.stringify(out));
    process.exit(0);
}, e => {
    out.errors.push(String(e.stack || e));
    console.log(JSON.stringify(out));
    process.exit(1);
});
