--- Growable hash map: 1M string-key inserts and lookups into a memmap3
-- map<string<16>, u64> (the root of a file), against a plain Lua table and
-- against SQLite through luasql (one transaction, TEXT PRIMARY KEY, one
-- conn:execute per row: luasql has no prepared statements), in the same run.
-- Every side uses the same keys, "k" .. i, built once before any timing.
--
-- Targets (issue): memmap3 within 2x a Lua table's time, for inserts and for
-- lookups; at least 30x faster than SQLite.
--
-- SQLite through luasql does about 100k rows a second, so at 1M rows one run
-- of it alone takes ~25 s. It is measured at MM3_BENCH_SQLITE_N rows (default
-- 100000) and compared per operation; a smaller B-tree is faster per row, so
-- the default favours SQLite. MM3_BENCH_SQLITE_N=1000000 measures it at 1M.
-- Times are CPU times (os.clock), which leave out SQLite's fsync at commit:
-- that also favours SQLite.
--
-- Run with `make bench`, or:
--   LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" lua5.4 bench/hashmap_bench.lua
local mm = require "memmap3"
local bench = require "benchlib"
local luasql = require "luasql.sqlite3"

local format = string.format
local clock = os.clock

local N = tonumber(os.getenv("MM3_BENCH_N")) or 1000000
local SQL_N = math.min(N, tonumber(os.getenv("MM3_BENCH_SQLITE_N")) or 100000)
local REPS = 3     -- best of, interleaved
local SQL_REPS = SQL_N >= 1000000 and 1 or 3
local MAPTYPE = "map<string<16>, u64>"

local paths = {}   -- every temporary file, removed at the end whatever happens
local maps = {}    -- open memmap3 roots
local sql_env, sql_conn

local function tmp()
  local p = os.tmpname()
  os.remove(p) -- mm.create and a fresh database want no file there
  paths[#paths + 1] = p
  return p
end

local function cleanup()
  for m in pairs(maps) do mm.close(m) end
  if sql_conn then sql_conn:close() end
  if sql_env then sql_env:close() end
  for _, p in ipairs(paths) do
    os.remove(p)
    os.remove(p .. "-journal")
  end
end

local keys = {}
for i = 1, N do keys[i] = "k" .. i end

-- CPU seconds of fn(), after a full collection; fn returns a checksum.
local function timed(fn)
  collectgarbage("collect")
  local t0 = clock()
  local sum = fn()
  return clock() - t0, sum
end

-- ---- the three sides: each rep builds a fresh container, then reads it back ----

local function mm_round()
  local p = tmp()
  local m = assert(mm.create(p, MAPTYPE))
  maps[m] = true
  local tin = timed(function()
    for i = 1, N do m[keys[i]] = i end
  end)
  assert(#m == N, "memmap3 map lost entries")
  local tget, sum = timed(function()
    local s = 0
    for i = 1, N do s = s + m[keys[i]] end
    return s
  end)
  maps[m] = nil
  mm.close(m)
  os.remove(p)
  return tin, tget, sum
end

local function table_round()
  local t
  local tin = timed(function()
    t = {}
    for i = 1, N do t[keys[i]] = i end
  end)
  local tget, sum = timed(function()
    local s = 0
    for i = 1, N do s = s + t[keys[i]] end
    return s
  end)
  return tin, tget, sum
end

local function sqlite_round()
  local p = tmp()
  sql_env = sql_env or assert(luasql.sqlite3())
  local conn = assert(sql_env:connect(p))
  sql_conn = conn
  assert(conn:execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER)"))
  assert(conn:setautocommit(false)) -- BEGIN: all inserts in one transaction
  local exec = conn.execute
  local tin = timed(function()
    for i = 1, SQL_N do
      exec(conn, "INSERT INTO kv VALUES('" .. keys[i] .. "'," .. i .. ")")
    end
    assert(conn:commit())
  end)
  local tget, sum = timed(function()
    local s = 0
    for i = 1, SQL_N do
      local cur = exec(conn, "SELECT v FROM kv WHERE k='" .. keys[i] .. "'")
      s = s + cur:fetch()
      cur:close()
    end
    return s
  end)
  conn:close()
  sql_conn = nil
  os.remove(p)
  return tin, tget, sum
end

local function main()
  local best = { mm = {}, table = {}, sqlite = {} }
  local function keep(name, tin, tget, sum)
    local b = best[name]
    b.ins = math.min(b.ins or math.huge, tin)
    b.get = math.min(b.get or math.huge, tget)
    b.sum = sum
  end
  for r = 1, REPS do
    keep("mm", mm_round())
    keep("table", table_round())
    if r <= SQL_REPS then keep("sqlite", sqlite_round()) end
  end
  -- the same work on every side: sum of the values of every key
  local want, want_sql = N * (N + 1) // 2, SQL_N * (SQL_N + 1) // 2
  assert(best.mm.sum == want and best.table.sum == want, "memmap3 and the table disagree")
  assert(best.sqlite.sum == want_sql, "sqlite returned other values")

  local rate = {}
  for name, b in pairs(best) do
    local n = name == "sqlite" and SQL_N or N
    rate[name] = { ins = n / b.ins, get = n / b.get }
  end

  bench.header(format("map<string<16>, u64>: %d keys (best of %d; SQLite: %d rows, best of %d)",
    N, REPS, SQL_N, SQL_REPS))
  for _, name in ipairs { "mm", "table", "sqlite" } do
    local b, rt = best[name], rate[name]
    print(format("%-10s inserts %10s (%.3f s)   lookups %10s (%.3f s)",
      name == "mm" and "memmap3" or name == "table" and "Lua table" or "SQLite",
      bench.rate(rt.ins), b.ins, bench.rate(rt.get), b.get))
  end

  local results = {}
  local function row(what, value, target, ok)
    results[#results + 1] = format("%-36s %7.2fx  target %-6s %s", what, value, target,
      ok and "met" or "MISSED")
  end
  local ti = rate.table.ins / rate.mm.ins -- time ratio memmap3 / table
  local tg = rate.table.get / rate.mm.get
  local si = rate.mm.ins / rate.sqlite.ins
  local sg = rate.mm.get / rate.sqlite.get
  print(format("\ntime ratio memmap3 / Lua table: inserts %.2fx, lookups %.2fx", ti, tg))
  print(format("memmap3 faster than SQLite (per operation%s): inserts %.1fx, lookups %.1fx",
    SQL_N < N and format(", SQLite at %d rows", SQL_N) or "", si, sg))
  row("inserts: time memmap3 / Lua table", ti, "<= 2x", ti <= 2)
  row("lookups: time memmap3 / Lua table", tg, "<= 2x", tg <= 2)
  row("inserts: memmap3 faster than SQLite", si, ">= 30x", si >= 30)
  row("lookups: memmap3 faster than SQLite", sg, ">= 30x", sg >= 30)
  print("\nsummary")
  for _, line in ipairs(results) do print("  " .. line) end
  -- What the 30x asks for: a plain Lua table is itself only this much faster.
  local ts = rate.table.ins / rate.sqlite.ins
  print(format("  %-36s %7.2fx  (so 30x asks for inserts %.1fx a Lua table's speed)",
    "inserts: Lua table faster than SQLite", ts, 30 / ts))
end

local ok, err = xpcall(main, debug.traceback)
cleanup()
if not ok then
  io.stderr:write(err, "\n")
  os.exit(1)
end
