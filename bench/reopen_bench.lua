--- Opening a file costs the same whatever it holds: nothing is loaded.
--
-- 1. A file holding 1M map entries (map<string<16>, u64>, keys "k" .. i) is
--    opened and closed, with its schema (mm.open(path, T), which checks the
--    layout) and without (mm.open(path), which reads the schema from the file),
--    against lua-cjson decoding a JSON object of the same 1M pairs: the work a
--    script without memmap3 does to get its data back.
-- 2. Opening (and closing) a ~1 GB file against a ~1 MB one, both a u8 array
--    root (the big one is allocated with posix_fallocate, not written).
--
-- Targets (issue): opening the 1M-entry file at least 1000x faster than
-- cjson.decode; opening 1 GB "about" what 1 MB costs, taken here as within
-- 1.5x. The opens are timed in batches (benchlib.best, interleaved); the
-- decodes one at a time, best of DECODES.
--
-- Run with `make bench`, or:
--   LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" lua5.4 bench/reopen_bench.lua
local mm = require "memmap3"
local bench = require "benchlib"
local cjson = require "cjson"

local format = string.format
local clock = os.clock

local N = tonumber(os.getenv("MM3_BENCH_N")) or 1000000
local DECODES = 3
local MAPTYPE = "map<string<16>, u64>"
local BIG, SMALL = "u8[1000000000]", "u8[1000000]"

local paths, open = {}, {}

local function tmp()
  local p = os.tmpname()
  os.remove(p) -- mm.create wants no file there
  paths[#paths + 1] = p
  return p
end

local function cleanup()
  for v in pairs(open) do mm.close(v) end
  for _, p in ipairs(paths) do os.remove(p) end
end

local function create(path, t)
  local v = assert(mm.create(path, t))
  open[v] = true
  return v
end

local function close(v)
  open[v] = nil
  mm.close(v)
end

-- fn(n): open and close the file n times; returns a checksum.
local function opener(path, t)
  return function(n)
    local x = 0
    for _ = 1, n do
      local v = assert(mm.open(path, t))
      x = x + #v
      mm.close(v)
    end
    return x
  end
end

local results = {}
local function row(what, value, target, ok)
  results[#results + 1] = format("%-40s %9.2fx  target %-8s %s", what, value, target,
    ok and "met" or "MISSED")
end

-- The 1M pairs in a memmap3 file and as a JSON text; returns the file's size
-- and the JSON (the Lua tables that built them are garbage afterwards).
local function make_data(mpath)
  local keys, plain = {}, {}
  for i = 1, N do
    keys[i] = "k" .. i
    plain[keys[i]] = i
  end
  local m = create(mpath, MAPTYPE)
  for i = 1, N do m[keys[i]] = i end
  local fsize = mm.info(m).size
  close(m)
  return fsize, cjson.encode(plain)
end

-- 1. reopening 1M entries vs decoding them
local function versus_json()
  local mpath = tmp()
  local fsize, json = make_data(mpath)
  local with_schema, without = opener(mpath, MAPTYPE), opener(mpath, nil)
  assert(with_schema(1) == N and without(1) == N, "the reopened map lost entries")
  local decode_best = math.huge
  local open_s, open_n
  for _ = 1, DECODES do
    do
      collectgarbage("collect")
      local t0 = clock()
      local t = cjson.decode(json)
      decode_best = math.min(decode_best, clock() - t0)
      assert(t["k" .. N] == N, "cjson decoded something else")
    end
    collectgarbage("collect")
    local a, b = bench.best({ with_schema, without }, 3)
    if not open_s or a.ops > open_s.ops then open_s = a end
    if not open_n or b.ops > open_n.ops then open_n = b end
  end
  local decode_ops = 1 / decode_best

  bench.header(format("reopen %d map entries (%.0f MB file) vs cjson.decode (%.0f MB of JSON)",
    N, fsize / 1e6, #json / 1e6))
  local labels = { base = "cjson.decode", width = 30, base_width = 12 }
  print(format("cjson.decode: %.3f s per decode (best of %d)", decode_best, DECODES))
  print(format("mm.open(path, T) + close: %.1f us;  mm.open(path) + close: %.1f us",
    1e6 / open_s.ops, 1e6 / open_n.ops))
  local rs = bench.report("open with schema", open_s, decode_ops, labels)
  local rn = bench.report("open without schema", open_n, decode_ops, labels)
  row("open with schema vs cjson.decode", rs, ">= 1000x", rs >= 1000)
  row("open without schema vs cjson.decode", rn, ">= 1000x", rn >= 1000)
  os.remove(mpath)
end

-- 2. a ~1 GB file and a ~1 MB one
local function big_vs_small()
  local bpath, spath = tmp(), tmp()
  close(create(bpath, BIG))
  close(create(spath, SMALL))
  local big_s, small_s = opener(bpath, BIG), opener(spath, SMALL)
  local big_n, small_n = opener(bpath, nil), opener(spath, nil)
  assert(big_s(1) == 1000000000 and small_s(1) == 1000000)
  local bs, ss, bn, sn = bench.best({ big_s, small_s, big_n, small_n }, 5)
  local function size(path)
    local f = assert(io.open(path, "rb"))
    local n = f:seek("end")
    f:close()
    return n
  end
  bench.header(format("open + close: %.3f GB file vs %.3f MB file (ratio = time 1 GB / time 1 MB)",
    size(bpath) / 1e9, size(spath) / 1e6))
  local r1, r2 = ss.ops / bs.ops, sn.ops / bn.ops
  print(format("with schema:    1 GB %.1f us, 1 MB %.1f us, ratio %.2fx", 1e6 / bs.ops, 1e6 / ss.ops, r1))
  print(format("without schema: 1 GB %.1f us, 1 MB %.1f us, ratio %.2fx", 1e6 / bn.ops, 1e6 / sn.ops, r2))
  row("open 1 GB / open 1 MB, with schema", r1, "<= 1.5x", r1 <= 1.5)
  row("open 1 GB / open 1 MB, without schema", r2, "<= 1.5x", r2 <= 1.5)
  os.remove(bpath)
  os.remove(spath)
end

local function main()
  versus_json()
  collectgarbage("collect")
  big_vs_small()
  print("\nsummary")
  for _, line in ipairs(results) do print("  " .. line) end
end

local ok, err = xpcall(main, debug.traceback)
cleanup()
if not ok then
  io.stderr:write(err, "\n")
  os.exit(1)
end
