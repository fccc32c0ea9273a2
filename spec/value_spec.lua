-- Lua values in files (SPEC §2, §4, §5): value<N> (up to N bytes, inline)
-- and value (any size, in the file's heap) hold any Lua value without
-- functions, userdata, threads or cycles: nil, booleans, integers, floats,
-- strings and nested tables. Reading gives an equal, fresh copy. Refused
-- values raise naming the field and change nothing. Values inside structs,
-- arrays of structs, vectors, lists and maps persist into a fresh lua5.4
-- process; replaced values give their space back; a value grown by one
-- process is read by another, and a reader never sees half a write.
local mm = require "memmap3"
local h = require "helpers"
local tmpdir, rmrf, raises = h.tmpdir, h.rmrf, h.raises

-- Runs code in a fresh lua5.4 process with args; returns its stdout.
local function fresh(code, ...)
  local out, status, err = h.run_lua(code, {args = {...}})
  assert.equal("", err)
  assert.equal(0, status)
  return out
end

-- A canonical text of a Lua value (sorted keys, exact numbers with their
-- subtype), the same in this process and in children (SER is their copy).
local SER = [[
local function ser(v)
  local t = type(v)
  if t == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = {ser(k), ser(v[k])} end
    table.sort(parts, function(a, b) return a[1] < b[1] end)
    for i, p in ipairs(parts) do parts[i] = "[" .. p[1] .. "]=" .. p[2] end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif t == "number" then
    if v ~= v then return "nan" end
    if math.type(v) == "integer" then return ("i%d"):format(v) end
    if v == 0 and 1 / v < 0 then return "f-0" end
    return ("f%.17g"):format(v)
  elseif t == "string" then
    return ("%q"):format(v)
  end
  return tostring(v)
end
]]
local ser = assert(load(SER .. " return ser"))()

local run_together = h.run_together

local Rec = mm.struct("XRec", {{"id", "u8"}, {"cfg", "value<48>"}, {"any", "value"}})
local Save = mm.struct("XSave", {
  {"small", "value<64>"},
  {"any", "value"},
  {"recs", mm.array(Rec, 3)},
  {"list", "vec<value<16>, 4>"},
  {"log", "segmented<value<24>>"},
  {"by", "map<u8, value<32>>"},
  {"n", "u32"},
})

-- Scalars every value holds, and what they must read back as (same subtype).
local SCALARS = {
  true, false, 0, 1, -1, 127, -128, 128, -129, 65536, math.maxinteger, math.mininteger,
  0.5, 1.0, -0.0, 2.0 ^ 53, 1e300, -1e-300, math.huge, -math.huge, math.pi,
  "", "x", "a\0b\255", "héllo wörld",
}

describe("Lua values", function()
  local dir, s
  local function path(name) return dir .. "/" .. (name or "f.mm3") end
  before_each(function()
    dir = tmpdir()
    s = assert(mm.create(path(), Save))
  end)
  after_each(function()
    if s then mm.close(s) end
    s = nil
    collectgarbage()
    collectgarbage()
    rmrf(dir)
    h.cleanup()
  end)

  for _, field in ipairs{"small", "any"} do
    describe(field == "small" and "value<64>" or "value", function()
      it("reads nil until set, and after nil is assigned", function()
        assert.is_nil(s[field])
        s[field] = 5
        assert.equal(5, s[field])
        s[field] = nil
        assert.is_nil(s[field])
      end)

      it("booleans, integers, floats and strings read back equal, with the same number subtype", function()
        for _, v in ipairs(SCALARS) do
          s[field] = v
          local got = s[field]
          assert.equal(ser(v), ser(got))
          assert.equal(math.type(v), math.type(got))
        end
        s[field] = 0 / 0
        local nan = s[field]
        assert.is_true(nan ~= nan)
        assert.equal("float", math.type(nan))
      end)

      it("nested tables read back equal: arrays, holes, every kind of key, empty tables", function()
        local cases = {
          {},
          {1, 2, 3},
          {1, nil, 3},
          {x = 1, y = {z = "deep"}},
          {[0] = "zero", [-5] = "neg", [1.5] = "float", [true] = "yes", [false] = "no", [2 ^ 40] = 1},
          {{}, {{}}, {a = {}}},
          {"mixed", n = 2, [3] = 3.5, nested = {true, false}},
        }
        for _, v in ipairs(cases) do
          s[field] = v
          assert.equal(ser(v), ser(s[field]))
        end
      end)

      it("a table key is stored as a table too", function()
        s[field] = {[{1, 2}] = "pair"}
        local got = s[field]
        local k, v = next(got)
        assert.equal("table", type(k))
        assert.same({1, 2}, k)
        assert.equal("pair", v)
        assert.is_nil(next(got, k))
      end)

      it("each read is a fresh copy: changing it (or the original) changes nothing stored", function()
        local orig = {a = {1, 2}, b = "x"}
        s[field] = orig
        local one, two = s[field], s[field]
        assert.is_false(rawequal(one, two))
        assert.is_false(rawequal(one, orig))
        assert.is_false(rawequal(one.a, two.a))
        one.a[1] = 99
        one.c = true
        orig.b = "changed"
        assert.same({a = {1, 2}, b = "x"}, s[field])
      end)

      it("a table shared twice (not a cycle) is stored as two equal copies", function()
        local shared = {1, 2}
        s[field] = {shared, shared, k = shared}
        local got = s[field]
        assert.same({{1, 2}, {1, 2}, k = {1, 2}}, got)
        assert.is_false(rawequal(got[1], got[2]))
      end)

      it("functions, userdata, threads, cycles and nesting over 100 levels raise naming the field; "
        .. "the old value stays", function()
        s[field] = {keep = 1}
        local cyc = {}
        cyc.self = cyc
        local a, b = {}, {}
        a.b, b.a = b, a
        local function nest(levels) -- a table `levels` deep
          local t = {}
          for _ = 2, levels do t = {next = t} end
          return t
        end
        local deep = nest(101) -- one more than there may be (it was let through)
        if field == "any" then -- (100 levels take more than value<64>'s bytes)
          s[field] = nest(100)
          local levels, t = 0, s[field]
          while t do levels, t = levels + 1, t.next end
          assert.equal(100, levels)
          s[field] = {keep = 1}
        end
        local bad = {
          {print, "cannot store a function"},
          {{f = print}, "cannot store a function"},
          {{[print] = 1}, "cannot store a function"},
          {io.stdout, "cannot store a userdata"},
          {{io.stdout}, "cannot store a userdata"},
          {coroutine.create(print), "cannot store a thread"},
          {cyc, "contains itself"},
          {{a}, "contains itself"},
          {deep, "nested more than 100"},
        }
        for _, case in ipairs(bad) do
          raises({"XSave field '" .. field .. "'", case[2]}, function() s[field] = case[1] end)
          assert.same({keep = 1}, s[field])
        end
      end)

      it("persists into a fresh process, which reads an equal value", function()
        local v = {name = "ana", level = 7, tags = {"a", "b"}, z = -0.0} -- 50 bytes
        if field == "any" then
          v.more = {ratio = 0.25, flags = {[3] = true}, text = string.rep("long ", 1000)}
        end
        s[field] = v
        mm.close(s)
        s = nil
        local out = fresh(SER .. [[
          local mm = require "memmap3"
          local s = assert(mm.open(...))
          io.write(ser(s.]] .. field .. [[))
          s.]] .. field .. [[ = {from = "child", n = math.mininteger}
        ]], path())
        assert.equal(ser(v), out)
        s = assert(mm.open(path(), Save))
        assert.same({from = "child", n = math.mininteger}, s[field])
      end)

      it("on a read-only file reads work and writes raise and change nothing", function()
        s[field] = {1}
        mm.close(s)
        s = assert(mm.open(path(), Save, {readonly = true}))
        assert.same({1}, s[field])
        raises("read-only", function() s[field] = {2} end)
        raises("read-only", function() s[field] = nil end)
        assert.same({1}, s[field])
      end)
    end)
  end

  -- -------------------------------------------------------------------------
  describe("capacity", function()
    it("value<N> takes what encodes in N bytes; a byte more raises naming it, keeps the old value", function()
      -- a string of n < 128 bytes takes 1 tag byte + 1 length byte + n
      s.small = string.rep("x", 62)
      assert.equal(string.rep("x", 62), s.small)
      raises({"XSave field 'small'", "larger than its capacity (64 bytes)"},
        function() s.small = string.rep("y", 63) end)
      raises({"XSave field 'small'", "larger than its capacity"},
        function() s.small = {string.rep("y", 70)} end)
      assert.equal(string.rep("x", 62), s.small)
      local nested = {}
      for i = 1, 40 do nested[i] = i end -- 40 small integers: 2 bytes each, too many
      raises("larger than its capacity", function() s.small = nested end)
      assert.equal(string.rep("x", 62), s.small)
    end)

    it("value takes values of any size: a 4 MiB string and a table of 100000 entries", function()
      local big = string.rep("0123456789abcdef", 4 * 65536)
      s.any = big
      assert.equal(big, s.any)
      local t = {}
      for i = 1, 100000 do t[i] = {i, tostring(i)} end
      s.any = t
      local got = s.any
      assert.equal(100000, #got)
      assert.same({77777, "77777"}, got[77777])
      mm.close(s)
      s = nil
      local out = fresh([[
        local mm = require "memmap3"
        local s = assert(mm.open(...))
        io.write(#s.any, " ", s.any[100000][2])
      ]], path())
      assert.equal("100000 100000", out)
    end)

    it("replacing a value many times reuses the freed space: the file stops growing", function()
      local function churn()
        for i = 1, 200 do
          s.any = string.rep(string.char(97 + i % 26), 250000 + i * 100)
          s.recs[1 + i % 3].any = {i, string.rep("r", 1000 + i)}
        end
      end
      churn() -- sizes of the first round take their blocks
      local size = h.file_size(path())
      for _ = 1, 3 do churn() end
      assert.equal(size, h.file_size(path()))
      s.any = string.rep("b", 300000)
      s.any = string.rep("a", 300000)
      assert.equal(size, h.file_size(path()))
      s.any = nil
      s.any = string.rep("c", 300000)
      assert.equal(size, h.file_size(path()))
      assert.equal(string.rep("c", 300000), s.any)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("inside other types", function()
    it("in arrays of structs, vectors, segmented lists and maps: each its own, all persist", function()
      for i = 1, 3 do
        s.recs[i].id = i
        s.recs[i].cfg = {i = i, name = "rec" .. i}
        s.recs[i].any = {list = {i, i * 2}, big = string.rep("z", 1000 * i)}
      end
      local _ = s.list << {a = 1} << "two" << 3.5
      s.list[3] = false
      for i = 1, 1000 do s.log:push({i}) end
      s.by[1] = {x = {1}}
      local _ = s.by << {2, "two"}
      raises({"vec 'list' element", "larger than its capacity (16 bytes)"},
        s.list.push, s.list, string.rep("x", 20))
      raises({"vec 'list' element", "cannot store a function"}, s.list.push, s.list, print)
      raises({"segmented 'log' element", "contains itself"}, function()
        local c = {}
        c[1] = c
        s.log:push(c)
      end)
      raises({"map 'by' value", "larger than its capacity (32 bytes)"},
        function() s.by[3] = string.rep("m", 40) end)
      raises({"field 'cfg'", "larger than its capacity (48 bytes)"},
        function() s.recs[2].cfg = string.rep("c", 60) end)
      assert.equal(3, #s.list)
      assert.equal(1000, #s.log)
      assert.equal(2, #s.by)
      assert.same({i = 2, name = "rec2"}, s.recs[2].cfg)
      mm.close(s)
      s = nil
      local out = fresh(SER .. [[
        local mm = require "memmap3"
        local s = assert(mm.open(...))
        local parts = {}
        for i = 1, 3 do
          local r = s.recs[i]
          parts[#parts + 1] = ser({r.id, r.cfg, r.any.list, #r.any.big})
        end
        parts[#parts + 1] = ser(mm.totable(s.list))
        parts[#parts + 1] = ser({#s.log, s.log[1000]})
        parts[#parts + 1] = ser(mm.totable(s.by))
        io.write(table.concat(parts, "|"))
      ]], path())
      local want = {}
      for i = 1, 3 do
        want[#want + 1] = ser({i, {i = i, name = "rec" .. i}, {i, i * 2}, 1000 * i})
      end
      want[#want + 1] = ser({{a = 1}, "two", false})
      want[#want + 1] = ser({1000, {1000}})
      want[#want + 1] = ser({{x = {1}}, "two"})
      assert.equal(table.concat(want, "|"), out)
    end)

    it("mm.totable decodes values in place", function()
      s.small = {1, {2}}
      s.any = "big"
      s.recs[1].cfg = {k = "v"}
      local t = mm.totable(s)
      assert.same({1, {2}}, t.small)
      assert.equal("big", t.any)
      assert.same({k = "v"}, t.recs[1].cfg)
      assert.is_nil(t.recs[2].cfg)
      assert.is_nil(t.recs[2].any)
    end)

    it("a table assigned to a struct sets its value<N> field; a refused value changes nothing", function()
      s.recs[1] = {id = 1, cfg = {a = 1}}
      assert.same({a = 1}, s.recs[1].cfg)
      raises("element 1 field 'cfg': cannot store a function",
        function() s.recs[1] = {id = 2, cfg = {f = print}} end)
      raises("element 1 field 'cfg': value of",
        function() s.recs[1] = {id = 2, cfg = string.rep("x", 60)} end)
      raises("field 'recs' element 2 field 'cfg': value of",
        function() s.recs = {{}, {cfg = string.rep("x", 60)}} end)
      assert.equal(1, s.recs[1].id)
      assert.same({a = 1}, s.recs[1].cfg)
    end)

    it("a table assigned to a struct sets its growable value field too", function()
      s.recs[2] = {id = 2, any = {"anything"}}
      assert.equal(2, s.recs[2].id)
      assert.same({"anything"}, s.recs[2].any)
    end)

    it("a value<N> or a value can be a file's root (SPEC §3: the root may be any type)", function()
      for _, t in ipairs{"value<32>", "value"} do
        local p = path(t:gsub("%W", "_") .. ".mm3")
        local ok, root = pcall(mm.create, p, t)
        assert.is_true(ok, tostring(root))
        assert.is_truthy(root)
        mm.close(root)
      end
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("across processes", function()
    it("a value grown by another process is read here, by a view opened before", function()
      s.any = "small"
      local size0 = h.file_size(path())
      local out = fresh([[
        local mm = require "memmap3"
        local s = assert(mm.open(...))
        s.any = {blob = string.rep("q", 24 * 1024 * 1024), n = 1}
        io.write("stored")
      ]], path())
      assert.equal("stored", out)
      assert.is_true(h.file_size(path()) >= size0 + 24 * 1024 * 1024)
      local v = s.any
      assert.equal(1, v.n)
      assert.equal(24 * 1024 * 1024, #v.blob)
      assert.is_nil(v.blob:find("[^q]"))
    end)

    it("2 writers replacing one value while a reader reads it: every read is one whole value", function()
      local Shared = mm.struct("XShared", {
        {"ready", "u32", atomic = true}, {"finished", "u32", atomic = true}, {"v", "value"},
      })
      local p = path("shared.mm3")
      local sh = assert(mm.create(p, Shared))
      sh.v = {who = 0, i = 0, body = ""}
      -- Values grow with every write, so a reader that sizes its copy and then
      -- copies may find a bigger value in between: it must still get a whole one.
      local N = 20000
      local outs = run_together(dir, [[
        local path, me, N = arg[1], tonumber(arg[2]), tonumber(arg[3])
        local mm = require "memmap3"
        local s = assert(mm.open(path))
        s.ready:fetch_add(1)
        local t0 = os.time()
        while s.ready:load() < 3 do
          if os.time() - t0 > 30 then error("barrier timeout") end
        end
        if me > 0 then
          for i = 1, N do
            s.v = {who = me, i = i, body = string.rep(string.char(96 + me), 300 + i), sum = me * i}
          end
          s.finished:fetch_add(1)
          io.write("done")
          return
        end
        local reads, bad = 0, 0
        repeat
          local fin = s.finished:load()
          local v = s.v
          reads = reads + 1
          if v.who ~= 0 then
            local ok = v.body == string.rep(string.char(96 + v.who), 300 + v.i) and v.sum == v.who * v.i
            if not ok then bad = bad + 1 end
          end
        until fin == 2
        io.write("done ", reads, " ", bad)
      ]], {{p, 1, N}, {p, 0, N}, {p, 2, N}})
      local reads, bad = outs[2]:match("^done (%d+) (%d+)$")
      assert.is_truthy(reads, outs[2])
      assert.is_true(tonumber(reads) > 0)
      assert.equal("0", bad)
      local last = sh.v
      assert.is_true(last.who == 1 or last.who == 2)
      assert.equal(N, last.i)
      assert.equal(string.rep(string.char(96 + last.who), 300 + N), last.body)
      mm.close(sh)
    end)
  end)
end)
