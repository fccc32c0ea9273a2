-- Concurrency (SPEC §5): four processes run a fixed number of mixed
-- operations on one file at once, under mm.transaction and mm.lock (plain
-- read-modify-write of non-atomic fields, transfers between accounts, map
-- inserts and removes, segmented and vec pushes, values, savepoints, aborted
-- transactions) and as single container operations. Afterwards every total
-- is exact; a fifth process checks, under the lock, that the invariants hold
-- at every instant while they run.
local mm = require "memmap3"
local h = require "helpers"
local tmpdir, rmrf = h.tmpdir, h.rmrf

local sh = h.shell_quote

local capture = h.capture

local PROCS, ITERS, ACCOUNTS, START = 4, 25000, 16, 1000

local SCHEMA = ([[
local mm = require "memmap3"
local PROCS, ITERS, ACCOUNTS, START = %d, %d, %d, %d
local Proc = mm.struct("ConcProc", {
  {"done", "i64"}, {"aborted", "i64"}, {"locked", "i64"}, {"last", "string<24>"}, {"note", "value"},
})
local Root = mm.struct("ConcRoot", {
  {"total", "i64"},             -- committed transactions, read-modify-write
  {"sum", "i64"},               -- sum of the values they added
  {"acc", mm.array("i64", ACCOUNTS)},  -- transfers keep the sum of these
  {"procs", mm.array(Proc, PROCS)},
  {"m", mm.map("u64", "i64")},  -- inserted by transactions
  {"single", mm.map("u64", "i64")},  -- single operations outside transactions
  {"log", mm.segmented("i64")}, -- one entry per committed transaction
  {"slog", mm.segmented("i64")},-- one entry per single push
  {"recent", mm.vec("i64", 64)},-- a bounded window, pushed and removed under the lock
  {"checks", "i64"},            -- invariant checks done by the observer
})
]]):format(PROCS, ITERS, ACCOUNTS, START)

local Root = assert(load(SCHEMA .. " return Root"))()

-- Worker P: ITERS iterations, each of a kind chosen from i.
local WORKER = SCHEMA .. [[
local path, P, startfile = ...
P = tonumber(P)
-- start together: wait for the start file
while not io.open(startfile, "rb") do end
local r = assert(mm.open(path, Root))
local me = r.procs[P]
local function key(i) return P * 1000000 + i end
for i = 1, ITERS do
  local k = i % 10
  if k <= 4 then
    -- a transaction: read-modify-write, a transfer, a map insert, a push,
    -- a savepoint that commits and one that fails
    mm.transaction(r, function()
      r.total = r.total + 1
      r.sum = r.sum + i
      local a, b = (P * 7 + i) % ACCOUNTS + 1, (P * 3 + i * 5) % ACCOUNTS + 1
      local x = i % 50
      r.acc[a] = r.acc[a] - x
      r.acc[b] = r.acc[b] + x
      r.m[key(i)] = i
      r.log:push(key(i))
      mm.transaction(r, function() me.done = me.done + 1 end)
      pcall(mm.transaction, r, function()
        r.total = r.total + 1000
        r.m[key(i) + 500000] = -1
        error("inner")
      end)
      me.last = "t" .. i
    end)
  elseif k == 5 then
    -- an aborted transaction: nothing of it may remain
    local ok = pcall(mm.transaction, r, function()
      r.total = r.total + 1
      r.acc[1] = r.acc[1] + 1000000
      r.m[key(i)] = -i
      r.log:push(-1)
      me.note = ("x"):rep(i)
      error("abort")
    end)
    assert(not ok)
    mm.transaction(r, function() me.aborted = me.aborted + 1 end)
  elseif k == 6 then
    -- mm.lock: several steps as one for other processes
    mm.lock(r, function()
      me.locked = me.locked + 1
      if #r.recent >= 60 then r.recent:remove(1) end
      r.recent:push(key(i))
      r.total = r.total + 1
      r.sum = r.sum + i
      r.log:push(key(i))
      r.m[key(i)] = i
    end)
  elseif k == 7 then
    -- single operations, outside any transaction
    r.single[key(i)] = i
    r.slog:push(key(i))
  elseif k == 8 then
    -- remove a key this process inserted earlier (single operation)
    r.single[key(i - 1)] = nil
    me.note = {i = i, s = ("n"):rep(i % 300)}
  else
    -- a transaction that removes one of its own earlier map entries and re-adds it
    mm.transaction(r, function()
      local j = i - 5
      local v = r.m[key(j)]
      r.m[key(j)] = nil
      r.m[key(j)] = v
      r.total = r.total + 1
      r.sum = r.sum + i
      r.log:push(key(i))
      r.m[key(i)] = i
    end)
  end
end
mm.close(r)
print("done " .. P)
]]

-- The observer: under the lock, the invariants hold whenever it looks.
local OBSERVER = SCHEMA .. [[
local path, startfile, stopfile = ...
while not io.open(startfile, "rb") do end
local r = assert(mm.open(path, Root))
local bad, looks = nil, 0
while not io.open(stopfile, "rb") do
  mm.lock(r, function()
    local s = 0
    for a = 1, ACCOUNTS do s = s + r.acc[a] end
    if s ~= ACCOUNTS * START then bad = bad or ("accounts sum to " .. s) end
    if r.total ~= #r.log then bad = bad or ("total " .. r.total .. " but " .. #r.log .. " log entries") end
    local done = 0
    for p = 1, PROCS do done = done + r.procs[p].done + r.procs[p].locked end
    if r.total - done < 0 then bad = bad or "more transactions counted than committed" end
    r.checks = r.checks + 1
  end)
  looks = looks + 1
end
mm.close(r)
print(bad and ("bad " .. bad) or ("done " .. looks))
]]

describe("four processes at once", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function()
    collectgarbage()
    rmrf(dir)
    h.cleanup()
  end)

  it(("%d processes x %d mixed operations under transactions and locks: every total exact")
    :format(PROCS, ITERS), function()
    local path = dir .. "/c.mm3"
    local r = assert(mm.create(path, Root))
    for a = 1, ACCOUNTS do r.acc[a] = START end
    mm.close(r)

    local root = capture("pwd"):match("^(.-)%s*$")
    local env = ("LUA_INIT= LUA_INIT_5_4= LUA_PATH=%s LUA_CPATH=%s"):format(
      sh(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"), sh(root .. "/" .. h.build .. "/?.so;;"))
    local function script(name, code)
      local f = assert(io.open(dir .. "/" .. name, "wb"))
      f:write(code)
      f:close()
      return dir .. "/" .. name
    end
    local wscript, oscript = script("worker.lua", WORKER), script("observer.lua", OBSERVER)
    local startfile, stopfile = dir .. "/start", dir .. "/stop"
    local procs = {}
    for p = 1, PROCS do
      procs[p] = assert(io.popen(("timeout -s KILL 300 env %s %s %s %s %d %s 2>&1"):format(
        env, sh(h.lua), sh(wscript), sh(path), p, sh(startfile))))
    end
    local obs = assert(io.popen(("timeout -s KILL 300 env %s %s %s %s %s %s 2>&1"):format(
      env, sh(h.lua), sh(oscript), sh(path), sh(startfile), sh(stopfile))))
    local t0 = os.time()
    h.write_file(startfile, "go")
    local failures = {}
    for p = 1, PROCS do
      local out = procs[p]:read("a")
      local ok, how, code = procs[p]:close()
      if not (ok and out:match("^done")) then
        failures[#failures + 1] = ("worker %d: %s %s: %s"):format(p, tostring(how), tostring(code), out)
      end
    end
    h.write_file(stopfile, "stop")
    local oout = obs:read("a")
    local ook, ohow, ocode = obs:close()
    local elapsed = os.time() - t0
    assert.are.same({}, failures)
    assert.is_true(ook, ("observer: %s %s: %s"):format(tostring(ohow), tostring(ocode), oout))
    assert.is_truthy(oout:match("^done %d+"), "observer: " .. oout)

    -- the totals, exactly
    r = assert(mm.open(path, Root))
    local TXN, ABORT, LOCK, SINGLE, DEL, RE = 0, 0, 0, 0, 0, 0
    local sum_expected = 0
    for i = 1, ITERS do
      local k = i % 10
      if k <= 4 then TXN = TXN + 1; sum_expected = sum_expected + i
      elseif k == 5 then ABORT = ABORT + 1
      elseif k == 6 then LOCK = LOCK + 1; sum_expected = sum_expected + i
      elseif k == 7 then SINGLE = SINGLE + 1
      elseif k == 8 then DEL = DEL + 1
      else RE = RE + 1; sum_expected = sum_expected + i
      end
    end
    assert.are.equal(PROCS * (TXN + LOCK + RE), r.total)
    assert.are.equal(PROCS * sum_expected, r.sum)
    local s = 0
    for a = 1, ACCOUNTS do s = s + r.acc[a] end
    assert.are.equal(ACCOUNTS * START, s)
    for p = 1, PROCS do
      assert.are.equal(TXN, r.procs[p].done)
      assert.are.equal(ABORT, r.procs[p].aborted)
      assert.are.equal(LOCK, r.procs[p].locked)
    end
    -- the map: exactly the keys of committed transactions and locks, with their values
    local n, wrong = 0, nil
    for k, v in pairs(r.m) do
      n = n + 1
      local p, i = k // 1000000, k % 1000000
      local kind = i % 10
      local committed = kind ~= 5 and kind ~= 7 and kind ~= 8
      if not (p >= 1 and p <= PROCS and i >= 1 and i <= ITERS and committed and v == i) then
        wrong = wrong or ("m[" .. k .. "] = " .. v)
      end
    end
    assert.is_nil(wrong)
    assert.are.equal(PROCS * (TXN + LOCK + RE), n)
    assert.are.equal(n, #r.m)
    -- the log: each committed transaction's entry once, in order per process
    assert.are.equal(r.total, #r.log)
    local last, seen = {}, {}
    for j = 1, #r.log do
      local e = r.log[j]
      local p, i = e // 1000000, e % 1000000
      assert(seen[e] == nil, "log entry twice: " .. e)
      seen[e] = true
      assert(p >= 1 and p <= PROCS and i > (last[p] or 0), "log entry out of order: " .. e)
      last[p] = i
    end
    -- single operations: the pushes all there; each insert then removed by the next step
    assert.are.equal(PROCS * SINGLE, #r.slog)
    local sn = 0
    for _ in pairs(r.single) do sn = sn + 1 end
    assert.are.equal(0, sn)
    assert.are.equal(0, #r.single)
    -- the window: the last 60 lock steps of all processes, no duplicates
    assert.are.equal(math.min(60, PROCS * LOCK), #r.recent)
    local cheks = r.checks
    mm.close(r)
    print(("\n    %d processes x %d operations in %d s; the observer checked the invariants %d times")
      :format(PROCS, ITERS, elapsed, cheks))
  end)
end)
