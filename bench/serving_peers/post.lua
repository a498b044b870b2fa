-- wrk script for bench/serving.py: POST JSON bodies read from a file (one per line), cycled,
-- and one machine-readable summary line at the end.
--   wrk -t1 -c8 -d20s --latency -s post.lua http://127.0.0.1:PORT/PATH -- BODIES_FILE [close]
-- With "close", every request says `Connection: close`: the server closes the connection after
-- answering and wrk opens a new one for the next request (no keep-alive).

local requests = {}
local next_one = 1

function init(args)
  local file = assert(io.open(args[1], "r"))
  local headers = { ["Content-Type"] = "application/json" }
  if args[2] == "close" then
    headers["Connection"] = "close"
  end
  for line in file:lines() do
    if #line > 0 then
      requests[#requests + 1] = wrk.format("POST", nil, headers, line)
    end
  end
  file:close()
  assert(#requests > 0, "no request bodies in " .. args[1])
end

function request()
  local r = requests[next_one]
  next_one = next_one % #requests + 1
  return r
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"p999_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
