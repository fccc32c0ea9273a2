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

-- After each test: its directory and what it left open.
local function clean(dir)
  collectgarbage()
  rmrf(dir)
  h.cleanup()
end

describe("four processes at once", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() clean(dir) end)

  it(("%d processes x %d mixed operations under transactions and locks: every total exact")
    :format(PROCS, ITERS), function()
    local path = dir .. "/c.mm3"
    local r = assert(mm.create(path, Root))
    for a = 1, ACCOUNTS do r.acc[a] = START end
    mm.close(r)

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
      procs[p] = h.spawn_lua(wscript, { path, p, startfile }, { timeout = 300 })
    end
    local obs = h.spawn_lua(oscript, { path, startfile, stopfile }, { timeout = 300 })
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

describe("two processes on one struct", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() clean(dir) end)

  -- string<8> and bytes<4> at offsets that are multiples of their size are
  -- stored and loaded at once: the reader sees "x" or "abcdefgh", never "a"
  -- or "x" followed by NULs; and every string it gets compares equal to the
  -- same text made in Lua (a string interned from bytes that changed under
  -- Lua's hash was unequal to itself).
  it("a string field read while another process writes it: the old or the new value, never a mix", function()
    local path = dir .. "/torn.mm3"
    local TORN = [[
local mm = require "memmap3"
local S = mm.struct("TornS", {{"s", "string<8>"}, {"b", "bytes<4>"}, {"writes", "i64"}, {"stop", "i64"}})
]]
    local S = assert(load(TORN .. " return S"))()
    local v = assert(mm.create(path, S))
    v.s, v.b = "x", "\1\1\1\1"
    mm.close(v)
    local wscript = dir .. "/writer.lua"
    h.write_file(wscript, TORN .. [[
local v = assert(mm.open(..., S))
for i = 1, 300000 do
  if i % 2 == 0 then v.s, v.b = "abcdefgh", "\2\2\0\0" else v.s, v.b = "x", "\1\1\1\1" end
  v.writes = i
end
v.stop = 1
print("done")
]])
    local writer = h.spawn_lua(wscript, { path })
    local out, status, err = h.run_lua(TORN .. [[
local v = assert(mm.open(..., S))
local good = {x = true, abcdefgh = true}
local goodb = {["\1\1\1\1"] = true, ["\2\2\0\0"] = true}
local reads, seen, bad = 0, {}, {}
local deadline = os.time() + 100
while v.writes == 0 and os.time() < deadline do end
while v.stop == 0 and os.time() < deadline do
  local s, b = v.s, v.b
  reads = reads + 1
  if not good[s] then bad[#bad + 1] = ("%q"):format(s) end
  if not goodb[b] then bad[#bad + 1] = ("%q"):format(b) end
  seen[s] = true
  if #bad > 5 then break end
end
print(reads, seen.x and seen.abcdefgh and "both" or "one", table.concat(bad, " "))
]], {args = {path}})
    local wout = writer:read("a")
    writer:close()
    assert.are.equal("done\n", wout)
    assert.are.equal(0, status, err)
    local reads, both, bad = out:match("^(%d+)\t(%a+)\t(.-)\n$")
    assert.are.equal("", bad, out)
    assert.is_true(tonumber(reads) > 1000, out) -- it read while the writer ran
    assert.are.equal("both", both, out)
  end)

  -- The list is not named by the table, so it is kept: as it is when the
  -- struct is written (under the lock), not as it was when the table was
  -- read (that undid the other process's appends made in between).
  it("a struct assigned a table while another process appends to its list keeps every append", function()
    local path = dir .. "/keep.mm3"
    local KEEP = [[
local mm = require "memmap3"
local S = mm.struct("KeepS", {{"a", "i64"}, {"log", "segmented<u64>"}})
local R = mm.struct("KeepR", {{"s", S}, {"started", "i64"}, {"assigned", "i64"}})
]]
    local R = assert(load(KEEP .. " return R"))()
    mm.close(assert(mm.create(path, R)))
    local ascript = dir .. "/assigner.lua"
    h.write_file(ascript, KEEP .. [[
local r = assert(mm.open(..., R))
r.s = {a = 0}
r.started = 1
local i, deadline = 0, os.time() + 60
while r.started ~= 2 and os.time() < deadline do i = i + 1; r.s = {a = i}; r.assigned = i end
print("done " .. i)
]])
    local assigner = h.spawn_lua(ascript, { path })
    -- Appends until the other process has made enough assignments meanwhile.
    local out, status, err = h.run_lua(KEEP .. [[
local r = assert(mm.open(..., R))
local deadline = os.time() + 60
while r.started == 0 and os.time() < deadline do end
local i = 0
repeat i = i + 1; local _ = r.s.log << i until (i >= 20000 and r.assigned >= 200) or os.time() >= deadline
r.started = 2
print("appended " .. i)
]], {args = {path}})
    local aout = assigner:read("a") -- ends when the appends are done (or at its deadline)
    assigner:close()
    assert.are.equal(0, status, err)
    local appended = tonumber(out:match("^appended (%d+)"))
    assert.is_truthy(appended, out)
    local r = assert(mm.open(path, R))
    local n, ok = #r.s.log, true
    for i = 1, n do ok = ok and r.s.log[i] == i end
    mm.close(r)
    assert.are.equal(appended, n, aout)
    assert.is_true(ok)
    local assigned = tonumber(aout:match("^done (%d+)"))
    assert.is_truthy(assigned, aout)
    assert.is_true(assigned >= 200, "the assignments overlapped the appends: " .. aout)
  end)

  -- m:read and m:unpack of a raw shared map another process is writing:
  -- the bytes may be half old, half new (raw writes are plain copies), but
  -- the string is always equal to the same bytes made in Lua (Lua hashed
  -- short strings from the map, then copied bytes that had changed).
  it("raw map reads of bytes being written are proper Lua strings", function()
    local path = dir .. "/raw.bin"
    h.write_file(path, ("x"):rep(4096))
    local wscript = dir .. "/rawwriter.lua"
    -- The writer writes until the reader has read enough (byte 200), then
    -- says it stopped (byte 100).
    h.write_file(wscript, [[
local mm = require "memmap3"
local m = assert(mm.map(..., {mode = "rw"}))
local i, deadline = 0, os.time() + 60
while m:read(200, 1) ~= "r" and os.time() < deadline do
  i = i + 1
  m:write(0, i % 2 == 0 and "abcdefghijklmnop" or "0123456789ABCDEF")
end
m:write(100, "s")
print("done")
]])
    local writer = h.spawn_lua(wscript, { path })
    local out, status, err = h.run_lua([[
local mm = require "memmap3"
local m = assert(mm.map(..., {mode = "rw"}))
local reads, bad, seen, deadline = 0, 0, 0, os.time() + 100
local x16 = ("x"):rep(16)
while m:read(100, 1) ~= "s" and os.time() < deadline do
  for _, s in ipairs({m:read(0, 16), (m:unpack("c16", 0))}) do
    reads = reads + 1
    if s ~= x16 then seen = seen + 1 end
    if s ~= string.char(s:byte(1, -1)) then bad = bad + 1 end
  end
  -- enough reads of the writer's bytes (not only of the file as it was)
  if reads >= 100000 and seen >= 50000 then m:write(200, "r") end
end
print(reads, bad, seen)
]], {args = {path}})
    local wout = writer:read("a")
    writer:close()
    assert.are.equal("done\n", wout)
    assert.are.equal(0, status, err)
    local reads, bad, seen = out:match("^(%d+)\t(%d+)\t(%d+)")
    assert.is_true(tonumber(reads) >= 100000 and tonumber(seen) >= 50000, out)
    assert.are.equal("0", bad, out)
  end)
end)
