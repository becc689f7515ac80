-- The load of one measurement, for wrk (bench/load.py runs it):
--
--   wrk -t1 -c10 -d10s -s bench/wrk.lua http://127.0.0.1:8100 -- BODY_FILE [HEADER ...]
--
-- Every request is the same POST /graphql with the JSON body read from BODY_FILE and
-- the headers given ("name: value"). Each response is checked as it arrives: an HTTP
-- status other than 200 or a body with top-level `errors` is a failure (the first few
-- kept as samples); otherwise its size and its statement count (Server-Timing
-- `sql;desc="N statements"`) are tallied. At the end one line starting with
-- "BENCH-RESULT " holds the figures as JSON.

local request_text
local MAX_SAMPLES = 5

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local body = file:read("*a")
  file:close()
  local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
  for i = 2, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    headers[name] = value
  end
  request_text = wrk.format("POST", "/graphql", headers, body)
  statements, sizes, failures, samples, sampled = {}, {}, {}, {}, 0
end

function request()
  return request_text
end

local function fail(message)
  failures[message] = (failures[message] or 0) + 1
  if sampled < MAX_SAMPLES and failures[message] == 1 then
    sampled = sampled + 1
    samples[sampled] = message
  end
end

function response(status, headers, body)
  if status ~= 200 then
    return fail("HTTP " .. status .. ": " .. body:sub(1, 200))
  end
  local errors = body:find('"errors":', 1, true)
  if errors ~= nil and errors < 3 or body:find(',"errors":[', 1, true) then
    return fail("errors: " .. body:sub(1, 300))
  end
  local timing = headers["server-timing"] or headers["Server-Timing"] or ""
  local count = timing:match('sql;desc="(%d+) statements"') or "none"
  statements[count] = (statements[count] or 0) + 1
  sizes[#body] = (sizes[#body] or 0) + 1
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

local function quote(text)
  return '"' .. text:gsub('[%c"\\]', function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function object(tally)
  local parts = {}
  for key, n in pairs(tally) do
    parts[#parts + 1] = quote(tostring(key)) .. ":" .. n
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function merge(into, tally)
  for key, n in pairs(tally or {}) do
    into[key] = (into[key] or 0) + n
  end
end

function done(summary, latency, requests)
  local all_statements, all_sizes, all_failures, all_samples = {}, {}, {}, {}
  for _, thread in ipairs(threads) do
    merge(all_statements, thread:get("statements"))
    merge(all_sizes, thread:get("sizes"))
    merge(all_failures, thread:get("failures"))
    for _, sample in ipairs(thread:get("samples") or {}) do
      all_samples[#all_samples + 1] = quote(sample)
    end
  end
  local errors = summary.errors
  local percentiles = {}
  for _, p in ipairs({ 50, 90, 99 }) do
    percentiles[#percentiles + 1] = string.format('"%d":%d', p, latency:percentile(p))
  end
  io.write(
    "BENCH-RESULT {",
    string.format('"requests":%d,"duration_us":%d,', summary.requests, summary.duration),
    string.format(
      '"socket_errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},',
      errors.connect, errors.read, errors.write, errors.status, errors.timeout
    ),
    '"latency_us":{', table.concat(percentiles, ","), "},",
    '"statements":', object(all_statements), ",",
    '"sizes":', object(all_sizes), ",",
    '"failures":', object(all_failures), ",",
    '"samples":[', table.concat(all_samples, ","), "]}\n"
  )
end
