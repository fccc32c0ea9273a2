--- mm.totable of arrays and sequences of scalars: every element type, sizes
-- on both sides of the batch built in one step (65536 elements), vecs,
-- segmented lists, string arrays and rings that wrap. (Damaged containers are
-- the fuzzer's: spec/fuzz/.)
local mm = require "memmap3"
local h = require "helpers"

describe("mm.totable of scalar sequences", function()
  after_each(h.cleanup)

  local function open_with(T)
    local p = h.missing_path()
    return assert(mm.create(p, T)), p
  end

  it("copies arrays of every numeric type, bool, char, string and enum element for element", function()
    local Color = mm.enum("Color", "u8", { "red", "green", "blue" })
    local cases = {
      { "u8[5]", { 0, 1, 127, 128, 255 } },
      { "i8[4]", { -128, -1, 0, 127 } },
      { "u16[3]", { 0, 65535, 300 } },
      { "i16[3]", { -32768, 32767, -2 } },
      { "u32[3]", { 0, 4294967295, 7 } },
      { "i32[3]", { -2147483648, 2147483647, -7 } },
      { "u64[3]", { 0, -1, math.maxinteger } }, -- u64 wraps as string.unpack("J") does
      { "i64[3]", { math.mininteger, 0, math.maxinteger } },
      { "f32[3]", { 0.5, -1.25, 3.0 } },
      { "f64[3]", { 0.1, -1e300, 2 ^ 53 } },
      { "bool[3]", { true, false, true } },
      { "char[3]", { "a", "é", "€" } },
      { "string<8>[3]", { "", "abc", "12345678" } },
      { mm.array(Color, 3), { "blue", "red", "green" } },
    }
    for _, c in ipairs(cases) do
      local T = mm.struct("S", { { "a", c[1] } })
      local s = open_with(T)
      s.a = c[2]
      local t = mm.totable(s.a)
      assert.are.same(c[2], t, "element type " .. tostring(c[1]))
      assert.are.equal(#c[2], #t)
      t[1] = nil -- a copy: changing it leaves the file alone
      assert.are.same(c[2][1], s.a[1])
      mm.close(s)
    end
  end)

  it("u64 elements above 2^63 read back as the integer string.unpack('J') gives", function()
    local s = open_with(mm.struct("S", { { "a", "u64[2]" } }))
    s.a[1] = -1
    s.a[2] = 5
    assert.are.same({ string.unpack("J", string.rep("\255", 8)), 5 }, mm.totable(s.a))
    mm.close(s)
  end)

  for _, n in ipairs({ 1, 65535, 65536, 65537, 200000 }) do
    it(("copies an array of %d f64 and one of %d i32 exactly (one-step batch is 65536)"):format(n, n),
      function()
        local s = open_with(mm.struct("S", { { "f", "f64[" .. n .. "]" }, { "i", "i32[" .. n .. "]" } }))
        local f, i = s.f, s.i
        for k = 1, n do
          f[k] = k + 0.5
          i[k] = -k
        end
        local tf, ti = mm.totable(f), mm.totable(i)
        assert.are.equal(n, #tf)
        assert.are.equal(n, #ti)
        for k = 1, n do
          if tf[k] ~= k + 0.5 or ti[k] ~= -k or math.type(ti[k]) ~= "integer" then
            error(("element %d: %s, %s"):format(k, tostring(tf[k]), tostring(ti[k])))
          end
        end
        assert.is_nil(tf[n + 1])
        mm.close(s)
      end)
  end

  it("copies a vec, a segmented list (past the batch) and a string_array of scalars in order", function()
    local T = mm.struct("S", {
      { "v", mm.vec("i64", 70000) },
      { "g", mm.segmented("f32") },
      { "a", mm.string_array(3, 4) },
    })
    local s = open_with(T)
    for k = 1, 70000 do s.v:push(k * 3) end
    for k = 1, 70001 do s.g:push(k / 4) end
    s.a[2] = "ab"
    local tv, tg = mm.totable(s.v), mm.totable(s.g)
    assert.are.equal(70000, #tv)
    assert.are.equal(70001, #tg)
    for k = 1, 70000 do assert(tv[k] == k * 3, k) end
    for k = 1, 70001 do assert(tg[k] == k / 4, k) end
    assert.are.same({ "", "ab", "" }, mm.totable(s.a))
    s.v:clear()
    assert.are.same({}, mm.totable(s.v))
    mm.close(s)
  end)

  it("copies a ring that has wrapped oldest to newest", function()
    local s = open_with(mm.struct("S", { { "r", mm.ring("u16", 4) } }))
    for k = 1, 10 do s.r:push(k) end
    assert.are.same({ 7, 8, 9, 10 }, mm.totable(s.r))
    mm.close(s)
  end)

  it("a struct holding arrays copies each of them deeply", function()
    local s = open_with(mm.struct("S", { { "m", "u8[2][3]" }, { "x", "f64" } }))
    s.m = { { 1, 2, 3 }, { 4, 5, 6 } }
    s.x = 1.5
    assert.are.same({ m = { { 1, 2, 3 }, { 4, 5, 6 } }, x = 1.5 }, mm.totable(s))
    mm.close(s)
  end)
  -- A field of 2^24 bytes or more, or past 2 GiB into its struct, has a
  -- descriptor of its own shape (not packed into an integer): mm.totable
  -- and mm.check took it for an enum's and crashed (SIGSEGV). Each case
  -- runs in a fresh process, so a crash is a failure, not the end of the run.
  it("copies and checks string, bytes and number fields too big or too far for a packed descriptor",
    function()
    local cases = {
      { '{{"a", "u8"}, {"big", "string<16777216>"}}', "s.big = 'hello'", "t.big == 'hello' and t.a == 1" },
      { '{{"a", "u8"}, {"big", "bytes<16777216>"}}', "s.big = 'xy'",
        "#t.big == 16777216 and t.big:sub(1, 3) == 'xy\\0' and t.a == 1" },
      { '{{"a", "u8"}, {"pad", "value<4294967295>"}, {"x", "u8"}}', "s.x = 7", "t.x == 7 and t.a == 1" },
    }
    for _, c in ipairs(cases) do
      local out, status, err = h.run_lua(([[
        local mm = require "memmap3"
        local p = os.tmpname(); os.remove(p)
        local s = assert(mm.create(p, mm.struct("Big", %s)))
        s.a = 1
        %s
        local t = mm.totable(s)
        print(%s, mm.check(s), mm.check(p))
        mm.close(s); os.remove(p)
      ]]):format(c[1], c[2], c[3]))
      assert.are.equal("", err, c[1])
      assert.are.equal(0, status, c[1])
      assert.are.equal("true\ttrue\ttrue\n", out, c[1])
    end
  end)
end)
