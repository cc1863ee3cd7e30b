// A WebSocket JSON-RPC node for the subscription tests (t/020-subscribe.t,
// bench/run sub): it serves the subscribe dialect on WS_PORT and is steered
// and counted over HTTP on CONTROL_PORT.  Prints "ready" once both listen.
//
//   node wsnode.js WS_PORT CONTROL_PORT
//
// The node, on WS_PORT (any path; each connection is counted under its path,
// so that locations of a gateway pointed at /a and /b are told apart):
//   X_subscribe P     -> {"jsonrpc":"2.0","id":ID,"result":"0x<32 hex>"}
//                        a fresh upstream id each time (numeric with
//                        config numeric=1); the subscription is live from
//                        the answer on, keyed by the compact JSON of P
//   X_unsubscribe [S] -> true if S is live on this connection, else false
//   anything else     -> -32601; batches are answered as arrays
// Events are {"jsonrpc":"2.0","method":"X_subscription","params":
// {"subscription":S,"result":{"seq":N,"sent":MS,"key":K}}}: seq counts emit
// rounds (the same seq for every subscription of one round), sent is the
// Unix time in ms (3 decimals) when it was written.  Pings are answered
// with pongs (unless stalled with pongs=0).  Frames from a client must be
// masked (the ws package closes 1002 otherwise; noted in stats.errors).
//
// Control: GET http://127.0.0.1:CONTROL_PORT/COMMAND?ARGS (or a POST with
// the ARGS as its body, for long ones), answers JSON:
//   stats [path=P] [lite=1]
//                    connections ever/open, subscribes, unsubscribes, live,
//                    keys {K: {subscribes, unsubscribes, live}}, subs [{id,
//                    key, conn, path, live}], received [{conn, path, text}]
//                    (every message), handshakes [{conn, path, host}],
//                    closes [{conn, code}] (close frames the client sent),
//                    pings, errors, emitted, flooded (pings sent by flood);
//                    lite=1: received and subs are counts, and a key longer
//                    than 200 bytes is named by its first 100, "..." and the
//                    first 12 hex digits of its SHA-1 (for huge params)
//   emit n=1 [key=K] [path=P] [sub=S] [template=T] [pad=BYTES]
//        [fragment=BYTES] [ping=1] [method=M]
//                    n rounds of one event to each live subscription (of
//                    key K, of connections of path P); sub=S: one event per
//                    open connection for subscription S instead (S numeric
//                    when all digits), live or not.  template: the event's
//                    text with {sub} {seq} {sent} {key} {method} replaced
//                    (JSON values); pad: a "pad" member of that many bytes
//                    in the default result; fragment: sent in fragments of
//                    that many bytes (ping=1: a ping between each two).
//                    Answers {rounds, events, seq: [first, last], texts:
//                    [{conn, sub, text}] (the first 100)}
//   stream every=MS [count=C] [n=1] [key=K] [path=P] [pad=BYTES]
//                    emit n rounds every MS ms, C times (or until stream
//                    every=0); answers {seq: the first seq it will send}
//   config [numeric=0|1] [delay=MS] [burst=N] [refuse=K] [error=JSON]
//          [flood=0|1]
//                    answers with numeric ids; the subscribe answer (or
//                    error) after MS ms; N events in the same write as the
//                    answer; subscribes of key K answered with error JSON
//                    (the bytes as given) instead; flood=1: a connection
//                    that got a subscribe answer stops reading and sends
//                    pings (125 bytes each) as fast as its socket takes
//                    them, until it closes.  reset=1 first: all off (a
//                    flood under way goes on)
//   drop [how=close|end|reset] [code=1001] [path=P]
//                    ends every connection: close frame, TCP FIN, TCP RST
//   stall [on=1] [pongs=1]   emit and stream send nothing while on; pongs=0
//                    leaves pings unanswered
//   refuse ms=MS [drop=end]  stops listening on WS_PORT for MS ms (connects
//                    are refused), ending the connections as drop does
//                    (drop=none keeps them); ms=0 listens again at once
'use strict';
const http = require('http');
const crypto = require('crypto');
const { performance } = require('perf_hooks');
const { WebSocketServer } = require('ws');

const [wsPort, controlPort] = process.argv.slice(2).map(Number);

const conns = new Map();              // conn number -> { ws, path, subs }
const subs = new Map();               // upstream id (as text) -> subscription
const paths = new Map();              // path -> counters
const log = { received: [], handshakes: [], closes: [], errors: [] };
const config = {};
let connNumber = 0, nextNumericId = 1000, seq = 0, emitted = 0, pings = 0;
let stalled = false, pongs = true, stream = null, refuseTimer = null;
let flooded = 0;

function now() { return (performance.timeOrigin + performance.now()).toFixed(3); }

function counters(path) {
    if (!paths.has(path)) {
        paths.set(path, { connections_ever: 0, connections_open: 0,
                          subscribes: 0, unsubscribes: 0, keys: {} });
    }
    return paths.get(path);
}

function keyCounters(path, key) {
    const k = counters(path).keys;
    return k[key] || (k[key] = { subscribes: 0, unsubscribes: 0 });
}

// --- the node

const wss = new WebSocketServer({ noServer: true, autoPong: false,
                                  perMessageDeflate: false,
                                  maxPayload: 64 << 20 });
const node = http.createServer((req, res) => {
    res.writeHead(426, { 'Content-Type': 'text/plain' });
    res.end('WebSocket only\n');
});
node.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, ws => open(ws, req));
});

function open(ws, req) {
    const c = { n: ++connNumber, ws, path: req.url, subs: new Set() };
    conns.set(c.n, c);
    const p = counters(c.path);
    p.connections_ever++;
    p.connections_open++;
    log.handshakes.push({ conn: c.n, path: c.path, host: req.headers.host });
    ws.on('message', (data, binary) => message(c, data.toString(), binary));
    ws.on('ping', data => { pings++; if (pongs) ws.pong(data); });
    ws.on('close', code => {
        log.closes.push({ conn: c.n, code });
        conns.delete(c.n);
        p.connections_open--;
        for (const id of c.subs) release(c, id);
    });
    ws.on('error', e => log.errors.push({ conn: c.n, error: String(e.message) }));
}

function release(c, id) {
    const s = subs.get(id);
    if (!s || !s.live) return false;
    s.live = false;
    c.subs.delete(id);
    return true;
}

function message(c, text, binary) {
    log.received.push({ conn: c.n, path: c.path, text });
    let m;
    try {
        m = JSON.parse(text);
    } catch (e) {
        return c.ws.send(reply(null, null, '{"code":-32700,"message":"Parse error"}'));
    }
    if (Array.isArray(m)) {
        const out = m.map(x => call(c, x, true)).filter(x => x);
        if (out.length) c.ws.send('[' + out.join(',') + ']');
        return;
    }
    const answer = call(c, m, false);
    if (answer) c.ws.send(answer);
}

function reply(id, result, error) {
    return '{"jsonrpc":"2.0","id":' + JSON.stringify(id === undefined ? null : id)
         + (error ? ',"error":' + error : ',"result":' + JSON.stringify(result)) + '}';
}

// the answer's text, or undefined when it is sent later (or never)
function call(c, m, inBatch) {
    const method = m && typeof m.method === 'string' ? m.method : '';
    if (/_subscribe$/.test(method)) return subscribe(c, m, inBatch);
    if (/_unsubscribe$/.test(method)) {
        const p = counters(c.path);
        const id = Array.isArray(m.params) ? String(m.params[0]) : '';
        const s = subs.get(id);
        p.unsubscribes++;
        if (s) keyCounters(c.path, s.key).unsubscribes++;
        return reply(m.id, s && s.conn === c.n ? release(c, id) : false);
    }
    if (m && m.id === undefined) return undefined;
    return reply(m && m.id, null, '{"code":-32601,"message":"Method not found"}');
}

function subscribe(c, m, inBatch) {
    const key = JSON.stringify(m.params === undefined ? null : m.params);
    const p = counters(c.path);
    p.subscribes++;
    keyCounters(c.path, key).subscribes++;
    if (config.refuse === key) {
        const error = reply(m.id, null, config.error);
        if (!config.delay) return error;
        setTimeout(() => c.ws.readyState === 1 && c.ws.send(error), config.delay);
        return undefined;
    }
    const s = { id: config.numeric ? nextNumericId++ : '0x' + crypto.randomBytes(16).toString('hex'),
                key, conn: c.n, path: c.path, live: false,
                method: m.method.replace(/_subscribe$/, '_subscription') };
    const answer = reply(m.id, s.id);
    const live = () => {
        subs.set(String(s.id), s);
        s.live = true;
        c.subs.add(String(s.id));
    };
    if (inBatch && !config.delay) {
        live();
        return answer;
    }
    setTimeout(() => {
        if (c.ws.readyState !== 1) return;
        live();
        const sock = c.ws._socket;
        sock.cork();
        c.ws.send(answer);
        for (let i = 0; i < (config.burst || 0); i++) send(c, s, event(s, ++seq, {}));
        process.nextTick(() => sock.uncork());
        if (config.flood) flood(c);
    }, config.delay || 0);
    return undefined;
}

// a node that pings in a flood and reads nothing: raw ping frames (a
// server's, unmasked) straight to the socket, each write when the last one
// drained
const pingFrame = Buffer.concat([Buffer.from([0x89, 125]), Buffer.alloc(125, 'p')]);
const pingBurst = Buffer.concat(Array(1000).fill(pingFrame));

function flood(c) {
    if (c.flooding) return;
    c.flooding = true;
    const sock = c.ws._socket;
    sock.pause();
    const go = () => {
        while (!sock.destroyed && sock.writable) {
            flooded += 1000;
            if (!sock.write(pingBurst)) return sock.once('drain', go);
        }
    };
    setImmediate(go);
}

// --- events

const defaultTemplate = '{"jsonrpc":"2.0","method":{method},"params":'
                      + '{"subscription":{sub},"result":{"seq":{seq},'
                      + '"sent":{sent},"key":{key}{pad}}}}';

function event(s, n, o) {
    const pad = o.pad ? ',"pad":"' + 'x'.repeat(o.pad) + '"' : '';
    return (o.template || defaultTemplate)
        .replace(/\{sub\}/g, JSON.stringify(s.id))
        .replace(/\{seq\}/g, String(n))
        .replace(/\{sent\}/g, now())
        .replace(/\{key\}/g, JSON.stringify(s.key))
        .replace(/\{method\}/g, JSON.stringify(o.method || s.method))
        .replace(/\{pad\}/g, pad);
}

function send(c, s, text, o = {}) {
    emitted++;
    if (!o.fragment || o.fragment >= text.length) return c.ws.send(text);
    const b = Buffer.from(text);
    for (let at = 0; at < b.length; at += o.fragment) {
        const last = at + o.fragment >= b.length;
        c.ws.send(b.subarray(at, at + o.fragment), { binary: false, fin: last });
        if (!last && o.ping) c.ws.ping('between');
    }
}

function emit(o) {
    const texts = [];
    let events = 0;
    const rounds = o.n || 1;
    const first = seq + 1;
    if (stalled) return { rounds: 0, events: 0, seq: [], texts, stalled: true };
    for (let r = 0; r < rounds; r++) {
        const n = ++seq;
        const targets = [];
        if (o.sub !== undefined) {
            const id = /^\d+$/.test(o.sub) ? Number(o.sub) : o.sub;
            for (const c of conns.values()) {
                if (o.path === undefined || c.path === o.path) {
                    targets.push([c, { id, key: 'none', method: 'eth_subscription' }]);
                }
            }
        } else {
            for (const s of subs.values()) {
                const c = conns.get(s.conn);
                if (!s.live || !c || (o.key !== undefined && s.key !== o.key)
                    || (o.path !== undefined && s.path !== o.path)) continue;
                targets.push([c, s]);
            }
        }
        for (const [c, s] of targets) {
            const text = event(s, n, o);
            send(c, s, text, o);
            events++;
            if (texts.length < 100) texts.push({ conn: c.n, sub: s.id, text });
        }
    }
    return { rounds, events, seq: [first, seq], texts };
}

// --- control

function stats(o) {
    const want = x => o.path === undefined || x.path === o.path;
    const out = { connections_ever: 0, connections_open: 0, subscribes: 0,
                  unsubscribes: 0, live: 0, keys: {} };
    for (const [path, p] of paths) {
        if (!want({ path })) continue;
        for (const f of ['connections_ever', 'connections_open', 'subscribes', 'unsubscribes']) {
            out[f] += p[f];
        }
        for (const [k, v] of Object.entries(p.keys)) {
            const t = out.keys[k] || (out.keys[k] = { subscribes: 0, unsubscribes: 0, live: 0 });
            t.subscribes += v.subscribes;
            t.unsubscribes += v.unsubscribes;
        }
    }
    out.subs = [...subs.values()].filter(want).map(s => ({ id: s.id, key: s.key, conn: s.conn,
                                                           path: s.path, live: s.live }));
    for (const s of out.subs) {
        if (!s.live) continue;
        out.live++;
        (out.keys[s.key] || (out.keys[s.key] = { subscribes: 0, unsubscribes: 0, live: 0 })).live++;
    }
    out.received = log.received.filter(want);
    out.handshakes = log.handshakes.filter(want);
    const mine = new Set(out.handshakes.map(h => h.conn));
    out.closes = log.closes.filter(x => mine.has(x.conn));
    out.errors = log.errors;
    out.pings = pings;
    out.emitted = emitted;
    out.flooded = flooded;
    if (o.lite) {
        out.received = out.received.length;
        out.subs = out.subs.length;
        const keys = {};
        for (const [k, v] of Object.entries(out.keys)) {
            keys[k.length <= 200 ? k : k.slice(0, 100) + '...'
                 + crypto.createHash('sha1').update(k).digest('hex').slice(0, 12)] = v;
        }
        out.keys = keys;
    }
    return out;
}

function drop(how, code, path) {
    for (const c of conns.values()) {
        if (path !== undefined && c.path !== path) continue;
        if (how === 'close') c.ws.close(code || 1001, 'going away');
        else if (how === 'reset') c.ws._socket.resetAndDestroy();
        else c.ws._socket.end(() => c.ws._socket.destroy());
    }
}

function listen(cb) {
    node.listen(wsPort, '127.0.0.1', cb);
}

const commands = {
    stats,
    emit,
    stream(o) {
        clearInterval(stream);
        let ticks = 0;
        stream = o.every ? setInterval(() => {
            emit(o);
            if (o.count && ++ticks >= o.count) clearInterval(stream);
        }, o.every) : null;
        return { streaming: !!stream, seq: seq + 1 };
    },
    config(o) {
        if (o.reset) for (const k of Object.keys(config)) delete config[k];
        for (const k of ['numeric', 'delay', 'burst', 'refuse', 'error', 'flood']) {
            if (o[k] !== undefined) config[k] = o[k];
        }
        return config;
    },
    drop(o) {
        drop(o.how || 'close', o.code, o.path);
        return { dropped: true };
    },
    stall(o) {
        stalled = o.on === undefined ? true : !!o.on;
        pongs = o.pongs === undefined ? true : !!o.pongs;
        return { stalled, pongs };
    },
    refuse(o) {
        clearTimeout(refuseTimer);
        if (!o.ms) {
            if (!node.listening) listen();
            return { listening: true };
        }
        if (node.listening) node.close();
        if (o.drop !== 'none') drop(o.drop || 'end');
        refuseTimer = setTimeout(() => { if (!node.listening) listen(); }, o.ms);
        return { listening: false };
    },
};

const numeric = new Set(['n', 'every', 'count', 'pad', 'fragment', 'ping', 'code', 'ms',
                         'numeric', 'delay', 'burst', 'reset', 'on', 'pongs',
                         'lite', 'flood']);
const control = http.createServer((req, res) => {
    let body = '';
    req.on('data', d => { body += d; });
    req.on('end', () => {
        const url = new URL(req.url, 'http://control');
        const f = commands[url.pathname.slice(1)];
        const o = {};
        for (const [k, v] of [...url.searchParams, ...new URLSearchParams(body)]) {
            o[k] = numeric.has(k) ? Number(v) : v;
        }
        let status = 200, answer;
        try {
            answer = f ? f(o) : (status = 404, { error: 'no such command' });
        } catch (e) {
            status = 500;
            answer = { error: String(e.stack || e) };
        }
        res.writeHead(status, { 'Content-Type': 'application/json', Connection: 'close' });
        res.end(JSON.stringify(answer) + '\n');
    });
});

listen(() => control.listen(controlPort, '127.0.0.1', () => console.log('ready')));
process.on('SIGTERM', () => process.exit(0));
