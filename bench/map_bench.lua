--- Raw mappings against stdio: m:read, m:unpack and m:write of a memmap3 map
-- ("rw" map of a real file) compared, in the same run and on the same file, with
-- what a Lua script does without memmap3: f:seek + f:read (+ string.unpack) and
-- f:seek + f:write.
--
-- The baseline gets stdio at its best: random access goes through unbuffered
-- handles (setvbuf "no": one read(2) or write(2) per record, measured to be
-- faster than refilling a 4 KiB buffer after every seek), sequential reading
-- through a fully buffered one that seeks only when it wraps around.
--
-- Run with `make bench`, or:
--   LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="build/?.so;;" lua5.4 bench/map_bench.lua
-- MM3_BENCH_TARGET=0.5 makes each measurement last about 0.5 s (default 0.3).
local mm = require "memmap3"
local bench = require "benchlib"

local unpack = string.unpack
local pack = string.pack

local FILE_SIZE = 16 * 1024 * 1024 -- stays in the page cache: we compare access paths, not disks
local REC = 8                      -- one "<I4I4" record
local SEQ = 64                     -- sequential read size
local NOFF = 1 << 16               -- pre-drawn random offsets, reused cyclically
local MASK = NOFF - 1

local path = os.tmpname() -- creates the file (mkstemp), in /tmp on Linux
local map, rfile, sfile, wfile

local function cleanup()
  if map then map:close() end
  for _, f in ipairs{rfile, sfile, wfile} do f:close() end
  os.remove(path)
end

local function main()
  -- The data: FILE_SIZE bytes of varied content, written with plain io.
  do
    local f = assert(io.open(path, "wb"))
    local chunk = {}
    for i = 1, 65536 / 8 do chunk[i] = pack("<I4I4", i * 2654435761 & 0xffffffff, i) end
    chunk = table.concat(chunk)
    for _ = 1, FILE_SIZE // #chunk do assert(f:write(chunk)) end
    assert(f:close())
  end

  map = assert(mm.map(path, {mode = "rw"}))
  assert(#map == FILE_SIZE)
  rfile = assert(io.open(path, "rb"))
  rfile:setvbuf("no")
  sfile = assert(io.open(path, "rb"))
  sfile:setvbuf("full")
  wfile = assert(io.open(path, "r+b"))
  wfile:setvbuf("no")

  math.randomseed(20240601)
  local offs = {}
  for i = 1, NOFF do offs[i] = math.random(0, FILE_SIZE - REC) end -- any alignment
  local recs = {}
  for i = 1, 256 do recs[i] = pack("<I4I4", i, 0xffffffff - i) end

  -- Workloads: fn(n) performs n operations. Both sides of a pair do the same work.
  local m, rf, sf, wf = map, rfile, sfile, wfile

  local function mm_read_rand(n)
    for i = 1, n do m:read(offs[(i & MASK) + 1], REC) end
  end
  local function io_read_rand(n)
    for i = 1, n do
      rf:seek("set", offs[(i & MASK) + 1])
      rf:read(REC)
    end
  end

  local function mm_unpack_rand(n)
    local sum = 0
    for i = 1, n do
      local a, b = m:unpack("<I4I4", offs[(i & MASK) + 1])
      sum = sum + a + b
    end
    return sum
  end
  local function io_unpack_rand(n)
    local sum = 0
    for i = 1, n do
      rf:seek("set", offs[(i & MASK) + 1])
      local a, b = unpack("<I4I4", rf:read(REC))
      sum = sum + a + b
    end
    return sum
  end

  -- Sequential: a stdio reader seeks only when it wraps around, as a real one would.
  local LAST = FILE_SIZE - SEQ
  local function mm_read_seq(n)
    local off = 0
    for _ = 1, n do
      m:read(off, SEQ)
      off = off + SEQ
      if off > LAST then off = 0 end
    end
  end
  local function io_read_seq(n)
    local off = 0
    sf:seek("set", 0)
    for _ = 1, n do
      sf:read(SEQ)
      off = off + SEQ
      if off > LAST then off = 0; sf:seek("set", 0) end
    end
  end

  -- Writes land in the page cache on both sides (the handle is unbuffered; the
  -- flush is kept so that nothing is left uncounted should that change).
  local function mm_write_rand(n)
    for i = 1, n do m:write(offs[(i & MASK) + 1], recs[(i & 255) + 1]) end
  end
  local function io_write_rand(n)
    for i = 1, n do
      wf:seek("set", offs[(i & MASK) + 1])
      wf:write(recs[(i & 255) + 1])
    end
    wf:flush()
  end

  -- Same answers before any timing: reads agree byte for byte, unpack sums agree,
  -- and a write through either side is seen by the other (one shared page cache).
  for i = 1, 4096 do
    local off = offs[i]
    local len = math.min(SEQ, FILE_SIZE - off)
    rf:seek("set", off)
    assert(map:read(off, len) == rf:read(len), "read mismatch")
  end
  bench.verify("unpack <I4I4 random", mm_unpack_rand, io_unpack_rand, 50000)
  mm_write_rand(1000)
  rf:seek("set", offs[1000 + 1])
  assert(rf:read(REC) == recs[(1000 & 255) + 1], "a map write is not seen by io.read")
  local probe = pack("<I4I4", 0xdeadbeef, 0xcafef00d)
  wf:seek("set", 12345)
  wf:write(probe)
  wf:flush()
  assert(map:read(12345, REC) == probe, "a file:write is not seen by the map")

  local labels = {ours = "memmap3", width = 24, base_width = 21}
  local rows = {
    {"read 8 B random", mm_read_rand, io_read_rand, "io.read"},
    {"unpack <I4I4 random", mm_unpack_rand, io_unpack_rand, "io.read+string.unpack"},
    {"read 64 B sequential", mm_read_seq, io_read_seq, "io.read"},
    {"write 8 B random", mm_write_rand, io_write_rand, "file:write"},
  }
  bench.header(string.format("raw map vs stdio (%d MiB file, ~%g s per measurement)",
                             FILE_SIZE >> 20, bench.target))
  local results = {}
  for _, row in ipairs(rows) do
    local name, ours, base = row[1], row[2], row[3]
    labels.base = row[4]
    local a = bench.measure(ours)
    local b = bench.measure(base)
    results[#results + 1] = {name, bench.report(name, a, b, labels)}
  end
  return results
end

local ok, err = xpcall(main, debug.traceback)
cleanup()
if not ok then
  io.stderr:write(err, "\n")
  os.exit(1)
end
