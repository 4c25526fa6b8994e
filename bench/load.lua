-- wrk script for tasks-api: every request is made by a random seeded user
-- (its own token) about one of that user's own tasks.
--
--   wrk -t2 -c32 -d15s -s bench/load.lua http://127.0.0.1:PORT -- SCENARIO USERS_FILE
--
-- USERS_FILE has one line per user: sub <TAB> token <TAB> first id <TAB> last id
-- (the user's seeded tasks have the consecutive ids first..last).
-- Scenarios: health, list, list-filtered, get, create, patch, toggle, mixed,
-- and mcp-list, mcp-create: the same list and create as MCP `tools/call`
-- requests to /mcp (list_tasks, add_task), stateless as an agent sends them.
-- At the end one line "WRK_JSON {...}" carries the figures bench/run keeps.

local users = {}
local scenario = "list"
local sequence = 0
thread_no = 0 -- set per thread by setup()

local priorities = { "low", "medium", "high" }
local tags = { "home", "work", "errands", "urgent" }

-- mixed: 80% reads, 20% writes.
local mix = {
  { 40, "list" }, { 30, "get" }, { 10, "list-filtered" },
  { 5, "create" }, { 8, "patch" }, { 7, "toggle" },
}

local next_thread = 0
function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_no", next_thread)
end

function init(args)
  scenario = args[1] or "list"
  local path = args[2] or error("usage: -- SCENARIO USERS_FILE")
  for line in io.lines(path) do
    local sub, token, first, last = line:match("^(%S+)\t(%S+)\t(%d+)\t(%d+)$")
    if sub then
      users[#users + 1] = {
        auth = "Bearer " .. token,
        first = tonumber(first),
        last = tonumber(last),
      }
    end
  end
  if #users == 0 then error("no users in " .. path) end
  math.randomseed(os.time() + thread_no * 7919)
end

local function auth_headers(user)
  return { ["Authorization"] = user.auth }
end

local function json_headers(user)
  return { ["Authorization"] = user.auth, ["Content-Type"] = "application/json" }
end

-- A JSON-RPC request to /mcp: no session (the server is stateless), the
-- headers the streamable HTTP transport requires.
local function mcp_headers(user)
  return {
    ["Authorization"] = user.auth,
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["MCP-Protocol-Version"] = "2025-06-18",
  }
end

local function tool_call(name, arguments)
  return string.format(
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"%s","arguments":%s}}',
    name, arguments)
end

local function own_task(user)
  return math.random(user.first, user.last)
end

-- Requests that never change are formatted once (per user), and those that
-- differ only in the task id are formatted once around a marker and then
-- joined around the id: wrk calls request() for every request, and
-- wrk.format's table walk per call was CPU taken from the server on the
-- same two cores.
local function once(user, name, make)
  local cached = user[name]
  if not cached then
    cached = make()
    user[name] = cached
  end
  return cached
end

local function around_id(user, name, method, suffix)
  local parts = once(user, name, function()
    local text = wrk.format(method, "/api/v1/tasks/{id}" .. suffix, auth_headers(user))
    local at = text:find("{id}", 1, true)
    return { text:sub(1, at - 1), text:sub(at + 4) }
  end)
  return parts[1] .. own_task(user) .. parts[2]
end

local health_request = nil

local build = {
  ["health"] = function()
    health_request = health_request or wrk.format("GET", "/health")
    return health_request
  end,
  ["list"] = function(user)
    return once(user, "list", function()
      return wrk.format("GET", "/api/v1/tasks", auth_headers(user))
    end)
  end,
  -- Fixed values so that pgbench's list-filtered.sql runs the same query.
  ["list-filtered"] = function(user)
    return once(user, "list_filtered", function()
      return wrk.format("GET", "/api/v1/tasks?status=pending&tag=home&q=milk", auth_headers(user))
    end)
  end,
  ["get"] = function(user)
    return around_id(user, "get", "GET", "")
  end,
  ["create"] = function(user)
    sequence = sequence + 1
    local body = string.format(
      '{"title":"Bench task %d-%d","priority":"%s","tags":["bench","%s"],"due_date":"2026-12-01T09:00:00Z"}',
      thread_no, sequence, priorities[math.random(3)], tags[math.random(#tags)])
    return wrk.format("POST", "/api/v1/tasks", json_headers(user), body)
  end,
  ["mcp-list"] = function(user)
    return once(user, "mcp_list", function()
      return wrk.format("POST", "/mcp", mcp_headers(user), tool_call("list_tasks", "{}"))
    end)
  end,
  -- The body of `create`, as add_task's arguments.
  ["mcp-create"] = function(user)
    sequence = sequence + 1
    local arguments = string.format(
      '{"title":"Bench task %d-%d","priority":"%s","tags":["bench","%s"],"due_date":"2026-12-01T09:00:00Z"}',
      thread_no, sequence, priorities[math.random(3)], tags[math.random(#tags)])
    return wrk.format("POST", "/mcp", mcp_headers(user), tool_call("add_task", arguments))
  end,
  ["patch"] = function(user)
    sequence = sequence + 1
    local body = string.format('{"title":"Renamed task %d-%d","priority":"%s"}',
      thread_no, sequence, priorities[math.random(3)])
    return wrk.format("PATCH", "/api/v1/tasks/" .. own_task(user), json_headers(user), body)
  end,
  ["toggle"] = function(user)
    return around_id(user, "toggle", "PATCH", "/complete")
  end,
}

build["mixed"] = function(user)
  local roll = math.random(100)
  for _, entry in ipairs(mix) do
    roll = roll - entry[1]
    if roll <= 0 then return build[entry[2]](user) end
  end
  return build["list"](user)
end

function request()
  local make = build[scenario] or error("unknown scenario " .. scenario)
  return make(users[math.random(#users)])
end

function done(summary, latency, requests)
  local e = summary.errors
  local f = math.floor
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%d,"lat_max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    f(latency.mean), f(latency.max),
    f(latency:percentile(50)), f(latency:percentile(90)),
    f(latency:percentile(99)), f(latency:percentile(99.9))))
end
