-- Damaged files opened for writing (the fuzzer opens its files read-only):
-- a damaged live header field, undo log, container head or value blob must
-- give an error, never a crash, a write over other data, or gigabytes of
-- memory. Each case runs in a child lua5.4 process (a crash shows as a signal
-- exit status) and prints what it saw. These cases crashed or wrote wild
-- once (found by a helper's campaign of about 20,000 damaged files).
local h = require "helpers"

-- Byte access to the file, and an undo log entry in the format the log keeps
-- ({offset, length, old bytes padded to 8, entry size}).
local UTIL = [==[
local mm = require "memmap3"
local function rd(p, off, fmt)
  local f = assert(io.open(p, "rb")); f:seek("set", off)
  local s = f:read(string.packsize(fmt)); f:close()
  return string.unpack(fmt, s)
end
local function wr(p, off, fmt, ...)
  local f = assert(io.open(p, "r+b")); f:seek("set", off); f:write(string.pack(fmt, ...)); f:close()
end
local function wrs(p, off, s)
  local f = assert(io.open(p, "r+b")); f:seek("set", off); f:write(s); f:close()
end
local function entry(off, bytes)
  local pad = (8 - #bytes % 8) % 8
  return string.pack("<I8I8", off, #bytes) .. bytes .. string.rep("\0", pad)
    .. string.pack("<I8", 16 + #bytes + pad + 8)
end
local p = ...
-- header offsets: 144 heap_top, 552 log_off, 560 log_len, 576 retired_n, 584 retired[], 720 gaps_n
]==]

local function run(code)
  local out, status, err = h.run_lua(UTIL .. code, { args = { h.missing_path() } })
  assert.equal(0, status, "exit status " .. tostring(status) .. ": " .. tostring(err))
  return out
end

describe("a damaged file opened for writing", function()
  after_each(h.cleanup)

  it("an undo log entry naming the header's log place: recovery skips it", function()
    local out = run [[
      local S = mm.struct("S", {{"m", "map<u64, u64>"}, {"v", "vec<u64, 8>"}})
      local s = assert(mm.open(p, S, {create = true}))
      for i = 1, 10 do s.m[i] = i end
      mm.close(s)
      local log = entry(552, string.pack("<I8", 0)) -- "log_off held 0"
      wrs(p, rd(p, 552, "<I8"), log)
      wr(p, 560, "<I8", #log) -- a dead writer's log
      s = assert(mm.open(p, S))
      io.write(s.m[7], " ", tostring(mm.check(s)))
    ]]
    assert.equal("7 true", out)
  end)

  -- (before, AddressSanitizer reported memcpy-param-overlap in the replay: make sanitize)
  it("an undo log entry over the log itself is skipped", function()
    local out = run [[
      local v = assert(mm.create(p, "segmented<u64>"))
      for i = 1, 10 do _ = v << i end
      mm.close(v)
      local L = rd(p, 552, "<I8")
      local e = entry(L + 8, string.rep("A", 16))
      wrs(p, L, e)
      wr(p, 560, "<I8", #e)
      v = assert(mm.open(p))
      io.write(#v, " ", v[10], " ", tostring(mm.check(v)))
    ]]
    assert.equal("10 10 true", out)
  end)

  it("more replaced log blocks than the header holds: writes go on, the check says so", function()
    local out = run [[
      local v = assert(mm.create(p, "vec<u64, 8>"))
      _ = v << 1
      mm.close(v)
      wr(p, 576, "<I8", 1 << 40)
      wr(p, 584, "<I8", rd(p, 552, "<I8"))
      v = assert(mm.open(p))
      _ = v << 2
      local ok, why = mm.check(v)
      io.write(#v, " ", tostring(ok), " ", why)
    ]]
    assert.matches("^2 nil .*1099511627776 replaced log blocks listed, at most 16", out)
  end)

  it("a note of gaps and a heap top past the file: nothing is walked there", function()
    local out = run [[
      local v = assert(mm.create(p, "map<u64, u64>"))
      for i = 1, 10 do v[i] = i end
      mm.close(v)
      local ro, rs = rd(p, 48, "<I8I8")
      local hs = (ro + rs + 63) // 64 * 64
      wr(p, 144, "<I8", 1 << 44)
      wr(p, 720, "<I8I8I8", 1, hs, 1 << 44)
      wr(p, hs, "<I1", 31)
      v = assert(mm.open(p))
      local ok, err = pcall(function() v[99] = 1 end)
      io.write(tostring(ok), " ", tostring(err):match("corrupted") or tostring(err))
    ]]
    assert.equal("false corrupted", out)
  end)

  it("a log place inside the root: writes are refused, the root is not written over", function()
    local out = run [[
      local S = mm.struct("S", {{"n", "u64"}, {"name", "string<32>"}, {"v", "vec<u64, 8>"},
        {"m", "map<u64, u64>"}})
      local s = assert(mm.open(p, S, {create = true}))
      s.n, s.name = 42, "intact"
      _ = s.v << 1
      mm.close(s)
      wr(p, 552, "<I8", rd(p, 48, "<I8")) -- log_off: the root's offset
      s = assert(mm.open(p, S))
      local ok, err = pcall(function() s.m[1] = 1 end)
      local ok2, err2 = pcall(function() _ = s.v << 2 end)
      io.write(tostring(ok), " ", tostring(err):match("corrupted") or err, " ", tostring(ok2), " ",
        tostring(err2):match("corrupted") or err2, " ", s.n, " ", s.name, " ", #s.v)
    ]]
    assert.equal("false corrupted false corrupted 42 intact 1", out)
  end)

  it("a value whose offset names another container's block: set anew, that block not freed (a leak)",
  function()
    local out = run [[
      local S = mm.struct("S", {{"m", "map<u64, u64>"}, {"val", "value"}, {"other", "value"}})
      local s = assert(mm.open(p, S, {create = true}))
      for i = 1, 6 do s.m[i] = i end
      s.val = "x"
      mm.close(s)
      local root = rd(p, 48, "<I8")
      local tab = rd(p, root + 8, "<I8") -- the map's bucket table
      wr(p, root + 48, "<I8", tab + 8)   -- val's offset: inside the table
      s = assert(mm.open(p, S))
      s.val = "y" -- (its old block is not its own: left as it is)
      local psize = (16 << (rd(p, tab - 16, "<I8") & 0xff)) - 24 -- a value that would take the table's block
      s.other = string.rep("\255", psize - 16)
      io.write(s.val, " ", s.m[3], " ", #s.m, " ", tostring(mm.check(s)))
    ]]
    assert.equal("y 3 6 true", out)
  end)

  it("a value blob whose nested tables each announce most of its bytes: damaged, without gigabytes",
    function()
      if h.under_asan() then
        pending("skipped under AddressSanitizer (its shadow memory needs an unlimited address space)")
        return
      end
      local script = h.missing_path()
      h.write_file(script, UTIL .. [[
        local c = assert(mm.create(p, "value"))
        c.value = string.rep("x", 1 << 20)
        mm.close(c)
        local off, len = rd(p, rd(p, 48, "<I8"), "<I8I8")
        local function varint(v)
          local t = {}
          repeat
            local b = v & 0x7f
            v = v >> 7
            if v > 0 then b = b | 0x80 end
            t[#t + 1] = string.char(b)
          until v == 0
          return table.concat(t)
        end
        local parts, used = {}, 0
        for _ = 1, 100 do -- 100 nested tables, each announcing about len entries
          local s = "\7" .. varint(len - used - 16) .. varint(0)
          parts[#parts + 1] = s
          used = used + #s
        end
        wrs(p, off, table.concat(parts))
        c = assert(mm.open(p))
        local ok, err = pcall(function() return c.value end)
        io.write(tostring(ok), " ", tostring(err))
      ]])
      -- 600 MB of address space: the 1.6 GB it once took runs out (Lua: "not enough memory")
      local cmd = string.format("ulimit -v 600000 && env %s %s %s %s 2>&1", h.child_env(),
        h.shell_quote(h.lua), h.shell_quote(script), h.shell_quote(h.missing_path()))
      local out = h.capture(cmd)
      assert.matches("^false .*stored value is damaged", out)
    end)
  -- From a second campaign, aimed at the containers' insides.
  local MAP_PRE = [[
      local function rd8(o) return rd(p, o, "<I8") end
      local function wr8(o, x) wr(p, o, "<I8", x) end
  ]]

  it("chains that loop under a damaged count: lookups, the check and pairs end (they hung or grew)",
  function()
    local out = h.run_lua(UTIL .. MAP_PRE .. [[
      local v = assert(mm.open(p, "map<u64, u64>", {create = true}))
      for i = 1, 3 do v[i] = i end
      local ro = mm.info(v).root_offset
      mm.close(v)
      local tab = rd8(ro + 8)
      for b = 0, 7 do -- each chain links to itself
        local n = rd8(tab + 8 * b)
        if n ~= 0 then wr8(n, n) end
      end
      wr8(ro, 1 << 62) -- count
      v = assert(mm.open(p))
      local ok = mm.check(v)
      for k = 100, 200 do pcall(function() return v[k] end) end
      local okp, err = pcall(function() for _ in pairs(v) do end end)
      io.write(tostring(ok), " ", tostring(okp), " ", tostring(err):match("corrupted") or tostring(err))
    ]], { args = { h.missing_path() }, timeout = 60 })
    assert.equal("nil false corrupted", out)
  end)

  it("a resize whose two tables are one: refused, the file does not grow (it grew by 500 MB)", function()
    local out = run(MAP_PRE .. [[
      local v = assert(mm.open(p, "map<u64, u64>", {create = true}))
      for i = 1, 3 do v[i] = i end
      local ro = mm.info(v).root_offset
      mm.close(v)
      local tab0, lg0 = rd8(ro + 8), rd8(ro + 24) & 0xffffffff
      wr8(ro + 16, tab0)
      wr8(ro + 24, lg0 | (lg0 << 32))
      wr8(ro + 32, 1) -- a resize under way
      wr8(ro, 1 << 62) -- and a count that bounds nothing
      local size = rd8(16)
      v = assert(mm.open(p))
      local ok, err = pcall(function() v[100] = 1 end)
      io.write(tostring(ok), " ", tostring(err):match("corrupted") or err, " ", tostring(rd8(16) == size))
    ]])
    assert.equal("false corrupted true", out)
  end)

  it("offsets inside containers naming other data: refused, that data intact", function()
    local out = run(MAP_PRE .. [[
      local S = mm.struct("S", {{"name", "string<32>"}, {"m", "map<u64, u64>"}, {"s", "segmented<u64>"},
        {"t", "segmented<u64>"}})
      local res = {}
      for _, case in ipairs{"root", "schema", "arena", "lg"} do
        os.remove(p)
        local v = assert(mm.open(p, S, {create = true}))
        v.name = "intact"
        for i = 1, 5 do v.m[i] = i end
        for i = 1, 3 do _ = v.s << i end
        for i = 1, 300 do _ = v.t << i end
        local ro = mm.info(v).root_offset
        mm.close(v)
        local SG, M = ro + 80, ro + 32
        if case == "root" then wr8(SG + 8, ro); wr8(SG, 0)                 -- s.seg[0]: the root
        elseif case == "schema" then wr8(SG + 8, rd8(32)); wr8(SG, 0)      -- s.seg[0]: the schema text
        elseif case == "arena" then -- its end, past its block
          local a = rd8(M + 40)
          wr8(a + 16, rd8(a + 16) + 4096)
        else wr8(M + 24, (rd8(M + 24) & ~0xffffffff) | 12) end           -- the table's size
        v = assert(mm.open(p, S))
        for _ = 1, 3 do pcall(function() _ = v.s << 0x4141414141414141 end) end
        for i = 1, 100 do pcall(function() v.m[1000 + i] = -1 end) end
        local name = v.name
        mm.close(v)
        local back = mm.open(p, S)
        res[#res + 1] = case .. "=" .. name .. (back and "" or " (cannot reopen)")
        if back then mm.close(back) end
      end
      io.write(table.concat(res, " "))
    ]])
    assert.equal("root=intact schema=intact arena=intact lg=intact", out)
  end)

  it("a node link naming the root: the resize that moves it refuses, the root is not written", function()
    local out = run(MAP_PRE .. [[
      local S = mm.struct("S", {{"x", "u64"}, {"y", "u64"}, {"m", "map<u64, u64>"}})
      local s = assert(mm.open(p, S, {create = true}))
      s.m[0x7101] = 1
      s.m[2] = 2
      s.m[3] = 3
      local ro = mm.info(s).root_offset
      mm.close(s)
      local M = ro + 16
      local tab = rd8(M + 8)
      local node -- the node of key 0x7101: a bucket's chain whose key is it
      for b = 0, 7 do
        local n = rd8(tab + 8 * b)
        while n ~= 0 do
          if rd8(n + 16) == 0x7101 then node = n end
          n = rd8(n)
        end
      end
      wr8(node, ro)              -- its link: the root's field x
      wr8(ro, 0)                 -- x (the "node"'s own link: none)
      wr8(ro + 8, rd8(node + 8)) -- y: the "node"'s hash
      s = assert(mm.open(p, S))
      for k = 10, 13 do pcall(function() s.m[k] = k end) end -- a doubling moves the chains
      io.write(s.x, " ", tostring(mm.check(s)))
    ]])
    assert.equal("0 nil", out)
  end)

  -- The resize's prefetches read a node through a bucket not checked to be
  -- 8-aligned (UBSan, make sanitize: a misaligned load; the move itself
  -- refused it).
  it("a resize under way whose old bucket names a misaligned node: corrupted, no misaligned read", function()
    local out = run(MAP_PRE .. [[
      local m = assert(mm.create(p, "map<u64, i64>"))
      local root = mm.info(m).root_offset
      local i = 0
      repeat i = i + 1; m[i] = i until rd8(root + 32) ~= 0 -- ghead.rehash: a resize under way
      local tab0, b = rd8(root + 8), rd8(root + 32) - 1
      wr8(tab0 + 8 * b, tab0 + 1)
      local ok, err = pcall(mm.totable, m)
      io.write(tostring(ok), " ", tostring(err):match("file is corrupted") or err)
    ]])
    assert.equal("false file is corrupted", out)
  end)

  it("a damaged segmented length: refused, no gigabytes fallocated for it", function()
    local out = run(MAP_PRE .. [[
      local v = assert(mm.open(p, "segmented<u64>", {create = true}))
      for i = 1, 3 do _ = v << i end
      local ro = mm.info(v).root_offset
      mm.close(v)
      wr8(ro, 1 << 28)
      v = assert(mm.open(p))
      local ok, err = pcall(function() _ = v << 4 end)
      io.write(tostring(ok), " ", tostring(err):match("corrupted") or err, " ",
        tostring(mm.info(v).size < (16 << 20)))
    ]])
    assert.equal("false corrupted true", out)
  end)

  -- Each container alone is well formed; together they name one block, so a
  -- write to one changes the other. Only a comparison across containers can
  -- tell (mm.check said true for all three before).
  it("two containers that name one heap block: mm.check says which two, and where", function()
    local out = run(MAP_PRE .. [[
      local S = mm.struct("S", {{"a", "segmented<u64>"}, {"b", "segmented<u64>"},
        {"x", "value"}, {"y", "value"}, {"m", "map<u64, u64>"}, {"n", "map<u64, u64>"}})
      local s = assert(mm.open(p, S, {create = true}))
      for i = 1, 5 do _ = s.a << i; _ = s.b << 10 * i; s.m[i] = i; s.n[i] = i end
      s.x, s.y = "one", "two"
      assert(mm.check(s))
      local ro = mm.info(s).root_offset
      mm.close(s)
      local seg = 8 + 56 * 8            -- a segmented list's head: length, 56 segments
      local a, b, x, y = ro, ro + seg, ro + 2 * seg, ro + 2 * seg + 16
      local m, n = y + 16, y + 16 + 48  -- a map's head: 48 bytes
      wr8(a + 8, rd8(b + 8))            -- a's first segment: b's
      wr8(x, rd8(y)); wr8(x + 8, rd8(y + 8)) -- x: y's block and length
      for i = 0, 40, 8 do wr8(m + i, rd8(n + i)) end -- m: n's tables and arenas
      s = assert(mm.open(p, S))
      local ok, why = mm.check(s)
      s.a[1] = 99                       -- what the check warns of
      io.write(tostring(ok), " ", s.b[1], "\n", why)
    ]])
    local first, why = out:match("^(.-)\n(.*)$")
    assert.equal("nil 99", first)
    assert.matches("'a' and 'b' share the heap block at offset %d+", why)
    assert.matches("'x' and 'y' share the heap block at offset %d+", why)
    assert.matches("'m' and 'n' share the heap block at offset %d+", why)
  end)

  it("a vec whose count is far past its capacity: corrupted (UBSan once saw the slot's address overflow)",
  function()
    local out = run([[
      local v = assert(mm.open(p, "vec<u64, 8>", {create = true}))
      _ = v << 1
      local ro = mm.info(v).root_offset
      mm.close(v)
      wr(p, ro, "<I8", 1929114682151090848)
      v = assert(mm.open(p))
      local ok, err = pcall(function() _ = v << 2 end)
      io.write(tostring(ok), " ", tostring(err):match("vec 'root': file is corrupted") or err)
    ]])
    assert.equal("false vec 'root': file is corrupted", out)
  end)

  -- A length or count the container cannot have (a vec's or a fixed map's
  -- past its capacity, a list's past its segments) was read as the most it
  -- could be: # and mm.totable gave made-up elements, `memmap3 dump` printed
  -- them and exited 0, and a pop "mended" the length, hiding the damage.
  it("a damaged length or count: every operation that meets it raises, nothing changes; mm.clear mends it",
  function()
    local path = h.missing_path()
    for ci = 1, 4 do h.remove_later(path .. "." .. ci) end
    h.remove_later(path .. ".bad")
    local out, status, err = h.run_lua(UTIL .. [[
      local function bytes() -- but what a failed operation moves: the header's write sequence (at
        -- 152) and the undo log's bytes past its length (entries made, then rolled back)
        local f = assert(io.open(p, "rb")); local b = f:read("a"); f:close()
        local log, len, cap = string.unpack("<I8I8I8", b, 553)
        return b:sub(1, 152) .. b:sub(161, log + len) .. b:sub(log + cap + 1)
      end
      local cases = {
        {"vec<u32, 4>", 9, function(v) _ = v << 1 << 2 end, "vec 'root'"},
        {"segmented<u32>", 1000000, function(v) for i = 1, 10 do _ = v << i end end, "segmented 'root'"},
        {"map<u32, u32, 4>", 9, function(v) v[2] = 2 end, "map 'root'"},
        {"map<u32, u32>", 1 << 40, function(v) v[2] = 2 end, "map 'root'"},
      }
      for ci, c in ipairs(cases) do
        os.remove(p)
        local v = assert(mm.create(p, c[1]))
        c[3](v)
        local ro = mm.info(v).root_offset
        mm.close(v)
        wr(p, ro, "<I8", c[2])
        v = assert(mm.open(p))
        local before = bytes()
        local ops = {
          function() return #v end, function() return mm.totable(v) end,
          function() for _ in pairs(v) do end end, function() v[3] = 7 end,
        }
        if c[1]:find("map") then
          ops[#ops + 1] = function() v[9] = 9 end
          ops[#ops + 1] = function() v[2] = nil end
        else
          ops[#ops + 1] = function() for _ in ipairs(v) do end end
          ops[#ops + 1] = function() _ = v << 5 end
          ops[#ops + 1] = function() return v:pop() end
        end
        if c[1]:find("vec") then
          ops[#ops + 1] = function() v:insert(1, 5) end
          ops[#ops + 1] = function() v:remove(1) end
          ops[#ops + 1] = function() return v[2] end
        end
        if c[1]:find("segmented") then ops[#ops + 1] = function() v:truncate(2) end end
        local wrong = {}
        for i, op in ipairs(ops) do
          local ok, err = pcall(op)
          err = tostring(err) -- "vec 'root': ...", or mm.totable's "FILE: a vec<u32,4>: ..."
          if ok or not (err:find(c[4] .. ": file is corrupted", 1, true)
                        or err:find("a " .. c[1]:gsub(" ", "") .. ": file is corrupted", 1, true)) then
            wrong[#wrong + 1] = i .. ":" .. tostring(err)
          end
        end
        local same = bytes() == before
        os.execute("cp " .. p .. " " .. p .. ".bad") -- for the command below
        local _, why = mm.check(v)
        local bad = why:match("^root: " .. c[1]:match("^%a+") .. ": ") and "named" or why -- not ": vec:"
        mm.clear(v)
        io.write(c[1], " ", #wrong == 0 and "all raised" or table.concat(wrong, ","), " ",
          tostring(same), " ", bad, " ", #v, " ", tostring(mm.check(v)), "\n")
        mm.close(v)
        os.rename(p .. ".bad", p .. "." .. ci)
      end
    ]], { args = { path } })
    assert.equal(0, status, err)
    assert.equal("vec<u32, 4> all raised true named 0 true\n"
      .. "segmented<u32> all raised true named 0 true\n"
      .. "map<u32, u32, 4> all raised true named 0 true\n"
      .. "map<u32, u32> all raised true named 0 true\n", out)
    -- `memmap3 dump` printed the made-up contents and exited 0
    for ci = 1, 4 do
      local _, st, e = h.run_lua('os.exit(require("memmap3.cli").main(arg))',
        { args = { "dump", path .. "." .. ci } })
      assert.equal(1, st, ci)
      assert.matches("file is corrupted", e, 1, true)
    end
  end)
end)
