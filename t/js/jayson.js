// jayson, a plain JSON-RPC 2.0 library for Node.js, on both sides:
//   node jayson.js server PORT        a server; prints "ready"
//   node jayson.js client URL URL     the same calls through both URLs,
//                                     prints {"gateway":..., "direct":...}
'use strict';
const jayson = require('jayson');

let notified = 0;

const methods = {
    add: (args, done) => done(null, args[0] + args[1]),
    greet: (args, done) => done(null, 'hello ' + args.name),
    fail: (args, done) => done({ code: 4711, message: 'no luck', data: [1] }),
    slow: (args, done) => setTimeout(() => done(null, 'late'), args[0]),
    notify_log: (args, done) => { notified++; done(); },
    notified: (args, done) => done(null, notified),
};

function call(client, method, params, id) {
    return new Promise((resolve, reject) =>
        client.request(method, params, id, (err, res) =>
            err ? reject(err) : resolve(res)));
}

// what a response says, without the id the client chose
function said(res) {
    if (res === undefined) {
        return 'nothing';
    }
    return res.error ? { error: res.error } : { result: res.result };
}

async function calls(url) {
    const u = new URL(url);
    const client = jayson.client.http({ hostname: u.hostname,
                                        port: u.port, path: u.pathname });
    const out = {};
    out.single = said(await call(client, 'add', [1, 2]));
    out.named = said(await call(client, 'greet', { name: 'ngx' }));
    out.error = said(await call(client, 'fail', []));
    out.unknown = said(await call(client, 'no_such_method', []));
    out.notification = said(await call(client, 'notify_log', [], null));
    const batch = [
        client.request('add', [2, 3], undefined, false),
        client.request('notify_log', [], null, false),
        client.request('no_such_method', [], undefined, false),
        client.request('greet', { name: 'batch' }, undefined, false),
        client.request('slow', [50], undefined, false),
    ];
    const res = await new Promise((resolve, reject) =>
        client.request(batch, (err, errors, successes) =>
            err ? reject(err) : resolve([...(errors || []),
                                         ...(successes || [])])));
    out.batch = res.map(said).sort((a, b) =>
        JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);
    out.notified = said(await call(client, 'notified', []));
    return out;
}

async function main() {
    const [mode, a, b] = process.argv.slice(2);
    if (mode === 'server') {
        const server = new jayson.Server(methods, { useContext: false });
        server.http().listen(Number(a), '127.0.0.1',
                             () => console.log('ready'));
        process.on('SIGTERM', () => process.exit(0));
        return;
    }
    const gateway = await calls(a);
    const direct = await calls(b);
    console.log(JSON.stringify({ gateway, direct }));
}

main().catch(e => { console.error(e); process.exit(1); });
