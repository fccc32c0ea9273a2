#!/usr/bin/env lua5.4
--- Crash torture for memmap3 (SPEC §5): kill -9 writers at random instants
-- and check that every acknowledged operation survived and that the one in
-- flight is all or nothing.
--
--   lua5.4 tools/torture.lua KILLS [SEED [DIR]]
--
-- Prints "kills N, operations verified M, violations V" last and exits 1 if
-- V > 0 (2 on a usage or set-up error). DIR (default: a fresh directory from
-- mktemp -d, removed at the end) holds the data file, the workers'
-- acknowledgement files and their stderr, and (in .lib/) a private copy of
-- the module taken at the start, so that a rebuild during a long run does not
-- disturb it; all of it is removed at the end. Env MM3_BUILD names the build
-- directory holding memmap3/core.so (default: build/ next to tools/);
-- TORTURE_VERBOSE=1 prints one line per round.
--
-- Design. Two worker processes (this script in worker mode) share one file.
-- Worker W performs numbered steps i = start, start + 1, ...; what step i
-- does depends only on (W, i) and on W's own part of the file, so the driver
-- can replay it on a plain Lua model (the `step` function below is run both
-- on the file and on the model). After each step the worker appends "i\n" to
-- its acknowledgement file (write + flush: a completed write(2) survives
-- SIGKILL). Each round the driver starts both workers, sleeps a random time,
-- kills one with SIGKILL, then either kills the other too (so the next open
-- recovers both) or asks it to stop (so it, as the next locker, recovers the
-- dead one's unfinished work while it keeps going). With both gone it opens
-- the file, checks the structures' invariants (mm.check(path) as well, when
-- the module has it) and compares each worker's part of the file with the
-- model after its last acknowledged step a: it must equal model(a) or
-- model(a + 1), never anything else. Each worker then resumes after the
-- step that matched. Every 20 kills a new file starts (growth from scratch).
--
-- Steps (a mix, chosen by a hash of W and i): transactions over several
-- fields, a string, a map insert, a shared segmented append, a per-worker
-- segmented append, a vec insert or remove, a ring push and a value, with a
-- nested savepoint that commits and one that fails; aborted transactions
-- (an error inside: nothing may remain); map inserts and removes; segmented
-- appends and truncations; vec inserts and removes (shifting elements);
-- plain field writes (8-byte and string); mm.lock blocks; ring pushes; value
-- replacements of 0..20000 bytes, now and then up to 600000 (heap allocation,
-- file growth).

local script = arg and arg[0] or "tools/torture.lua"
local root = script:match("^(.*)/tools/[^/]*$") or (script:match("^tools/") and ".") or "."
local build = os.getenv("MM3_BUILD") or (root .. "/build")
local luadir = os.getenv("MM3_LUA") or (root .. "/lua")

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The driver's arguments, its directory and its private copy of the module.
local KILLS, SEED, DIR, OWN_DIR
if not (arg and arg[1] == "worker") then
  KILLS, SEED = tonumber(arg and arg[1]), tonumber(arg and arg[2] or os.time())
  if not KILLS or KILLS < 1 or not SEED then
    io.stderr:write("usage: lua5.4 tools/torture.lua KILLS [SEED [DIR]]\n")
    os.exit(2)
  end
  DIR = arg[3]
  if not DIR then
    local p = assert(io.popen("mktemp -d /tmp/mm3torture.XXXXXX"))
    DIR = p:read("l")
    p:close()
    assert(DIR and DIR ~= "", "mktemp -d failed")
    OWN_DIR = true
  end
  local lib = DIR .. "/.lib"
  local copy = ("rm -rf %s && mkdir -p %s/memmap3 %s/lua && cp %s/memmap3/core.so %s/memmap3/ && "
    .. "cp -R %s/memmap3 %s/lua/"):format(sh(lib), sh(lib), sh(lib), sh(build), sh(lib), sh(luadir), sh(lib))
  if not os.execute(copy) then
    io.stderr:write("torture: cannot copy the module from ", build, " and ", luadir, "\n")
    if OWN_DIR then os.execute("rm -rf " .. sh(DIR)) end
    os.exit(2)
  end
  build, luadir = lib, lib .. "/lua"
end
package.path = luadir .. "/?.lua;" .. luadir .. "/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

-- The interpreter running us, for the workers.
local LUA = "lua5.4"
do
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  if arg and arg[i] then LUA = arg[i] end
end

local loaded, mm = pcall(require, "memmap3")
if not loaded then
  io.stderr:write("torture: cannot load memmap3: ", tostring(mm), "\n")
  if DIR then os.execute("rm -rf " .. sh(OWN_DIR and DIR or DIR .. "/.lib")) end
  os.exit(2)
end

local format = string.format

-- ---------------------------------------------------------------------------
-- Schema and workload (shared by the driver and the workers)

local WORKERS = 2
local SLOTS = 1024        -- map keys of a worker: "W:slot"
local VEC_CAP = 24
local RING_CAP = 8
local SEG_MAX = 3000      -- a per-worker list longer than this is halved

local Rec = mm.struct("TortRec", {{"x", "i64"}, {"y", "i64"}, {"z", "i64"}})
local Worker = mm.struct("TortWorker", {
  {"a", Rec},
  {"tag", "string<32>"},
  {"plain", "i64"},
  {"label", "string<40>"},
  {"l1", "i64"},
  {"l2", "i64"},
  {"vec", mm.vec("i64", VEC_CAP)},
  {"ring", mm.ring("i64", RING_CAP)},
  {"seg", mm.segmented("i64")},
  {"blob", "value"},
})
local Root = mm.struct("TortRoot", {
  {"w", mm.array(Worker, WORKERS)},
  {"m", mm.map("string<24>", "i64")},
  {"log", mm.segmented("i64")},
})

local function key(W, i) return W .. ":" .. (i % SLOTS) end
local function enc(W, i) return (W << 40) | i end
local function label(i) return ("L%d-"):format(i) .. ("z"):rep(i % 20) end
local function blob(i)
  local n = (i * 7919) % 20000
  if i % 53 == 0 then n = 100000 + (i * 7919) % 500000 end -- now and then a big one: the file grows
  return ("%d:"):format(i) .. string.char(65 + i % 26):rep(n)
end

local KINDS = {"txn", "txn", "txn", "txn", "abort", "put", "put", "put", "del", "del",
               "seg", "seg", "vec", "vec", "field", "label", "lock", "value", "ring", "txn", "get"}

local function kind_of(W, i)
  local h = (i * 0x9E3779B1 + W * 0x85EBCA77) & 0xffffffff
  h = (h ~ (h >> 15)) * 0x2C1B3C6D & 0xffffffff
  h = h ~ (h >> 12)
  return KINDS[h % #KINDS + 1]
end

local function vec_op(v, i)
  local n = #v
  if n < VEC_CAP - 4 then v:insert(1 + i % (n + 1), i) else v:remove(1 + i % n) end
end

local function seg_op(s, i)
  local n = #s
  if n >= SEG_MAX then s:truncate(n // 2) else s:push(i) end
end

-- Step i of worker W on r: the file's root view (S = file ops) or the model
-- (S = model ops: transactions just run, failing ones are skipped).
local function step(S, r, W, i)
  local w = r.w[W]
  local kind = kind_of(W, i)
  if kind == "txn" then
    S.txn(r, function()
      w.a.x = i
      w.a.y = i
      w.a.z = -i
      w.tag = "t" .. i
      r.m[key(W, i)] = i
      S.pause()
      r.log:push(enc(W, i))
      seg_op(w.seg, i)
      S.txn(r, function() w.l1 = i end)          -- a savepoint that commits
      vec_op(w.vec, i)
      S.abort(r, function()                        -- one that fails
        w.a.x = -1
        w.tag = "inner"
        r.m[W .. ":junk"] = -1
        w.seg:push(-1)
        w.ring:push(-1)
        error("inner")
      end)
      w.ring:push(i)
      w.blob = blob(i)
    end)
  elseif kind == "abort" then
    S.abort(r, function()
      w.a.x = -i
      w.a.y = -i
      w.tag = "abort"
      r.m[key(W, i)] = -i
      r.m[W .. ":junk"] = -i
      r.log:push(-1)
      w.seg:push(-i)
      w.blob = "aborted"
      w.plain = -i
      error("abort")
    end)
  elseif kind == "put" then
    r.m[key(W, i)] = i
  elseif kind == "del" then
    r.m[key(W, i * 7919)] = nil
  elseif kind == "seg" then
    seg_op(w.seg, i)
  elseif kind == "vec" then
    vec_op(w.vec, i)
  elseif kind == "field" then
    w.plain = i
  elseif kind == "label" then
    w.label = label(i)
  elseif kind == "lock" then
    S.lock(r, function()
      w.l1 = i
      w.l2 = -i
      r.m[key(W, i)] = i
      r.log:push(enc(W, i))
    end)
  elseif kind == "value" then
    w.blob = blob(i)
  elseif kind == "ring" then
    w.ring:push(i)
  elseif kind == "get" then
    -- lock-free lookups (the other worker's key: while it may be writing)
    local _ = r.m[key(WORKERS + 1 - W, i)]
    w.plain = r.m[key(W, i)] or 0
  end
end

local FILE_OPS = {
  txn = mm.transaction,
  lock = mm.lock,
  pause = function() end,
  abort = function(r, fn)
    local ok, err = pcall(mm.transaction, r, fn)
    if ok then error("a transaction that raised did not fail") end
    if not tostring(err):find("abort", 1, true) and not tostring(err):find("inner", 1, true) then
      error(err, 0) -- a real error
    end
  end,
}

-- ---------------------------------------------------------------------------
-- Worker mode: lua5.4 torture.lua worker PATH W START ACKFILE STOPFILE

local function self_stat()
  local f = io.open("/proc/self/stat", "r")
  local s = f and f:read("a") or ""
  if f then f:close() end
  local pid = tonumber(s:match("^(%d+)"))
  local ppid = tonumber(s:match("%) %S+ (%d+)"))
  return pid, ppid
end

local function worker(path, W, start, ackpath, stoppath)
  local pid, ppid = self_stat()
  io.stdout:write(pid, "\n")
  io.stdout:flush()
  local ack = assert(io.open(ackpath, "wb"))
  local r = assert(mm.open(path, Root))
  local i = start
  while true do
    step(FILE_OPS, r, W, i)
    ack:write(i, "\n")
    ack:flush()
    i = i + 1
    local stop = io.open(stoppath, "rb")
    if stop then
      stop:close()
      break
    end
    if i % 256 == 0 then
      local _, pp = self_stat()
      if pp ~= ppid then break end -- the driver is gone
    end
  end
  io.stdout:write("recovered ", mm._core.file_recovered(select(2, mm._core.view_info(r))), "\n")
  mm.close(r)
  ack:close()
  os.exit(0)
end

-- TORTURE_SABOTAGE=1 (a self-test of the verifier): the workers run the
-- bodies of "txn" steps outside any transaction, pausing in the middle, so a
-- kill there leaves half a step behind, which the driver must report.
if os.getenv("TORTURE_SABOTAGE") == "1" then
  FILE_OPS.txn = function(r, fn) return fn(r) end
  FILE_OPS.pause = function()
    local t = os.clock() + 0.002
    while os.clock() < t do end
  end
end

if arg and arg[1] == "worker" then
  worker(arg[2], tonumber(arg[3]), tonumber(arg[4]), arg[5], arg[6])
end

-- ---------------------------------------------------------------------------
-- The model

local Seq = {}
Seq.__index = Seq
function Seq.push(s, v) s[#s + 1] = v end
function Seq.insert(s, pos, v) table.insert(s, pos, v) end
function Seq.remove(s, pos) return table.remove(s, pos) end
function Seq.truncate(s, n) for j = #s, n + 1, -1 do s[j] = nil end end

local Ring = {}
Ring.__index = Ring
function Ring.push(s, v)
  s[#s + 1] = v
  if #s > RING_CAP then table.remove(s, 1) end
end

local MODEL_OPS = {
  txn = function(r, fn) fn(r) end,
  lock = function(r, fn) fn(r) end,
  abort = function() end,
  pause = function() end,
}

local function new_model(W)
  local r = {w = {}, m = {}, log = setmetatable({}, Seq)}
  r.w[W] = {
    a = {x = 0, y = 0, z = 0}, tag = "", plain = 0, label = "", l1 = 0, l2 = 0,
    vec = setmetatable({}, Seq), ring = setmetatable({}, Ring), seg = setmetatable({}, Seq), blob = nil,
  }
  return r
end

local function list(t)
  local out = {}
  for j = 1, #t do out[j] = t[j] end
  return out
end

-- Worker W's part of a model, in the shape snapshot() gives for the file.
local function model_state(r, W)
  local w = r.w[W]
  local m = {}
  for k, v in pairs(r.m) do m[k] = v end
  return {
    a = {x = w.a.x, y = w.a.y, z = w.a.z}, tag = w.tag, plain = w.plain, label = w.label,
    l1 = w.l1, l2 = w.l2, vec = list(w.vec), ring = list(w.ring), seg = list(w.seg),
    blob = w.blob, m = m, log = list(r.log),
  }
end

-- ---------------------------------------------------------------------------
-- Reading the file back, with invariant checks

local function read_u64(path, off)
  local f = io.open(path, "rb")
  if not f then return nil end
  f:seek("set", off)
  local s = f:read(8)
  local size = f:seek("end")
  f:close()
  if not s or #s < 8 then return nil, size end
  return string.unpack("<I8", s), size
end

-- Every worker's part of the file, and a list of broken invariants.
local function snapshot(r, path)
  local bad = {}
  local function check(cond, ...) if not cond then bad[#bad + 1] = format(...) end end
  -- header: no unfinished log after an open that found nobody else; the
  -- published size within the file
  local log_len = read_u64(path, 560)
  check(log_len == 0, "header log_len is %s after reopening (expected 0)", tostring(log_len))
  -- and no write sequence left odd (read-only reads would refuse the file)
  local seqv = read_u64(path, 152)
  check(seqv and seqv % 2 == 0, "header seq %s is odd after reopening", tostring(seqv))
  local hsize, fsize = read_u64(path, 16)
  check(hsize and hsize <= fsize, "header size %s > file size %s", tostring(hsize), tostring(fsize))
  if mm.check then
    local ok, msg = mm.check(path)
    check(ok, "mm.check: %s", tostring(msg))
  end
  local states = {}
  for W = 1, WORKERS do
    local w = r.w[W]
    local s = {
      a = {x = w.a.x, y = w.a.y, z = w.a.z}, tag = w.tag, plain = w.plain, label = w.label,
      l1 = w.l1, l2 = w.l2, vec = list(w.vec), ring = list(w.ring), seg = {}, blob = w.blob,
      m = {}, log = {},
    }
    local n = #w.seg
    for j = 1, n do
      local v = w.seg[j]
      check(v ~= nil, "worker %d: segmented element %d of %d is nil", W, j, n)
      s.seg[j] = v
    end
    check(w.seg[n + 1] == nil, "worker %d: segmented has an element past its length", W)
    check(#s.vec <= VEC_CAP and #s.ring <= RING_CAP, "worker %d: vec or ring longer than its capacity", W)
    states[W] = s
  end
  -- the shared map: count = entries visited; each lookup agrees
  local count = 0
  for k, v in pairs(r.m) do
    count = count + 1
    local W = tonumber(k:match("^(%d+):"))
    check(W and states[W], "map: unexpected key %q", k)
    if W and states[W] then states[W].m[k] = v end
    check(r.m[k] == v, "map: lookup of %q gives %s, pairs gave %s", k, tostring(r.m[k]), tostring(v))
  end
  check(#r.m == count, "map: #m is %d, pairs visited %d", #r.m, count)
  -- the shared log: each entry belongs to a worker
  local n = #r.log
  for j = 1, n do
    local v = r.log[j]
    local W = v and v >> 40
    check(W and states[W], "log: element %d is %s", j, tostring(v))
    if W and states[W] then local l = states[W].log; l[#l + 1] = v end
  end
  return states, bad
end

-- The first difference between a and b (nil when equal).
local function diff(a, b, where)
  if type(a) ~= "table" or type(b) ~= "table" then
    if a == b then return nil end
    local function show(v)
      if type(v) == "string" and #v > 40 then return format("%q...(%d bytes)", v:sub(1, 24), #v) end
      return type(v) == "string" and format("%q", v) or tostring(v)
    end
    return format("%s: file %s, model %s", where, show(a), show(b))
  end
  for k, v in pairs(a) do
    local d = diff(v, b[k], where .. "." .. tostring(k))
    if d then return d end
  end
  for k, v in pairs(b) do
    if a[k] == nil then return diff(nil, v, where .. "." .. tostring(k)) end
  end
  return nil
end

-- ---------------------------------------------------------------------------
-- Processes

local function proc_state(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s:match("%) (%S)")
end

local function sleep(sec) os.execute(format("sleep %.3f", sec)) end

local function read_file(p)
  local f = io.open(p, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Starts worker W; returns {proc, pid, ...}.
local function start_worker(dir, path, W, start, gen)
  local w = {
    W = W, start = start,
    ack = format("%s/ack.%d.%d", dir, W, gen),
    stop = format("%s/stop.%d.%d", dir, W, gen),
    err = format("%s/err.%d.%d", dir, W, gen),
  }
  local cmd = format("exec env -u LUA_INIT -u LUA_INIT_5_4 MM3_BUILD=%s MM3_LUA=%s %s %s "
    .. "worker %s %d %d %s %s 2>%s",
    sh(build), sh(luadir), sh(LUA), sh(script), sh(path), W, start, sh(w.ack), sh(w.stop), sh(w.err))
  w.proc = assert(io.popen(cmd, "r"))
  w.pid = tonumber(w.proc:read("l"))
  if not w.pid then
    w.proc:close()
    error(format("worker %d did not start: %s", W, read_file(w.err)))
  end
  return w
end

-- Waits for w to end (it is our child: a zombie until reaped). Returns how,
-- code like io.popen's close, or nil, "timeout".
local function reap(w, timeout)
  if timeout then
    local t0 = os.time()
    while true do
      local st = proc_state(w.pid)
      if st == nil or st == "Z" or st == "X" then break end
      if os.time() - t0 > timeout then return nil, "timeout" end
      sleep(0.01)
    end
  end
  w.out = w.proc:read("a")
  local _, how, code = w.proc:close()
  w.proc = nil
  return how, code
end

local function kill9(w)
  os.execute("kill -9 " .. w.pid .. " 2>/dev/null")
  return reap(w)
end

-- The last acknowledged step (start - 1 if none) and whether the
-- acknowledgements are consecutive from start.
local function acked(w)
  local s = read_file(w.ack)
  local last, ok = w.start - 1, true
  for n in s:gmatch("(%d+)\n") do
    n = tonumber(n)
    if n ~= last + 1 then ok = false end
    last = n
  end
  return last, ok
end

-- ---------------------------------------------------------------------------
-- The driver

local function driver(kills_wanted, seed, dir, own_dir)
  math.randomseed(seed)
  local t_start = os.time()
  local clock0 = os.clock()
  local verbose = os.getenv("TORTURE_VERBOSE") == "1"
  local running = {}
  local stats = {kills = 0, ops = 0, violations = 0, rounds = 0, inflight_done = 0, inflight_none = 0,
                 peer_recoveries = 0, survivor_stops = 0, open_recoveries = 0, epochs = 0, hangs = 0,
                 worker_errors = 0, max_size = 0}
  local messages = {}
  local function violation(fmt, ...)
    stats.violations = stats.violations + 1
    local msg = format(fmt, ...)
    messages[#messages + 1] = msg
    io.stderr:write("VIOLATION: ", msg, "\n")
  end

  local function cleanup()
    for _, w in pairs(running) do
      if w.proc then pcall(kill9, w) end
    end
    running = {}
    if own_dir then os.execute("rm -rf " .. sh(dir)) else os.execute("rm -rf " .. sh(dir .. "/.lib")) end
  end

  local ok, err = xpcall(function()
    local path, gen, epoch_kills = nil, 0, 0
    local model, next_step = {}, {}
    local function new_epoch()
      if path then os.remove(path) end
      stats.epochs = stats.epochs + 1
      path = format("%s/data.%d.mm3", dir, stats.epochs)
      os.remove(path)
      local r = assert(mm.create(path, Root))
      mm.close(r)
      for W = 1, WORKERS do
        model[W] = new_model(W)
        next_step[W] = 1
      end
      epoch_kills = 0
    end
    new_epoch()

    while stats.kills < kills_wanted do
      stats.rounds = stats.rounds + 1
      gen = gen + 1
      local ws = {}
      for W = 1, WORKERS do
        ws[W] = start_worker(dir, path, W, next_step[W], gen)
        running[W] = ws[W]
      end
      -- the kill: at a random instant (the first 30 ms are mostly start-up
      -- and mm.open, recovery included)
      local r0 = math.random()
      sleep(r0 < 0.15 and math.random() * 0.03 or 0.01 + math.random() * 0.15)
      local victim = math.random(WORKERS)
      local ends = {}
      local function kill_one(w)
        local how, code = kill9(w)
        running[w.W] = nil
        if how == "signal" and code == 9 then
          stats.kills = stats.kills + 1
          epoch_kills = epoch_kills + 1
          ends[w.W] = "killed"
        else
          stats.worker_errors = stats.worker_errors + 1
          ends[w.W] = "exited"
          violation("round %d: worker %d ended (%s %s) before it was killed: %s", stats.rounds, w.W,
            tostring(how), tostring(code), read_file(w.err))
        end
      end
      kill_one(ws[victim])
      for W = 1, WORKERS do
        if W ~= victim then
          local w = ws[W]
          if stats.kills < kills_wanted and math.random() < 0.5 then
            sleep(math.random() * 0.02)
            kill_one(w)
          else
            -- let it run on a little (it recovers the victim's unfinished
            -- work as the next locker), then stop it
            sleep(0.005 + math.random() * 0.03)
            local f = assert(io.open(w.stop, "wb"))
            f:close()
            local how, code = reap(w, 60)
            if how == nil then
              stats.hangs = stats.hangs + 1
              violation("round %d: worker %d did not stop within 60 s after worker %d was killed (hang)",
                stats.rounds, W, victim)
              kill9(w)
            elseif how ~= "exit" or code ~= 0 then
              stats.worker_errors = stats.worker_errors + 1
              violation("round %d: worker %d (the survivor) ended with %s %s: %s", stats.rounds, W,
                tostring(how), tostring(code), read_file(w.err))
            else
              stats.survivor_stops = stats.survivor_stops + 1
              local rec = tonumber((w.out or ""):match("recovered (%d+)")) or 0
              stats.peer_recoveries = stats.peer_recoveries + rec
            end
            running[W] = nil
            ends[W] = "stopped"
          end
        end
      end

      -- verify
      local r, msg = mm.open(path, Root)
      local broken = false
      if r then
        local _, f = mm._core.view_info(r)
        stats.open_recoveries = stats.open_recoveries + mm._core.file_recovered(f)
      end
      if not r then
        violation("round %d: reopening failed: %s", stats.rounds, tostring(msg))
        broken = true
      else
        local sok, states, bad = pcall(snapshot, r, path)
        if not sok then
          violation("round %d: reading the file back raised: %s", stats.rounds, tostring(states))
          broken = true
        else
          for _, b in ipairs(bad) do
            violation("round %d: invariant: %s", stats.rounds, b)
            broken = true
          end
          for W = 1, WORKERS do
            local w = ws[W]
            local last, consecutive = acked(w)
            if not consecutive then
              violation("round %d: worker %d acknowledgements not consecutive", stats.rounds, W)
            end
            local m = model[W]
            for i = next_step[W], last do step(MODEL_OPS, m, W, i) end
            stats.ops = stats.ops + (last - next_step[W] + 1)
            local d0 = diff(states[W], model_state(m, W), "w" .. W)
            if d0 == nil then
              next_step[W] = last + 1
              if ends[W] == "killed" then stats.inflight_none = stats.inflight_none + 1 end
            else
              step(MODEL_OPS, m, W, last + 1)
              local d1 = diff(states[W], model_state(m, W), "w" .. W)
              if d1 == nil then
                next_step[W] = last + 2
                stats.inflight_done = stats.inflight_done + 1
              else
                violation("round %d (seed %d, epoch %d): worker %d (%s) acknowledged step %d; "
                  .. "step %d (%s) is neither absent nor complete: against step %d: %s; against step %d: %s",
                  stats.rounds, seed, stats.epochs, W, ends[W], last, last + 1, kind_of(W, last + 1),
                  last, d0, last + 1, d1)
                broken = true
              end
            end
          end
        end
        stats.max_size = math.max(stats.max_size, mm.info(r).size)
        mm.close(r)
      end
      if verbose then
        io.stdout:write(format("round %d: kills %d, steps %d/%d, %s\n", stats.rounds, stats.kills,
          next_step[1] - 1, next_step[2] - 1, broken and "BROKEN" or "ok"))
      end
      for W = 1, WORKERS do
        os.remove(ws[W].ack)
        os.remove(ws[W].stop)
        os.remove(ws[W].err)
      end
      -- a fresh file every 20 kills (growth from scratch), and after damage
      if broken or epoch_kills >= 20 then new_epoch() end
    end
    if path then os.remove(path) end
  end, debug.traceback)
  cleanup()
  local wall = os.time() - t_start
  if not ok then
    io.stderr:write("torture: ", tostring(err), "\n")
    print(format("kills %d, operations verified %d, violations %d", stats.kills, stats.ops, stats.violations))
    os.exit(2)
  end
  print(format("rounds %d, epochs %d, in-flight steps found complete %d, found absent %d, "
    .. "survivors stopped %d, rollbacks by a surviving locker %d, by the next opener %d, "
    .. "hangs %d, worker errors %d, largest file %d bytes, %d s wall, %.1f s driver CPU",
    stats.rounds, stats.epochs, stats.inflight_done, stats.inflight_none, stats.survivor_stops,
    stats.peer_recoveries, stats.open_recoveries,
    stats.hangs, stats.worker_errors, stats.max_size, wall, os.clock() - clock0))
  print(format("kills %d, operations verified %d, violations %d", stats.kills, stats.ops, stats.violations))
  os.exit(stats.violations > 0 and 1 or 0)
end

driver(KILLS, SEED, DIR, OWN_DIR)
