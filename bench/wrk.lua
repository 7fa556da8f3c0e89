-- wrk script for `make bench` (bench/run.py); wrk 4.x, one Lua state per wrk thread.
--
-- done() prints one machine-readable line, so the harness never parses wrk's human output
-- (whose latency units change between us, ms and s). Latencies are in microseconds.
--
-- With BENCH_MAX_REQUESTS=N in the environment, the thread stops sending after N responses: used
-- to put exactly N requests through a fresh server before reading its RSS (run with -t1, so the
-- count is global). wrk's main thread still sleeps for the whole -d, so the script also prints
-- BENCH_LIMIT_REACHED; the harness answers with SIGINT, which wrk treats as "stop and report".
-- Without the variable no response() hook is defined at all: wrk hands responses to Lua only
-- when that hook exists, so measurement runs pay no scripting cost per request.

local limit = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "")
if limit then
  local count = 0
  function response(status, headers, body)
    count = count + 1
    if count == limit then  -- once: responses already read in this loop pass still count
      wrk.thread:stop()
      io.write("BENCH_LIMIT_REACHED\n")
      io.stdout:flush()
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_WRK {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p75":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
