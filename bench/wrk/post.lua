-- wrk script of the bench: POSTs the JSON bodies of $BENCH_BODIES (one per line) in turn to
-- $BENCH_PATH with "Authorization: Bearer $BENCH_TOKEN", counts every response by status,
-- and prints one line "BENCH_JSON {...}" with the totals and latency percentiles.
local path = os.getenv("BENCH_PATH")
local token = os.getenv("BENCH_TOKEN") or ""
local requests_ = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  local headers = {["Content-Type"] = "application/json",
                   ["Authorization"] = "Bearer " .. token}
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    table.insert(requests_, wrk.format("POST", path, headers, line))
  end
  counter = math.random(#requests_)
end

function request()
  counter = counter % #requests_ + 1
  return requests_[counter]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(total) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "statuses": {%s}, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, table.concat(parts, ", "),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
