-- Lock-free readers racing a writer in another process (SPEC §5: a reader
-- never sees half an operation, and nothing undamaged reads as damaged).
-- Each test runs a writer process for a few seconds while this process
-- reads without the lock; the #slow versions run 30 seconds each
-- (`busted --exclude-tags=none --tags=slow spec/race_spec.lua`). The races they look for were found by
-- random-kill runs: a read of a segmented list being refilled raised "file is
-- corrupted" (about 10 times in 20 million reads), and mm.totable of a map
-- whose count another process's commits shrank raised "map is damaged (its
-- links loop)" (177 times in 10 s before one fix, a few a minute before the
-- next).
local mm = require "memmap3"
local h = require "helpers"

local SHORT, LONG = 4, 30

-- Starts `code` (given the file's path and the seconds to run as ...) in a
-- writer process; returns its handle (close() waits for it).
local function writer(code, path, secs)
  local script = h.tmpname(".lua")
  h.write_file(script, code)
  return h.spawn_lua(script, { path, tostring(secs) }, { timeout = secs + 60 })
end

local function segmented_refills(secs)
  local T = mm.struct("RaceSeg", { { "seg", mm.segmented("u64") } })
  local path = h.missing_path()
  local s = assert(mm.create(path, T))
  local w = writer([[
    local mm = require "memmap3"
    local path, secs = ...
    local T = mm.struct("RaceSeg", { { "seg", mm.segmented("u64") } })
    local s = assert(mm.open(path, T))
    local l = {}
    for i = 1, 3000 do l[i] = i end
    local t0 = os.time()
    -- each assignment empties the list (its segments freed) and refills it
    while os.time() - t0 < tonumber(secs) do s.seg = l end
  ]], path, secs)
  while #s.seg == 0 do end -- the writer has started
  local errs, reads, odd = {}, 0, 0
  local t0 = os.time()
  while os.time() - t0 < secs do
    for _ = 1, 1000 do
      reads = reads + 1
      local i = math.random(1, 3000)
      local ok, x = pcall(function() return s.seg[i] end)
      if not ok then errs[#errs + 1] = tostring(x)
      elseif x ~= nil and x ~= i then odd = odd + 1 end
    end
  end
  w:read("a")
  w:close()
  assert.same({}, errs)
  assert.equal(0, odd) -- an element reads as itself or nil (the list between its clear and its refill)
  assert.is_true(reads > 10000)
  assert.is_true(mm.check(s))
  mm.close(s)
end

local function map_copies(secs)
  local T = mm.struct("RaceMap", { { "m", mm.map("u64", "u64") } })
  local path = h.missing_path()
  local s = assert(mm.create(path, T))
  local w = writer([[
    local mm = require "memmap3"
    local path, secs = ...
    local T = mm.struct("RaceMap", { { "m", mm.map("u64", "u64") } })
    local s = assert(mm.open(path, T))
    local A = {}
    for i = 1, 2000 do A[i] = i end
    local t0 = os.time()
    while os.time() - t0 < tonumber(secs) do -- every step commits an undamaged map
      s.m = A
      mm.transaction(s, function(v) for i = 2001, 4000 do v.m[i] = i end end)
      mm.transaction(s, function(v) for i = 1, 3900 do v.m[i] = nil end end)
    end
  ]], path, secs)
  while #s.m == 0 do end
  local errs, copies = {}, 0
  local t0 = os.time()
  while os.time() - t0 < secs do
    copies = copies + 1
    local ok, t = pcall(mm.totable, s.m)
    if not ok then errs[#errs + 1] = tostring(t)
    else
      for k, x in pairs(t) do
        if k ~= x then errs[#errs + 1] = ("key %d holds %s"):format(k, tostring(x)) end
      end
    end
  end
  w:read("a")
  w:close()
  assert.same({}, errs)
  assert.is_true(copies > 100)
  assert.is_true(mm.check(s))
  mm.close(s)
end

describe("lock-free readers racing a writer process", function()
  after_each(h.cleanup)

  it("reads of a segmented list another process keeps emptying and refilling never raise", function()
    segmented_refills(SHORT)
  end)

  it("#slow reads of a segmented list another process keeps emptying and refilling never raise (30 s)",
    function()
      segmented_refills(LONG)
    end)

  it("mm.totable of a map whose count another process's commits grow and shrink never calls it damaged",
    function()
      map_copies(SHORT)
    end)

  it("#slow mm.totable of a map whose count another process's commits grow and shrink never calls it damaged "
    .. "(30 s)", function()
      map_copies(LONG)
    end)
end)
