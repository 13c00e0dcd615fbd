-- wrk script for scripts/bench: one kind of request per wrk process.
--
--   wrk -s scripts/bench.lua URL -- kind=get|list|order ids=FILE users=FILE auth=bearer|header
--       [scarce=ID scarce_pct=N] [pages=N] [progress=PREFIX]
--
-- ids:   a file with one product id a line (the products the bench seeded).
-- users: a file with "user_id token" a line; auth=bearer sends the token (through the
--        gateway), auth=header sends X-User-Id (straight to the orders service, which
--        trusts that header from the gateway).
-- progress: each thread rewrites PREFIX-<thread> with "responses unexpected" once a
--        second, so scripts/bench can show live rates.
-- done() prints one line "BENCH-JSON {...}" with the counts and the latency percentiles.
--
-- With BENCH_RATE=R in the environment each wrk thread paces its requests to R a second
-- (an absolute schedule, so slow answers don't lower the offered rate unless every
-- connection is busy); without it every connection sends its next request as soon as
-- the answer is in (closed loop, the system's capacity).

local rate = tonumber(os.getenv("BENCH_RATE") or "")
if rate and rate > 0 then
  -- wrk decides once, from the main script, whether delay() exists: define it only when pacing.
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
  ]]
  local ts = ffi.new("bench_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval = 1000 / rate
  local next_send
  function delay()
    local now = now_ms()
    -- Fallen behind (all connections were busy)? Catch up by at most 100 ms worth.
    if not next_send or next_send < now - 100 then next_send = now end
    local wait = next_send - now
    next_send = next_send + interval
    return wait > 0 and wait or 0
  end
end

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

local kind, auth, pages, scarce, scarce_pct, progress
local ids, users = {}, {}
local expected = {}
counts = {}      -- status -> responses (read by done() through thread:get)
responses = 0
unexpected = 0
local last_report = 0

local function lines(path)
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then table.insert(out, line) end
  end
  return out
end

function init(args)
  local opts = {}
  for _, arg in ipairs(args) do
    local k, v = arg:match("^([%w_]+)=(.*)$")
    if k then opts[k] = v end
  end
  kind = opts.kind or "get"
  auth = opts.auth or "bearer"
  pages = tonumber(opts.pages or "5")
  scarce = tonumber(opts.scarce or "0")
  scarce_pct = tonumber(opts.scarce_pct or "0")
  progress = opts.progress
  if opts.ids then
    for _, line in ipairs(lines(opts.ids)) do table.insert(ids, tonumber(line)) end
  end
  if opts.users then
    for _, line in ipairs(lines(opts.users)) do
      local id, token = line:match("^(%d+)%s+(%S+)$")
      table.insert(users, {id = id, token = token})
    end
  end
  -- POST /orders answers 201; a 409 (out of stock) is expected only for the scarce product.
  if kind == "order" then
    expected[201] = true
    if scarce > 0 then expected[409] = true end
  else
    expected[200] = true
  end
  math.randomseed(os.time() * 1000 + tid)
end

function request()
  if kind == "get" then
    return wrk.format("GET", "/products/" .. ids[math.random(#ids)])
  elseif kind == "list" then
    return wrk.format("GET", "/products?page=" .. math.random(pages))
  end
  local user = users[math.random(#users)]
  local headers = {["Content-Type"] = "application/json"}
  if auth == "bearer" then
    headers["Authorization"] = "Bearer " .. user.token
  else
    headers["X-User-Id"] = user.id
  end
  local product = ids[math.random(#ids)]
  if scarce > 0 and math.random(100) <= scarce_pct then product = scarce end
  local body = '{"items":[{"product_id":' .. product .. ',"quantity":1}]}'
  return wrk.format("POST", "/orders", headers, body)
end

local function report_progress()
  local f = io.open(progress .. "-" .. tid, "w")
  if f then
    f:write(responses, " ", unexpected, "\n")
    f:close()
  end
end

function response(status, headers, body)
  responses = responses + 1
  counts[status] = (counts[status] or 0) + 1
  -- A read refused at once because it queued too long (common/http/shedding.py:
  -- 503 with Retry-After) was shed, which overload asks for: counted in the
  -- statuses, not as an error. Any other 503 is one.
  local shed = kind ~= "order" and status == 503 and headers["Retry-After"] ~= nil
  if not expected[status] and not shed then unexpected = unexpected + 1 end
  if progress then
    local now = os.time()  -- whole seconds; cheap (vDSO)
    if now ~= last_report then
      last_report = now
      report_progress()
    end
  end
end

function done(summary, latency, requests)
  local statuses = {}
  local total_unexpected = 0
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for status, n in pairs(c) do statuses[status] = (statuses[status] or 0) + n end
    total_unexpected = total_unexpected + thread:get("unexpected")
  end
  local parts = {}
  for status, n in pairs(statuses) do table.insert(parts, string.format('"%d":%d', status, n)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"duration_us":%d,"requests":%d,"statuses":{%s},"unexpected":%d,' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p95":%d,"p99":%d,"max":%d}}\n',
    summary.duration, summary.requests, table.concat(parts, ","), total_unexpected,
    e.connect, e.read, e.write, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
