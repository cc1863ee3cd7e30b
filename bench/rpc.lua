-- wrk script: POSTs the JSON body in the file named by $BENCH_BODY and
-- prints one machine-readable line: requests, req/s, p50 ms, p99 ms, errors.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
wrk.headers["Content-Type"] = "application/json"
f:close()

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %d %.1f %.3f %.3f %d\n",
        summary.requests, summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        e.connect + e.read + e.write + e.status + e.timeout))
end
