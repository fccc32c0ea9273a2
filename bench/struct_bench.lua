--- Struct field access: memmap3 views against a plain Lua table and against the
-- cheapest C __index/__newindex possible (bench/floor.c), in the same run.
--
-- Targets (issue #3): scalar get/set within 1.25x the floor's time; a nested
-- get (three lookups, s.players[2].hp) within 3.5x a scalar get, allocating
-- nothing; mm.totable of a 1000-element array at least 4x faster than a Lua
-- loop copying it element by element.
local mm = require "memmap3"
local floor = require "floor"
local bench = require "benchlib"

local format = string.format

local Player = mm.struct("Player", { { "id", "u64" }, { "hp", "i32" }, { "name", "string<16>" } })
local Save = mm.struct("Save", {
  { "level", "i64" },
  { "players", mm.array(Player, 4) },
  { "samples", "f64[1000]" },
})

local path = os.tmpname()
os.remove(path)
local s = assert(mm.create(path, Save))
local t = { level = 0, players = { {}, { hp = 0 }, {}, {} } }
local f = floor.new()
s.players[2].hp = 7
t.players[2].hp = 7
for i = 1, 1000 do s.samples[i] = i * 0.5 end

local results = {}
local function row(name, ours, base, baselabel, target, cmp)
  local r = bench.report(name, ours, base, { base = baselabel, width = 30, base_width = 12 })
  -- ratio is ours/base in ops per second; convert to the target's sense
  local ok = cmp(r, target)
  results[#results + 1] = format("%-30s %6.2fx  target %s  %s", name, r, target, ok and "met" or "MISSED")
  return r
end

local function get_level(o)
  return function(n)
    local x = 0
    for _ = 1, n do x = x + o.level end
    return x
  end
end
local function set_level(o)
  return function(n)
    for i = 1, n do o.level = i end
    return o.level
  end
end

bench.header("struct field access (ops/s; ratio = memmap3 / other)")
local mm_get, floor_get, tbl_get = bench.best({ get_level(s), get_level(f), get_level(t) })
row("scalar get vs C floor", mm_get, floor_get, "C floor", "<= 1.25x slower",
  function(r) return 1 / r <= 1.25 end)
bench.report("scalar get vs Lua table", mm_get, tbl_get, { base = "Lua table", width = 30, base_width = 12 })

local mm_set, floor_set, tbl_set = bench.best({ set_level(s), set_level(f), set_level(t) })
row("scalar set vs C floor", mm_set, floor_set, "C floor", "<= 1.25x slower",
  function(r) return 1 / r <= 1.25 end)
bench.report("scalar set vs Lua table", mm_set, tbl_set, { base = "Lua table", width = 30, base_width = 12 })

local function nested(o)
  return function(n)
    local x = 0
    for _ = 1, n do x = x + o.players[2].hp end
    return x
  end
end
local mm_nested, mm_get2, tbl_nested = bench.best({ nested(s), get_level(s), nested(t) })
row("nested get vs scalar get", mm_nested, mm_get2, "scalar get", "<= 3.5x slower",
  function(r) return 1 / r <= 3.5 end)
bench.report("nested get vs Lua table", mm_nested, tbl_nested,
  { base = "Lua table", width = 30, base_width = 12 })

-- Allocation per nested access: none once the child views are cached.
collectgarbage("collect")
collectgarbage("stop")
local before = collectgarbage("count")
nested(s)(1000000)
local after = collectgarbage("count")
collectgarbage("restart")
local per = (after - before) * 1024 / 1000000
results[#results + 1] = format("%-30s %6.3f bytes/access  target 0  %s", "nested get allocation", per,
  per < 0.01 and "met" or "MISSED")

local arr = s.samples
local function element_get(n)
  local x = 0
  for i = 1, n do x = x + arr[(i & 511) + 1] end
  return x
end
local mm_elem, mm_get3 = bench.best({ element_get, get_level(s) })
bench.report("array element get", mm_elem, mm_get3, { base = "scalar get", width = 30, base_width = 12 })

local function totable(n)
  local x = 0
  for _ = 1, n do x = x + #mm.totable(arr) end
  return x
end
local function loop_copy(n)
  local x = 0
  for _ = 1, n do
    local c = {}
    for i = 1, #arr do c[i] = arr[i] end
    x = x + #c
  end
  return x
end
bench.verify("totable", totable, loop_copy, 3)
local mm_tot, lua_copy = bench.best({ totable, loop_copy })
row("totable(f64[1000]) vs Lua loop", mm_tot, lua_copy, "Lua loop", ">= 4x faster",
  function(r) return r >= 4 end)

mm.close(s)
os.remove(path)

print("\nsummary")
for _, line in ipairs(results) do print("  " .. line) end
