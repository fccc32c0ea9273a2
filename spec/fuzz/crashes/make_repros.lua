-- Hand-made minimal reproducers: a fresh file of the root type (one page, no
-- heap), then a few bytes patched in its data area (outside the header check).
--
--   LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/fuzz/lua/?.so;;" \
--     lua5.4 spec/fuzz/crashes/make_repros.lua spec/fuzz/crashes
--
-- (build/fuzz/lua/memmap3/core.so is made by spec/fuzz/run.sh build.) See README.md.
local mm = require "memmap3"
local dir = assert(arg[1], "usage: make_repros.lua OUTDIR")

local function make(name, t, patch)
  local p = dir .. "/" .. name
  os.remove(p)
  mm.close(assert(mm.create(p, t)))
  local f = assert(io.open(p, "r+b"))
  local hdr = f:read(1024)
  local root = string.unpack("<I8", hdr, 49)
  local function put(off, fmt, ...) f:seek("set", off) f:write(string.pack(fmt, ...)) end
  patch(root, put)
  f:close()
  print(p)
end

-- 1. growable map whose table offset is not 8-aligned: tab[0] = 2049
make("ubsan-misaligned-hmap-table.mm3", "map<u8, u8>", function(root, put)
  put(root, "<I8I8I8I4I4", 1, 2049, 0, 3, 0) -- count 1, tab[0] 2049, 2^3 buckets
end)

-- 2. growable map whose only chain loops: table at 2048, node at 2112 -> itself
make("hang-hmap-chain-loop.mm3", "map<u8, u8>", function(root, put)
  put(root, "<I8I8I8I4I4", 1, 2048, 0, 3, 0)
  put(2048, "<I8", 2112)                 -- bucket 0 -> node at 2112
  put(2112, "<I8I8BB", 2112, 0, 1, 1)    -- {next = itself, hash, key 1, value 1}
end)

-- 3. counts the file claims, used as table size hints: 8 empty growable maps
--    each claiming 2^40 entries
make("oom-hmap-count-hint.mm3", "map<u8, u8>[8]", function(root, put)
  for i = 0, 7 do put(root + 48 * i, "<I8", 1 << 40) end
end)

-- 4. the same through segmented lists: 16 empty lists each claiming 2^40 items
make("oom-segmented-len-hint.mm3", "segmented<u8>[16]", function(root, put)
  for i = 0, 15 do put(root + 456 * i, "<I8", 1 << 40) end
end)

-- 5. a stored value<16> holding a table header that claims 2^63 hash entries:
--    tag 7, array length 0, hash count 2^63 (LEB128), 12 bytes in all
make("oom-value-table-hint.mm3", mm.struct("Cell", {{"v", "value<16>"}}), function(root, put)
  put(root, "<I4", 12)
  put(root + 4, "BB", 7, 0)
  put(root + 6, ("B"):rep(10), 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)
end)

-- 6. segmented<u64> (512 items in segment 0) with a length that puts its last
--    element in segment 52: that segment's size, (512 << 52) * 8 bytes, wraps
--    to 0 in seg_ptr's bounds check, so any offset inside the file passes and
--    the element is read 2^40 * 8 bytes past it
make("segv-segmented-seg-size-wrap.mm3", "segmented<u64>", function(root, put)
  local slot = 1 << 40
  put(root, "<I8", 512 * ((1 << 52) - 1) + slot + 1) -- len: last index in segment 52
  put(root + 8 + 8 * 52, "<I8", 1024)                 -- seg[52]: an offset inside the file
end)
