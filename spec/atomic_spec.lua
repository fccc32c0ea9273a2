-- Atomic fields (SPEC §4, §5): load, store, fetch_add, fetch_sub, fetch_and,
-- fetch_or, fetch_xor, fetch_max, fetch_min, swap, compare_exchange, atomic
-- assignment, for every integer width and bool; and real concurrency: four
-- lua5.4 processes incrementing one counter in one file.
local mm = require "memmap3"
local h = require "helpers"
local tmpdir, rmrf, raises = h.tmpdir, h.rmrf, h.raises

-- name, min, max (as Lua reads them), signed
local WIDTHS = {
  {"u8", 0, 255, false}, {"u16", 0, 65535, false}, {"u32", 0, 4294967295, false},
  {"u64", 0, -1, false}, {"usize", 0, -1, false},
  {"i8", -128, 127, true}, {"i16", -32768, 32767, true}, {"i32", -2147483648, 2147483647, true},
  {"i64", math.mininteger, math.maxinteger, true}, {"isize", math.mininteger, math.maxinteger, true},
}

local fields = {{"flag", "bool", atomic = true}}
for _, w in ipairs(WIDTHS) do fields[#fields + 1] = {w[1], w[1], atomic = true} end
fields[#fields + 1] = {"plain", "u32"}
local Atomics = mm.struct("Atomics", fields)

local Item = mm.struct("Item", {
  {"name", "string<8>"}, {"hits", "u32", atomic = true}, {"own", "u32", atomic = true},
})
local Shared = mm.struct("Shared", {
  {"ready", "u32", atomic = true}, {"counter", "u64", atomic = true}, {"items", mm.array(Item, 6)},
})

describe("atomic fields", function()
  local dir, s
  before_each(function()
    dir = tmpdir()
    s = assert(mm.create(dir .. "/a.mm3", Atomics))
  end)
  after_each(function()
    mm.close(s)
    rmrf(dir)
  end)

  it("read as memmap3.Atomic views, the same one each time", function()
    assert.matches("^memmap3.Atomic", tostring(s.u32))
    assert.is_true(rawequal(s.u32, s.u32))
    assert.equal("function", type(s.u32.fetch_add))
  end)

  for _, w in ipairs(WIDTHS) do
    local name, min, max, signed = w[1], w[2], w[3], w[4]

    describe(name, function()
      it("load and store hold the extremes", function()
        local a = s[name]
        assert.equal(0, a:load())
        a:store(max)
        assert.equal(max, a:load())
        a:store(min)
        assert.equal(min, a:load())
        a:store(1)
        assert.equal(1, a:load())
        assert.equal(1, mm.totable(s)[name])
      end)

      it("assignment is an atomic store, range-checked like store", function()
        s[name] = 5
        assert.equal(5, s[name]:load())
        if name ~= "u64" and name ~= "usize" and name ~= "i64" and name ~= "isize" then
          raises({"field '" .. name .. "'", "out of range"}, function() s[name] = max + 1 end)
          raises({"atomic field '" .. name .. "'", "out of range"}, function() s[name]:store(max + 1) end)
          raises({"atomic field '" .. name .. "'", "out of range"}, function() s[name]:store(min - 1) end)
        end
        raises({"field '" .. name .. "'", "expected an integer"}, function() s[name] = 1.5 end)
        raises({"field '" .. name .. "'", "expected an integer"}, function() s[name] = "1" end)
        raises({"atomic field '" .. name .. "'", "integer"}, function() s[name]:store(2.5) end)
        raises({"atomic field '" .. name .. "'", "expected an integer, got string"},
          function() s[name]:fetch_add("1") end)
        assert.equal(5, s[name]:load())
      end)

      it("fetch_add and fetch_sub return the old value and wrap around", function()
        local a = s[name]
        a:store(10)
        assert.equal(10, a:fetch_add(5))
        assert.equal(15, a:load())
        assert.equal(15, a:fetch_sub(20))
        -- 15 - 20 is -5 when signed, and wraps to max - 4 when unsigned
        -- (for u64, max is -1, so that is -5 as string.unpack("J") reads it)
        assert.equal(signed and -5 or max - 4, a:load())
        a:store(max)
        assert.equal(max, a:fetch_add(1))
        assert.equal(min, a:load())
        assert.equal(min, a:fetch_sub(1))
        assert.equal(max, a:load())
        raises("integer", a.fetch_add, a, 1.5)
        raises("expected", a.fetch_add, a, "x")
        assert.equal(max, a:load())
      end)

      it("fetch_and, fetch_or and fetch_xor return the old value", function()
        local a = s[name]
        a:store(12) -- 1100
        assert.equal(12, a:fetch_and(10)) -- 1000
        assert.equal(8, a:load())
        assert.equal(8, a:fetch_or(3)) -- 1011
        assert.equal(11, a:load())
        assert.equal(11, a:fetch_xor(6)) -- 1101
        assert.equal(13, a:load())
        a:store(max)
        assert.equal(max, a:fetch_xor(max))
        assert.equal(0, a:load())
      end)

      it("fetch_max and fetch_min compare as " .. (signed and "signed" or "unsigned"), function()
        local a = s[name]
        a:store(5)
        assert.equal(5, a:fetch_max(3))
        assert.equal(5, a:load())
        assert.equal(5, a:fetch_max(9))
        assert.equal(9, a:load())
        assert.equal(9, a:fetch_min(2))
        assert.equal(2, a:load())
        assert.equal(2, a:fetch_min(4))
        assert.equal(2, a:load())
        -- the top half of the range: negative if signed, large if unsigned
        local high = signed and -1 or max
        a:store(high)
        assert.equal(high, a:fetch_max(1))
        assert.equal(signed and 1 or max, a:load())
        a:store(high)
        assert.equal(high, a:fetch_min(1))
        assert.equal(signed and high or 1, a:load())
        -- min and max of the whole range
        a:store(min)
        a:fetch_max(max)
        assert.equal(max, a:load())
        a:fetch_min(min)
        assert.equal(min, a:load())
      end)

      it("swap returns the old value", function()
        local a = s[name]
        a:store(3)
        assert.equal(3, a:swap(max))
        assert.equal(max, a:swap(min))
        assert.equal(min, a:load())
      end)

      it("compare_exchange(expected, desired) -> ok, actual", function()
        local a = s[name]
        a:store(7)
        local ok, actual = a:compare_exchange(6, 8)
        assert.is_false(ok)
        assert.equal(7, actual)
        assert.equal(7, a:load())
        ok, actual = a:compare_exchange(7, max)
        assert.is_true(ok)
        assert.equal(7, actual)
        assert.equal(max, a:load())
        ok, actual = a:compare_exchange(max, min)
        assert.is_true(ok)
        assert.equal(max, actual)
        assert.equal(min, a:load())
      end)
    end)
  end

  it("fetch_add on u8 wraps around 255", function()
    s.u8 = 250
    assert.equal(250, s.u8:fetch_add(10))
    assert.equal(4, s.u8:load())
    s.u8 = 0
    assert.equal(0, s.u8:fetch_sub(1))
    assert.equal(255, s.u8:load())
  end)

  it("unsigned comparisons: u8 200 is larger than 100, u32 2^31 larger than 1", function()
    s.u8 = 200
    assert.equal(200, s.u8:fetch_max(100))
    assert.equal(200, s.u8:load())
    assert.equal(200, s.u8:fetch_min(100))
    assert.equal(100, s.u8:load())
    s.u32 = 2147483648
    s.u32:fetch_max(1)
    assert.equal(2147483648, s.u32:load())
    s.u16 = 40000
    s.u16:fetch_min(30000)
    assert.equal(30000, s.u16:load())
  end)

  it("u64: -1 is the largest value for fetch_max and fetch_min", function()
    s.u64 = -1
    assert.equal(-1, s.u64:fetch_max(5))
    assert.equal(-1, s.u64:load())
    assert.equal(-1, s.u64:fetch_min(5))
    assert.equal(5, s.u64:load())
    s.u64 = 5
    s.u64:fetch_max(math.mininteger) -- 2^63 as unsigned
    assert.equal(math.mininteger, s.u64:load())
  end)

  it("signed comparisons: i8 -5 is smaller than 3, i64 -1 smaller than 0", function()
    s.i8 = -5
    assert.equal(-5, s.i8:fetch_max(3))
    assert.equal(3, s.i8:load())
    s.i8 = -5
    s.i8:fetch_max(-7)
    assert.equal(-5, s.i8:load())
    s.i8:fetch_min(-7)
    assert.equal(-7, s.i8:load())
    s.i64 = -1
    s.i64:fetch_max(0)
    assert.equal(0, s.i64:load())
    s.i32 = -100
    s.i32:fetch_min(-200)
    assert.equal(-200, s.i32:load())
  end)

  it("signed overflow wraps: i8 127 + 1 = -128, i64 max + 1 = min", function()
    s.i8 = 127
    assert.equal(127, s.i8:fetch_add(1))
    assert.equal(-128, s.i8:load())
    s.i64 = math.maxinteger
    s.i64:fetch_add(1)
    assert.equal(math.mininteger, s.i64:load())
  end)

  it("only touches its own bytes", function()
    s.plain = 0xAABBCCDD
    s.u8 = 255
    s.u8:fetch_add(1)
    s.i16:fetch_sub(1)
    s.u64:fetch_add(1)
    s.flag = true
    assert.equal(0xAABBCCDD, s.plain)
    assert.equal(0, s.u8:load())
    assert.equal(-1, s.i16:load())
    assert.equal(0, s.u16:load())
    assert.equal(0, s.i8:load())
  end)

  describe("bool", function()
    it("load, store, assignment", function()
      local b = s.flag
      assert.is_false(b:load())
      b:store(true)
      assert.is_true(b:load())
      s.flag = false
      assert.is_false(b:load())
      raises("boolean", b.store, b, 1)
      raises({"field 'flag'", "expected a boolean"}, function() s.flag = 1 end)
      raises({"field 'flag'", "expected a boolean"}, function() s.flag = nil end)
      assert.is_false(b:load())
      assert.is_false(mm.totable(s).flag)
    end)

    it("swap, compare_exchange, fetch_and / fetch_or / fetch_xor", function()
      local b = s.flag
      assert.is_false(b:swap(true))
      assert.is_true(b:load())
      local ok, actual = b:compare_exchange(false, false)
      assert.is_false(ok)
      assert.is_true(actual)
      ok, actual = b:compare_exchange(true, false)
      assert.is_true(ok)
      assert.is_true(actual)
      assert.is_false(b:load())
      assert.is_false(b:fetch_or(true))
      assert.is_true(b:load())
      assert.is_true(b:fetch_xor(true))
      assert.is_false(b:load())
      assert.is_false(b:fetch_xor(true))
      assert.is_true(b:fetch_and(false))
      assert.is_false(b:load())
    end)

    it("rejects fetch_add, fetch_sub, fetch_max and fetch_min", function()
      local b = s.flag
      b:store(true)
      for _, op in ipairs{"fetch_add", "fetch_sub", "fetch_max", "fetch_min"} do
        raises("atomic bool", b[op], b, 1)
        raises("atomic bool", b[op], b, true)
      end
      assert.is_true(b:load())
    end)
  end)

  it("atomic fields inside an array of structs", function()
    mm.close(s)
    s = assert(mm.create(dir .. "/shared.mm3", Shared))
    s.items[3].hits = 4
    assert.equal(4, s.items[3].hits:fetch_add(2))
    assert.equal(6, s.items[3].hits:load())
    assert.equal(0, s.items[2].hits:load())
    assert.equal(0, s.items[4].hits:load())
    s.items[3] = {name = "x", hits = 9}
    assert.equal(9, s.items[3].hits:load())
    assert.equal(0, s.items[3].own:load())
    assert.equal(9, mm.totable(s.items)[3].hits)
  end)

  it("on a read-only file: load works, every write raises and changes nothing", function()
    s.u32 = 41
    s.flag = true
    mm.close(s)
    s = assert(mm.open(dir .. "/a.mm3", Atomics, {readonly = true}))
    local a = s.u32
    assert.equal(41, a:load())
    for _, op in ipairs{"store", "fetch_add", "fetch_sub", "fetch_and", "fetch_or", "fetch_xor",
                        "fetch_max", "fetch_min", "swap"} do
      raises("read-only", a[op], a, 1)
    end
    raises("read-only", a.compare_exchange, a, 41, 1)
    raises("read-only", function() s.u32 = 1 end)
    raises("read-only", s.flag.swap, s.flag, false)
    assert.equal(41, a:load())
    assert.is_true(s.flag:load())
  end)

  it("raise after the file is closed", function()
    local a = s.u64
    mm.close(s)
    raises("closed memmap3 file", a.load, a)
    raises("closed memmap3 file", a.fetch_add, a, 1)
    raises("closed memmap3 file", a.compare_exchange, a, 0, 1)
    assert.matches("closed", tostring(a))
  end)

  -- -------------------------------------------------------------------------
  describe("across processes", function()
    -- A worker: waits until all four have started, then increments.
    local WORKER = [[
      local path, what, n, me = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
      local mm = require "memmap3"
      local s = assert(mm.open(path))
      s.ready:fetch_add(1)
      local t0 = os.time()
      while s.ready:load() < 4 do
        if os.time() - t0 > 30 then error("barrier timeout") end
      end
      if what == "counter" then
        local c = s.counter
        for _ = 1, n do c:fetch_add(1) end
      else
        local shared, own = s.items[3].hits, s.items[me].own
        for _ = 1, n do
          shared:fetch_add(1)
          own:fetch_add(1)
        end
      end
      io.write("done ", me)
    ]]

    -- Starts four workers at once and waits for all of them.
    local function run4(path, what, n)
      local outs = h.run_together(dir, WORKER, {{path, what, n, 1}, {path, what, n, 2}, {path, what, n, 3},
        {path, what, n, 4}})
      for i = 1, 4 do assert.equal("done " .. i, outs[i]) end
    end

    it("4 processes x 100000 fetch_add(1) on one u64 counter give exactly 400000", function()
      mm.close(s)
      local path = dir .. "/shared.mm3"
      s = assert(mm.create(path, Shared))
      run4(path, "counter", 100000)
      assert.equal(4, s.ready:load())
      assert.equal(400000, s.counter:load())
      assert.equal(0, s.items[3].hits:load())
    end)

    it("4 processes x fetch_add on a u32 atomic inside an array of structs", function()
      mm.close(s)
      local path = dir .. "/shared.mm3"
      s = assert(mm.create(path, Shared))
      s.items[3].name = "shared"
      run4(path, "items", 50000)
      assert.equal(200000, s.items[3].hits:load())
      for i = 1, 4 do assert.equal(50000, s.items[i].own:load()) end
      for _, i in ipairs{1, 2, 4, 5, 6} do assert.equal(0, s.items[i].hits:load()) end
      assert.equal(0, s.items[5].own:load())
      assert.equal("shared", s.items[3].name)
      assert.equal(0, s.counter:load())
    end)
  end)
end)
