// JSON-RPC backend for bench/run's coalescing scenario: answers any call or
// batch with a fixed result and the ids it was sent, and counts the HTTP
// requests and calls it served (GET /count).  Unlike nginx's canned
// replies it parses every request, so each one costs what a node's would.
//
//   node bench/backend.js PORT

'use strict';

const http = require('http');

let requests = 0;
let calls = 0;

function answer(call) {
    return { jsonrpc: '2.0', id: call.id, result: '0x10d4f' };
}

http.createServer((req, res) => {
    if (req.method === 'GET') {
        res.end(JSON.stringify({ requests, calls }));
        return;
    }

    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
        const msg = JSON.parse(Buffer.concat(chunks));
        let out;

        requests++;

        if (Array.isArray(msg)) {
            calls += msg.length;
            out = msg.filter((c) => c.id !== undefined).map(answer);
        } else {
            calls++;
            out = answer(msg);
        }

        const body = JSON.stringify(out);
        res.writeHead(200, { 'Content-Type': 'application/json',
                             'Content-Length': Buffer.byteLength(body) });
        res.end(body);
    });
}).listen(Number(process.argv[2]), '127.0.0.1');
