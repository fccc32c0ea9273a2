--- Seed corpus for spec/fuzz/fuzz_open.c: real memmap3 files of every type,
-- each with some data in it.
--
--   lua5.4 spec/fuzz/make_corpus.lua OUTDIR
--
-- Needs memmap3 on package.path / package.cpath (run.sh sets LUA_PATH and
-- LUA_CPATH to lua/ and a plain build of memmap3.core). Writes OUTDIR/*.mm3
-- and prints how many files it made. Files stay small (a few pages) so that
-- the fuzzer's mutations land on headers, schema text and container heads
-- rather than on padding.
local mm = require "memmap3"

local dir = assert(arg[1], "usage: make_corpus.lua OUTDIR")
local count = 0

local function fresh(name)
  local p = dir .. "/" .. name .. ".mm3"
  os.remove(p)
  return p
end

local PAGE = mm.page_size

-- The heap grows the file in steps of 1 MiB: cut the file after the last
-- heap block (header offset 144, the heap top; 0 when nothing was allocated)
-- and publish that size (header offset 16, outside the header check), so a
-- seed holds only real data. The result is a valid file of the same content.
local function shrink(p)
  local f = assert(io.open(p, "rb"))
  local all = f:read("a")
  f:close()
  local size = string.unpack("<I8", all, 17)
  local root_off, root_size = string.unpack("<I8I8", all, 49)
  local top = string.unpack("<I8", all, 145)
  local log_off, log_len, log_cap = string.unpack("<I8I8I8", all, 553)
  local alloc = string.unpack("<I8", all, 545)
  local hdr = all:sub(1, 1024)
  -- An idle undo log that is the last heap block (files whose only heap
  -- block is the log: fixed-size data written by logged operations) goes
  -- too: the file is then as it was before its first logged write.
  if log_off ~= 0 and log_len == 0 and log_off + log_cap == top then
    local block = log_cap + 16
    top = log_off - 16
    if top == (root_off + root_size + 63) // 64 * 64 then top = 0 end
    hdr = hdr:sub(1, 144) .. string.pack("<I8", top) .. hdr:sub(153, 544)
      .. string.pack("<I8I8I8I8", alloc - block, 0, 0, 0) .. hdr:sub(577)
  end
  local used = math.max(top, root_off + root_size)
  local new = (used + PAGE - 1) // PAGE * PAGE
  if new >= size then return end
  f = assert(io.open(p, "wb"))
  f:write(hdr:sub(1, 16), string.pack("<I8", new), hdr:sub(25), all:sub(1025, new))
  f:close()
end

-- Creates OUTDIR/name.mm3 holding root type t, lets fill(root) write data,
-- closes it, shrinks it, and checks it reopens (read-only, schema from the
-- file) with the same contents.
local function seed(name, t, fill)
  local p = fresh(name)
  local v = assert(mm.create(p, t))
  if fill then fill(v) end
  mm.close(v)
  shrink(p)
  local back = assert(mm.open(p, {readonly = true}))
  mm.totable(back)
  mm.close(back)
  count = count + 1
end

-- ---------------------------------------------------------------------------
-- Scalars, enums, strings, arrays, nested structs, atomics
-- ---------------------------------------------------------------------------

local Color = mm.enum("Color", "u8", {"red", "green", "blue"})
local Big = mm.enum("Big", "i32", {"zero", "one", "two", "three", "four"})
local Wide = mm.enum("Wide", "u16", {"a", "b"})

local Scalars = mm.struct("Scalars", {
  {"u8", "u8"}, {"u16", "u16"}, {"u32", "u32"}, {"u64", "u64"},
  {"i8", "i8"}, {"i16", "i16"}, {"i32", "i32"}, {"i64", "i64"},
  {"f32", "f32"}, {"f64", "f64"}, {"bool", "bool"}, {"char", "char"},
  {"u128", "u128"}, {"i128", "i128"}, {"usize", "usize"}, {"isize", "isize"},
  {"name", "string<16>"}, {"raw", "bytes<8>"},
  {"color", Color}, {"big", Big}, {"wide", Wide},
  {"hits", "u64", atomic = true}, {"flag", "bool", atomic = true}, {"small", "i16", atomic = true},
})

local function fill_scalars(s)
  s.u8, s.u16, s.u32, s.u64 = 255, 65535, 4294967295, -1
  s.i8, s.i16, s.i32, s.i64 = -128, -32768, -2147483648, math.mininteger
  s.f32, s.f64, s.bool, s.char = 1.5, math.pi, true, "é"
  s.u128 = "340282366920938463463374607431768211455"
  s.i128 = "-170141183460469231731687303715884105728"
  s.usize, s.isize = 123456789, -987654321
  s.name, s.raw = "héllo wörld", "\0\1\2\255ab"
  s.color, s.big, s.wide = "blue", "four", "b"
  s.hits:fetch_add(42)
  s.flag:store(true)
  s.small:store(-7)
end

seed("scalars", Scalars, fill_scalars)
seed("scalars_zero", Scalars)

local Vec3 = mm.struct("Vec3", {{"x", "f32"}, {"y", "f32"}, {"z", "f32"}})
local Player = mm.struct("Player", {
  {"id", "u64"}, {"name", "string<12>"}, {"pos", Vec3}, {"class", Color},
  {"grid", "u8[2][3]"}, {"kills", "u32", atomic = true},
})
local World = mm.struct("World", {
  {"version", "u32"}, {"players", mm.array(Player, 3)}, {"cube", "i16[2][2][2]"},
  {"names", "string<4>[3]"}, {"s", Scalars},
})
seed("nested", World, function(w)
  w.version = 3
  w.players[1] = {
    id = 7, name = "Ana", pos = {x = 1, y = 2, z = 3}, class = "blue", grid = {{1, 2, 3}, {4, 5, 6}},
  }
  w.players[3].name = "Zoë"
  w.players[3].kills:fetch_add(9)
  w.cube[2][2][2] = -5
  w.names = {"a", "bb", "ccc"}
  fill_scalars(w.s)
end)

-- Array roots.
seed("array_u32", "u32[16]", function(a) for i = 1, 16 do a[i] = i * 1000 end end)
seed("array_struct", mm.array(Vec3, 4), function(a) a[2] = {x = -1, y = 0.5, z = 1e30} end)
seed("array_3d", "u8[4][4][4]", function(a) a[1][2][3] = 9 end)
seed("array_u128", "u128[4]", function(a) a[1] = "18446744073709551616" end)

-- ---------------------------------------------------------------------------
-- Fixed sequences: vec, ring, string_array
-- ---------------------------------------------------------------------------

local Item = mm.struct("Item", {{"id", "u32"}, {"name", "string<8>"}, {"hp", "i16"}})
local Hero = mm.struct("Hero", {
  {"id", "u32"}, {"inv", "vec<u16, 4>"}, {"recent", "ring<u64, 3>"}, {"tags", "string_array<3, 5>"},
})
local Seqs = mm.struct("Seqs", {
  {"inv", "vec<u16, 16>"},
  {"items", mm.vec(Item, 3)},
  {"big", "vec<u128, 2>"},
  {"floats", "vec<f64, 4>"},
  {"colors", mm.vec(Color, 4)},
  {"recent", "ring<u64, 4>"},
  {"events", mm.ring(Item, 2)},
  {"tags", "string_array<4, 6>"},
  {"heroes", mm.array(Hero, 2)},
  {"grid", "vec<u8, 2>[2]"},
  {"chars", "vec<char, 3>"},
})
seed("sequences", Seqs, function(s)
  for i = 1, 10 do s.inv:push(i * 7) end
  s.inv:remove(3)
  s.items:push({id = 1, name = "sword", hp = 10})
  s.items:push({id = 2, name = "shield", hp = -3})
  s.big:push("99999999999999999999999")
  s.floats:push(0.25)
  s.floats:push(-0.0)
  s.colors:push("green")
  s.colors:push("red")
  for i = 1, 7 do s.recent:push(i) end -- wrapped around
  s.events:push({id = 5, name = "x", hp = 1})
  s.events:push({id = 6, name = "y", hp = 2})
  s.events:push({id = 7, name = "z", hp = 3})
  s.tags[1], s.tags[3] = "alpha", "gamma"
  s.heroes[1].inv:push(3)
  s.heroes[1].recent:push(10)
  s.heroes[2].recent:push(1)
  s.heroes[2].recent:push(2)
  s.heroes[2].recent:push(3)
  s.heroes[2].recent:push(4)
  s.heroes[2].tags[2] = "mid"
  s.grid[1]:push(1)
  s.grid[2]:push(2)
  s.grid[2]:push(3)
  s.chars:push("a")
  s.chars:push("€")
end)
seed("sequences_empty", Seqs)

-- Container roots.
seed("root_vec", "vec<u32, 8>", function(v) for i = 1, 5 do v:push(i) end end)
seed("root_vec_struct", mm.vec(Item, 4), function(v) v:push({id = 9, name = "n", hp = 1}) end)
seed("root_vec_full", "vec<u8, 4>", function(v) for i = 1, 4 do v:push(i) end end)
seed("root_ring", "ring<i32, 5>", function(r) for i = 1, 12 do r:push(-i) end end)
seed("root_ring_struct", mm.ring(Vec3, 3), function(r) r:push({x = 1, y = 2, z = 3}) end)
seed("root_string_array", "string_array<5, 10>", function(sa) sa[1], sa[4] = "one", "four" end)

-- ---------------------------------------------------------------------------
-- Maps: fixed (inline) and growable (heap)
-- ---------------------------------------------------------------------------

local Maps = mm.struct("Maps", {
  {"ids", "map<u32, u64, 8>"},
  {"names", mm.map("string<8>", Item, 4)},
  {"neg", "map<i8, bool, 3>"},
  {"raw", "map<bytes<4>, f32, 4>"},
  {"grow", "map<i64, f64>"},
  {"words", "map<string<12>, value<16>>"},
  {"by_raw", "map<bytes<3>, u16[2]>"},
  {"wide", "map<u16, u128>"},
})
seed("maps", Maps, function(s)
  for i = 1, 6 do s.ids[i * 11] = i * 1000 end
  s.ids[22] = nil -- a freed node
  s.names.sword = {id = 1, name = "sword", hp = 3}
  s.names["é"] = {id = 2, name = "e", hp = 4}
  s.neg[-1], s.neg[0], s.neg[127] = true, false, true
  s.raw["ab\0c"] = 1.25
  for i = 1, 40 do s.grow[i * 1000003] = i / 3 end -- grown past 8 buckets
  s.grow[2000006] = nil
  s.words.alpha = {1, 2, "x"}
  s.words.beta = true
  s.words.gamma = "str"
  s.by_raw["xyz"] = {1, 2}
  s.wide[5] = "18446744073709551617"
end)
seed("maps_empty", Maps)

seed("root_fmap", "map<u16, i32, 16>", function(m)
  for i = 1, 12 do m[i] = -i end
  m[3], m[5] = nil, nil
end)
seed("root_fmap_str", "map<string<6>, u8, 8>", function(m) m.a, m.bb, m.ccc = 1, 2, 3 end)
seed("root_hmap", "map<u64, u32>", function(m)
  for i = 1, 100 do m[i * 7919] = i end
  for i = 1, 100, 3 do m[i * 7919] = nil end
end)
-- A growable map caught in the middle of a resize: 8 entries fill 8 buckets,
-- the 9th starts doubling, later operations move a few buckets each.
seed("root_hmap_rehash", "map<u32, u8>", function(m) for i = 1, 9 do m[i] = i end end)
seed("root_hmap_str", mm.map("string<10>", Vec3), function(m)
  m.one = {x = 1, y = 1, z = 1}
  m.two = {x = 2, y = 2, z = 2}
end)

-- ---------------------------------------------------------------------------
-- Segmented lists
-- ---------------------------------------------------------------------------

local Entry = mm.struct("Entry", {{"id", "u64"}, {"name", "string<12>"}, {"score", "f32"}})
local Logs = mm.struct("Logs", {
  {"ids", "segmented<i32>"},
  {"entries", mm.segmented(Entry)},
  {"big", "segmented<u8[1024]>"},
  {"vals", "segmented<value<24>>"},
})
seed("segmented", Logs, function(s)
  for i = 1, 20 do s.ids:push(-i) end
  s.entries:push({id = 1, name = "first", score = 0.5})
  s.entries:push({id = 2, name = "second", score = 1.5})
  for i = 1, 13 do s.big:push({i}) end -- segments 0 (4 items), 1 (8), 2
  s.vals:push({a = 1})
  s.vals:push("text")
  s.ids:truncate(15)
  s.entries:pop()
end)
seed("root_segmented", "segmented<u16>", function(l) for i = 1, 300 do l:push(i) end end)
seed("root_segmented_multi", "segmented<u64[64]>", function(l)
  for i = 1, 30 do l:push({i}) end -- 8, 16, then a third segment
end)

-- ---------------------------------------------------------------------------
-- Lua values: value<N> (inline) and value (heap)
-- ---------------------------------------------------------------------------

local Rec = mm.struct("Rec", {{"id", "u8"}, {"cfg", "value<48>"}, {"any", "value"}})
local Values = mm.struct("Values", {
  {"small", "value<64>"},
  {"any", "value"},
  {"nothing", "value"},
  {"recs", mm.array(Rec, 2)},
  {"list", "vec<value<16>, 4>"},
  {"by", "map<u8, value<32>>"},
  {"fixed", "map<u8, value<8>, 4>"},
  {"n", "u32"},
})
seed("values", Values, function(s)
  s.small = {1, 2.5, "three", true, false, {nested = {deep = {}}}}
  s.any = {
    int8 = -5, int = math.maxinteger, float = -1e-300, huge = math.huge, str = ("x"):rep(300),
    list = {1, 2, 3, {4, 5}}, [1] = "array part", [2] = 0.0, [true] = "bool key", [3.5] = "float key",
  }
  s.any = {replaced = "the first block goes to a free list"}
  s.recs[1].cfg = "cfg"
  s.recs[1].any = {x = 1}
  s.recs[2].cfg = 12345678901
  s.recs[2].any = ("y"):rep(1000)
  s.list:push(1)
  s.list:push("abc")
  s.list:push({1})
  s.by[1] = {"one"}
  s.by[2] = -0.0
  s.fixed[7] = false
  s.n = 7
end)
seed("root_value_vec", "vec<value<32>, 4>", function(v) v:push({k = "v"}) v:push(1.5) end)
seed("root_value_map", "map<string<8>, value<96>>", function(m)
  m.a = {1, 2, 3}
  m.b = ("long "):rep(15)
  m.c = {t = {u = {v = {}}}}
end)

-- ---------------------------------------------------------------------------
-- Everything at once, containers inside arrays of structs, and a file that
-- has grown (heap blocks freed and reused).
-- ---------------------------------------------------------------------------

local Slot = mm.struct("Slot", {
  {"v", "vec<u8, 3>"}, {"m", "map<u8, u8, 2>"}, {"g", "map<u8, u8>"}, {"l", "segmented<u8>"}, {"x", "value"},
})
local All = mm.struct("All", {
  {"head", Scalars}, {"slots", mm.array(Slot, 2)}, {"ring", "ring<u8, 2>"}, {"tags", "string_array<2, 3>"},
})
seed("all", All, function(a)
  fill_scalars(a.head)
  for i = 1, 2 do
    local s = a.slots[i]
    s.v:push(i)
    s.m[i] = i
    s.g[i] = i
    s.g[i + 10] = i
    s.l:push(i)
    s.x = {i}
  end
  a.ring:push(1)
  a.tags[2] = "ab"
end)

local Churn = mm.struct("Churn", {{"m", "map<u32, u64>"}, {"v", "value"}, {"l", "segmented<u32>"}})
seed("churn", Churn, function(s)
  for round = 1, 3 do
    for i = 1, 30 do s.m[i] = i * round end
    for i = 1, 30, 2 do s.m[i] = nil end
    for i = 1, 20 do s.v = ("v"):rep(i * 17 * round) end
  end
  for i = 1, 50 do s.l:push(i) end
  mm.clear(s.l)
  for i = 1, 5 do s.l:push(i) end
  mm.clear(s.m)
  s.m[1] = 1
  s.v = "after churn"
end)

-- A transaction that committed, and one rolled back (the undo log was used).
seed("transactions", mm.struct("Txn", {{"n", "u64"}, {"m", "map<u8, u8>"}}), function(s)
  mm.transaction(s, function(v) v.n = 1; v.m[1] = 1 end)
  pcall(mm.transaction, s, function(v) v.n = 2; v.m[2] = 2; error("undo") end)
end)

print(("make_corpus: %d files in %s"):format(count, dir))
