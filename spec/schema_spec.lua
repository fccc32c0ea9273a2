-- Schemas (SPEC §2): mm.struct, mm.enum, mm.array and type strings; C layout
-- rules (sizes, offsets, alignments); every bad schema raises at declaration
-- naming the field and the reason; canonical text, its round trip through
-- schema.parse_schema, and schema.diff's sentences.
local mm = require "memmap3"
local schema = require "memmap3.schema"

-- Raises an error whose message contains every phrase (plain text).
local function raises(phrases, fn, ...)
  local args = table.pack(...)
  local ok, err = pcall(fn, table.unpack(args, 1, args.n))
  assert.is_false(ok, "expected an error, got success")
  err = tostring(err)
  if type(phrases) == "string" then phrases = {phrases} end
  for _, p in ipairs(phrases) do
    assert.is_truthy(err:find(p, 1, true), ("error %q does not contain %q"):format(err, p))
  end
  return err
end

-- Declares struct A with one field x of type t (and options).
local function one(t, opts)
  local f = {"x", t}
  for k, v in pairs(opts or {}) do f[k] = v end
  return mm.struct("A", {f})
end

local PRIMS = {
  -- name, size, align
  {"u8", 1, 1}, {"u16", 2, 2}, {"u32", 4, 4}, {"u64", 8, 8}, {"u128", 16, 16},
  {"i8", 1, 1}, {"i16", 2, 2}, {"i32", 4, 4}, {"i64", 8, 8}, {"i128", 16, 16},
  {"usize", 8, 8}, {"isize", 8, 8}, {"f32", 4, 4}, {"f64", 8, 8}, {"bool", 1, 1},
  {"char", 4, 4},
}

local INTEGERS = {"u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "usize", "isize"}

describe("schemas", function()
  -- -------------------------------------------------------------------------
  describe("primitive types", function()
    for _, p in ipairs(PRIMS) do
      local name, size, align = p[1], p[2], p[3]
      it(name .. " is " .. size .. " bytes aligned to " .. align, function()
        local t = mm.type(name)
        assert.equal(size, t.size)
        assert.equal(align, t.align)
        assert.equal(name, t.canon)
        -- after a u8, the field lands on its alignment; the struct is padded
        local S = mm.struct("S", {{"pad", "u8"}, {"v", name}})
        assert.equal(0, S.fields[1].offset)
        assert.equal(align, S.fields[2].offset)
        assert.equal(align + size, S.size)
        assert.equal(align, S.align)
        assert.equal(name, S.fields[2].type.canon)
      end)
    end

    -- The stored schema text would read such a name back as the built-in
    -- (a struct "u64" became a u64: dump and check read the wrong bytes).
    it("a struct or enum may not take a built-in type's name; the error names the caller's line", function()
      for _, name in ipairs({"u64", "bool", "f32", "char", "usize", "value"}) do
        local ok, err = pcall(mm.struct, name, {{"a", "u8"}})
        assert.is_false(ok)
        assert.matches("mm.struct: '" .. name .. "' is the name of a built-in type", err, 1, true)
        ok, err = pcall(mm.enum, name, "u8", {"a"})
        assert.is_false(ok)
        assert.matches("mm.enum: '" .. name .. "' is the name of a built-in type", err, 1, true)
      end
      local ok, err = pcall(function() local t = mm.struct("S", {}); return t end)
      assert.is_false(ok)
      assert.matches("schema_spec.lua:%d+: mm.struct 'S'", err) -- the caller's line, not init.lua's
      assert.equal("struct", mm.struct("u64x", {{"a", "u8"}}).kind) -- a longer name is fine
    end)

    -- ipairs stops at a hole: what came after it was dropped without a word
    it("a field or enum name list with a hole, or with other keys, raises", function()
      local cases = {
        {"fields must be a sequence of {name, type} (entry 2 is nil)",
         function() return mm.struct("S", {{"a", "u8"}, nil, {"b", "u32"}}) end},
        {"fields must be a sequence of {name, type} (bad key x)",
         function() return mm.struct("S", {{"a", "u8"}, x = 1}) end},
        {"names must be a sequence (entry 2 is nil)",
         function() return mm.enum("E", "u8", {"x", nil, "z"}) end},
        {"names must be a sequence (bad key y)", function() return mm.enum("E", "u8", {"x", y = "y"}) end},
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(c[2])
        assert.is_false(ok)
        assert.matches(c[1], err, 1, true)
      end
    end)

    -- memmap3.schema leaves such names alone (to open files older versions
    -- made with them); a new file with one would not open without its type.
    it("no new file is made with a struct declared through memmap3.schema under a built-in name", function()
      local sc = require "memmap3.schema"
      local path = os.tmpname()
      os.remove(path)
      local inner = sc.struct("char", {{"b", "u64"}})
      for _, t in ipairs({sc.struct("value", {{"a", "u32"}}), mm.struct("Outer", {{"a", "u8"}, {"c", inner}}),
                          mm.struct("InVec", {{"v", mm.vec(inner, 2)}})}) do
        local ok, err = pcall(mm.create, path, t)
        assert.is_false(ok)
        assert.matches("is opened without its type: struct '" .. (t.name == "value" and "value" or "char")
          .. "' is named like a built-in type", err, 1, true)
        assert.is_nil(io.open(path, "rb")) -- nothing made
      end
    end)

    -- Errors of bad arguments name the line that called mm.*: the wrappers
    -- in init.lua neither add their own line nor (by a tail call) lose it.
    it("bad arguments to the API raise at the caller's line", function()
      local cases = {
        {"mm.create: expected a type", function() local v = mm.create("/nonexistent/x.mm3", 5); return v end},
        {"mm.create: unknown option 'bogus'",
          function() local v = mm.create("/nonexistent/x.mm3", "u32", {bogus = 1}); return v end},
        {"mm.create: options must be a table",
          function() local v = mm.create("/nonexistent/x.mm3", "u32", 5); return v end},
        {"mm.open: path must be a string", function() local v = mm.open(5); return v end},
        {"mm.open: option 'mode' must be permission bits", function()
          local v = mm.open("/nonexistent/x.mm3", "u32", {create = true, mode = "999"})
          return v
        end},
        {"mm.vec: vec capacity must be an integer", function() local t = mm.vec("u32"); return t end},
        {"mm.ring: ring has zero capacity", function() local t = mm.ring("u8", 0); return t end},
        {"mm.segmented: element type value is a growable type",
          function() local t = mm.segmented("value"); return t end},
        {"mm.string_array: capacity must be an integer",
          function() local t = mm.string_array(2, "x"); return t end},
        {"mm.value: value has zero capacity", function() local t = mm.value(0); return t end},
        {"mm.map: a map key must be an integer", function() local t = mm.map("f32", "u8"); return t end},
        {"mm.type: cannot parse type 'vec<u8>'", function() local t = mm.type("vec<u8>"); return t end},
        {"mm.map: unknown type 'f32x'", function() local t = mm.map("f32x", "u8"); return t end},
        {"mm.canonical: expected a type", function() local c = mm.canonical(5); return c end},
        {"mm.create: schema has two different types named 'P'", function()
          local P1, P2 = mm.struct("P", {{"a", "u8"}}), mm.struct("P", {{"a", "u16"}})
          local S = mm.struct("S", {{"x", P1}, {"y", P2}})
          local v = mm.create("/nonexistent/x.mm3", S)
          return v
        end},
        {"bad argument #1 to 'clear'", function() mm.clear({}) end},
      }
      for _, c in ipairs(cases) do
        local ok, err = pcall(c[2])
        assert.is_false(ok)
        assert.matches(c[1], err, 1, true)
        assert.matches("schema_spec%.lua:%d+: ", err)
      end
    end)

    it("mm.type returns a type object unchanged", function()
      local P = mm.struct("P", {{"a", "u8"}})
      assert.equal(P, mm.type(P))
      assert.equal(mm.type("u32"), mm.type("u32"))
    end)

    it("string<N> is N bytes aligned to 1", function()
      for _, n in ipairs{1, 5, 32, 1000} do
        local t = mm.type(("string<%d>"):format(n))
        assert.equal(n, t.size)
        assert.equal(1, t.align)
        assert.equal(("string<%d>"):format(n), t.canon)
      end
      local S = mm.struct("S", {{"a", "u8"}, {"s", "string<5>"}, {"b", "u16"}})
      assert.same({0, 1, 6}, {S.fields[1].offset, S.fields[2].offset, S.fields[3].offset})
      assert.equal(8, S.size)
    end)

    it("bytes<N> is N bytes aligned to 1", function()
      local t = mm.type("bytes<16>")
      assert.equal(16, t.size)
      assert.equal(1, t.align)
      assert.equal("bytes<16>", t.canon)
      local S = mm.struct("S", {{"a", "u8"}, {"salt", "bytes<3>"}, {"b", "u32"}})
      assert.same({0, 1, 4}, {S.fields[1].offset, S.fields[2].offset, S.fields[3].offset})
      assert.equal(8, S.size)
    end)

    it("type strings may have spaces around brackets and capacities", function()
      assert.equal("u8[3]", mm.type(" u8 [ 3 ] ").canon)
      assert.equal("string<4>", mm.type("string< 4 >").canon)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("arrays", function()
    it("u8[16][16][4] is 16 arrays of 16 arrays of 4 bytes (C order)", function()
      local t = mm.type("u8[16][16][4]")
      assert.equal(1024, t.size)
      assert.equal(1, t.align)
      assert.equal("u8[16][16][4]", t.canon)
      assert.equal(16, t.n)
      assert.equal("u8[16][4]", t.elem.canon)
      assert.equal(16, t.elem.n)
      assert.equal("u8[4]", t.elem.elem.canon)
      assert.equal(4, t.elem.elem.n)
      assert.equal(mm.type("u8"), t.elem.elem.elem)
    end)

    it("an array has its element's alignment and n times its size", function()
      local t = mm.type("u64[3]")
      assert.equal(24, t.size)
      assert.equal(8, t.align)
      local S = mm.struct("S", {{"a", "u8"}, {"v", "u16[3]"}, {"b", "u8"}})
      assert.same({0, 2, 8}, {S.fields[1].offset, S.fields[2].offset, S.fields[3].offset})
      assert.equal(10, S.size)
    end)

    it("mm.array(Player, 4) is 4 players, padding included", function()
      local Player = mm.struct("Player", {{"id", "u64"}, {"lvl", "u8"}})
      assert.equal(16, Player.size)
      local t = mm.array(Player, 4)
      assert.equal(4, t.n)
      assert.equal(Player, t.elem)
      assert.equal(64, t.size)
      assert.equal(8, t.align)
      assert.equal("Player[4]", t.canon)
    end)

    it("mm.array(T, 2, 3) is T[2][3]: 2 arrays of 3", function()
      local T = mm.struct("T", {{"a", "u16"}, {"b", "u8"}})
      local t = mm.array(T, 2, 3)
      assert.equal("T[2][3]", t.canon)
      assert.equal(2, t.n)
      assert.equal("T[3]", t.elem.canon)
      assert.equal(3, t.elem.n)
      assert.equal(T, t.elem.elem)
      assert.equal(6 * T.size, t.size)
      assert.equal(mm.type("u8[2][3]").canon, mm.array("u8", 2, 3).canon)
    end)

    it("mm.array of an array adds the outer dimension first", function()
      local t = mm.array(mm.array("u8", 4), 2)
      assert.equal("u8[2][4]", t.canon)
      assert.equal(2, t.n)
      assert.equal(4, t.elem.n)
    end)

    it("arrays of strings, bytes, bools and chars", function()
      assert.equal(15, mm.type("string<5>[3]").size)
      assert.equal(1, mm.type("string<5>[3]").align)
      assert.equal(8, mm.type("bytes<2>[2][2]").size)
      assert.equal(7, mm.type("bool[7]").size)
      assert.equal(12, mm.type("char[3]").size)
      assert.equal(4, mm.type("char[3]").align)
    end)

    it("arrays of u128 keep 16-byte alignment", function()
      local S = mm.struct("S", {{"a", "u8"}, {"v", "u128[2]"}})
      assert.equal(16, S.fields[2].offset)
      assert.equal(48, S.size)
      assert.equal(16, S.align)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("structs", function()
    it("lays fields out in declaration order with C padding", function()
      local S = mm.struct("S", {
        {"a", "u8"}, {"b", "u64"}, {"c", "u16"}, {"d", "u8"}, {"e", "u32"}, {"f", "u8"},
      })
      local offs = {}
      for i, f in ipairs(S.fields) do offs[i] = f.offset end
      assert.same({0, 8, 16, 18, 20, 24}, offs)
      assert.equal(32, S.size) -- tail padding to the alignment of u64
      assert.equal(8, S.align)
      assert.same({"a", "b", "c", "d", "e", "f"}, {
        S.fields[1].name, S.fields[2].name, S.fields[3].name,
        S.fields[4].name, S.fields[5].name, S.fields[6].name,
      })
    end)

    it("u128 makes a struct 16-aligned", function()
      local S = mm.struct("S", {{"a", "u8"}, {"b", "u128"}, {"c", "u8"}})
      assert.same({0, 16, 32}, {S.fields[1].offset, S.fields[2].offset, S.fields[3].offset})
      assert.equal(48, S.size)
      assert.equal(16, S.align)
      local I = mm.struct("I", {{"a", "i8"}, {"b", "i128"}})
      assert.equal(32, I.size)
      assert.equal(16, I.align)
    end)

    it("char is a 4-byte code point", function()
      local S = mm.struct("S", {{"a", "u8"}, {"c", "char"}, {"b", "u8"}})
      assert.same({0, 4, 8}, {S.fields[1].offset, S.fields[2].offset, S.fields[3].offset})
      assert.equal(12, S.size)
    end)

    it("nested structs are placed at their own alignment and keep their padding", function()
      local Inner = mm.struct("Inner", {{"a", "u8"}, {"b", "u32"}, {"c", "u8"}})
      assert.equal(12, Inner.size)
      assert.equal(4, Inner.align)
      local Outer = mm.struct("Outer", {{"x", "u8"}, {"in", Inner}, {"y", "u8"}, {"arr", mm.array(Inner, 2)}})
      assert.same({0, 4, 16, 20}, {
        Outer.fields[1].offset, Outer.fields[2].offset, Outer.fields[3].offset, Outer.fields[4].offset,
      })
      assert.equal(44, Outer.size)
      assert.equal(4, Outer.align)
      assert.equal(Inner, Outer.fields[2].type)
      assert.equal(Inner, Outer.index["in"].type)
    end)

    it("a struct of only bytes has size equal to the sum and alignment 1", function()
      local S = mm.struct("S", {{"a", "u8"}, {"b", "bool"}, {"c", "string<3>"}})
      assert.equal(5, S.size)
      assert.equal(1, S.align)
    end)

    it("fields can be looked up by name in t.index", function()
      local S = mm.struct("S", {{"a", "u8"}, {"b", "u32"}})
      assert.equal(4, S.index.b.offset)
      assert.equal("u32", S.index.b.type.canon)
      assert.is_nil(S.index.c)
    end)

    for _, name in ipairs(INTEGERS) do
      it("atomic = true is accepted on " .. name .. " and does not change the layout", function()
        local S = mm.struct("S", {{"a", "u8"}, {"n", name, atomic = true}})
        local P = mm.struct("S", {{"a", "u8"}, {"n", name}})
        assert.is_true(S.fields[2].atomic)
        assert.is_false(P.fields[2].atomic)
        assert.equal(P.fields[2].offset, S.fields[2].offset)
        assert.equal(P.size, S.size)
      end)
    end

    it("atomic = true is accepted on bool", function()
      local S = mm.struct("S", {{"flag", "bool", atomic = true}})
      assert.is_true(S.fields[1].atomic)
      assert.equal(1, S.size)
    end)

    it("atomic = false is the same as no option", function()
      local S = mm.struct("S", {{"n", "u32", atomic = false}})
      assert.is_false(S.fields[1].atomic)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("enums", function()
    it("take the size and alignment of their base and number names from 0", function()
      local Class = mm.enum("Class", "u8", {"warrior", "mage", "rogue"})
      assert.equal(1, Class.size)
      assert.equal(1, Class.align)
      assert.same({"warrior", "mage", "rogue"}, Class.names)
      assert.same({warrior = 0, mage = 1, rogue = 2}, Class.values)
      local Big = mm.enum("Big", "u32", {"a", "b"})
      assert.equal(4, Big.size)
      local S = mm.struct("S", {{"x", "u8"}, {"k", Big}, {"c", Class}})
      assert.same({0, 4, 8}, {S.fields[1].offset, S.fields[2].offset, S.fields[3].offset})
      assert.equal(12, S.size)
    end)

    it("256 names fit in u8 and 128 in i8", function()
      local names = {}
      for i = 1, 256 do names[i] = "n" .. i end
      assert.equal(256, #mm.enum("E", "u8", names).names)
      local n128 = {table.unpack(names, 1, 128)}
      assert.equal(128, #mm.enum("E", "i8", n128).names)
      names[257] = "n257"
      assert.equal(257, #mm.enum("E", "u16", names).names)
    end)

    it("can be used as array elements", function()
      local E = mm.enum("E", "u16", {"a", "b"})
      local t = mm.array(E, 3)
      assert.equal(6, t.size)
      assert.equal(2, t.align)
      assert.equal("E[3]", t.canon)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("bad schemas raise at declaration", function()
    it("unknown type, naming the field and the type", function()
      raises({"'x'", "unknown type 'foo'"}, one, "foo")
      raises({"'x'", "unknown type 'foo'"}, one, "foo[3]")
    end)

    it("unparsable type expression, naming the field", function()
      raises({"'x'", "cannot parse type 'u8[3'"}, one, "u8[3")
      raises({"'x'", "cannot parse"}, one, "string<-1>")
    end)

    it("a type that is neither a string nor a type object", function()
      raises({"'x'", "expected a type"}, one, 5)
    end)

    it("missing type", function()
      raises({"'x'", "missing type"}, mm.struct, "A", {{"x"}})
    end)

    it("duplicate field name", function()
      raises({"mm.struct 'A'", "duplicate field 'x'"}, mm.struct, "A",
        {{"x", "u8"}, {"y", "u8"}, {"x", "u16"}})
    end)

    it("zero capacity string<0> names the field", function()
      raises({"'x'", "zero capacity"}, one, "string<0>")
    end)

    it("zero capacity bytes<0> names the field", function()
      raises({"'x'", "zero capacity"}, one, "bytes<0>")
    end)

    it("zero length u8[0] names the field", function()
      raises({"'x'", "zero length"}, one, "u8[0]")
      raises({"'x'", "zero length"}, one, "u8[4][0]")
    end)

    it("absurd capacity string<2000000000000> names the field", function()
      raises({"'x'", "absurd"}, one, "string<2000000000000>")
    end)

    it("array size overflow names the field", function()
      raises({"'x'", "overflow"}, one, "u64[1000000000][1000000000]")
      raises({"'x'", "overflow"}, one, "u8[1099511627776][2]")
    end)

    it("sizes whose product would wrap 64 bits are refused, never laid out (a wrapped size crashed readers)",
      function()
        raises({"'x'", "absurd"}, one, "string<4294967297>[4294967295]") -- 2^64 + ...: wrapped to 0
        raises({"'x'", "absurd"}, one, "string<4294967312>[4294967280]") -- wrapped to -256
        raises({"'x'", "overflow"}, one, "u8[4294967296][4294967296]")
        raises({"'x'", "overflow"}, one, "string<65536>[1099511627776]")
        raises({"'x'", "absurd"}, one, "string_array<1099511627776,1099511627776>")
        raises({"'x'", "absurd"}, one, "string_array<4294967295,4294967295>")
        raises({"'x'", "absurd"}, one, "vec<string<4294967295>,4294967295>")
        raises({"'x'", "too large"}, one, "ring<u64[1073741824],1073741824>")
        raises({"'x'", "overflow"}, one, "map<u64,u64[1099511627776],16>")
        raises({"'x'", "a map key is at most"}, one, "map<string<4294967295>,u8>")
        raises({"'x'", "too large"}, one, "segmented<u8[8589934592]>")
        raises({"'x'", "absurd"}, one, "value<1099511627776>") -- its length is a u32
        assert.is_nil((mm._core.schema_layout("root value<4294967296>")))
        assert.equal(4294967300, mm.type("value<4294967295>").size)
        -- the largest of each still declares
        assert.equal(4294967295, mm.type("string<4294967295>").size)
        assert.equal(1 << 40, mm.type("u8[1099511627776]").size)
        -- and C's own layout (mm3_schema_layout: files opened by C programs) refuses them too
        local core = mm._core
        for _, text in ipairs({"root string_array<4294967295,4294967295>", "root string<4294967296>",
          "root vec<string<4294967296>,1>", "root map<string<4294967295>,u64>",
          "root u8[4294967296][4294967296]"}) do
          assert.is_nil((core.schema_layout(text)), text)
        end
        assert.equal(4294967295, (core.schema_layout("root string<4294967295>")))
      end)

    it("an array of structs holding containers is limited to 65536 containers, at open, with a message",
      function()
        local h = require "helpers"
        local V = mm.struct("V", {{"v", mm.vec("u8", 1)}})
        local p = h.missing_path()
        raises("more than 65536 containers", mm.create, p, mm.array(V, 70000))
        local s = assert(mm.create(p, mm.array(V, 60000)))
        s[60000].v:push(3)
        assert.equal(3, s[60000].v[1])
        mm.close(s)
        h.cleanup()
      end)

    it("array length too large for an integer names the field", function()
      raises("'x'", one, "u8[99999999999999999999]")
    end)

    it("a struct whose total size overflows names the field that overflowed", function()
      raises({"mm.struct 'A'", "'b'", "overflow"}, mm.struct, "A",
        {{"a", "u8[1099511627776]"}, {"b", "u8[1099511627776]"}})
    end)

    it("more than 256 array dimensions are refused, in a type string and level by level (gigabytes once)",
      function()
        -- each level keeps its own name: 100000 levels took gigabytes, and the
        -- process was killed
        local deep = "u8" .. string.rep("[1]", 256)
        assert.equal("root " .. deep, mm.canonical(mm.type(deep)))
        one("u8" .. string.rep("[1]", 255)) -- (the struct around it is a level too)
        raises({"'x'", "nested more than 256 deep"}, one, deep)
        raises({"'x'", "nested more than 256 deep (each array dimension counts)"}, one, deep .. "[1]")
        raises("nested more than 256 deep", one, "u8" .. string.rep("[1]", 100000))
        local t = "u8"
        for _ = 1, 256 do t = mm.array(t, 1) end
        raises("nested more than 256 deep", mm.array, t, 1)
      end)

    it("structs and containers nested more than 256 deep are refused (5000 took a minute to create)",
      function()
        local T = mm.struct("N0", {{"a", "u8"}})
        for i = 1, 255 do T = mm.struct("N" .. i, {{"s", T}, {"b", "u8"}}) end
        local h = require "helpers"
        local p = h.missing_path()
        local s = assert(mm.create(p, T)) -- 256 deep: fine
        local v = s
        for _ = 1, 255 do v = v.s end
        v.a = 9
        mm.close(s)
        s = assert(mm.open(p))
        v = s
        for _ = 1, 255 do v = v.s end
        assert.equal(9, v.a)
        mm.close(s)
        raises({"mm.struct 'N256'", "field 's'", "nested more than 256 deep"}, mm.struct, "N256", {{"s", T}})
        raises("nested more than 256 deep", mm.vec, T, 2)
        raises("nested more than 256 deep", mm.map, "u8", T)
        local V = "u8"
        for _ = 1, 256 do V = mm.vec(V, 1) end
        raises("mm.segmented: types nested more than 256 deep", mm.segmented, V)
        -- arrays between the levels count too (16 structs of 16 dimensions
        -- each took 7 s to create when they did not)
        local A, ones = mm.struct("A0", {{"a", "u8"}}), {}
        for j = 1, 16 do ones[j] = 1 end
        raises("nested more than 256 deep", function()
          for i = 1, 16 do A = mm.struct("A" .. i, {{"a", mm.array(A, table.unpack(ones))}}) end
        end)
        -- a type string that deep runs out of the parser's stack: a clear error too
        raises("nested too deep for a type string", mm.type, ("vec<"):rep(300) .. "u8" .. (",1>"):rep(300))
        -- containers nested directly in one another are one expression in the
        -- stored text: past what the parser reads back, creating is refused
        V = "u8"
        for _ = 1, 80 do V = mm.vec(V, 1) end
        local q = h.missing_path()
        mm.close(assert(mm.create(q, mm.struct("V80", {{"v", V}}))))
        local back = assert(mm.open(q)) -- without a type: the stored text is parsed
        mm.close(back)
        for _ = 81, 120 do V = mm.vec(V, 1) end
        raises("the schema's text could not be parsed back", mm.create, h.missing_path(),
          mm.struct("V120", {{"v", V}}))
        -- an empty file (os.tmpname) is made into a new one too
        local empty = os.tmpname()
        raises("the schema's text could not be parsed back", mm.open, empty, mm.struct("V120b", {{"v", V}}),
          {create = true})
        os.remove(empty)
        h.cleanup()
      end)

    it("zero and absurd lengths in mm.array", function()
      raises("zero length", mm.array, "u8", 0)
      raises("zero length", mm.array, "u8", -1)
      raises("overflow", mm.array, "u8", 1 << 41)
      raises("integer", mm.array, "u8", 2.5)
      raises("needs at least one length", mm.array, "u8")
      raises("unknown type 'nope'", mm.array, "nope", 2)
    end)

    local NOT_ATOMIC = {"f32", "f64", "string<8>", "bytes<4>", "u128", "i128", "char", "u8[4]"}
    for _, t in ipairs(NOT_ATOMIC) do
      it("atomic on " .. t, function()
        raises({"'x'", "atomic needs an integer", t}, one, t, {atomic = true})
      end)
    end

    it("atomic on a struct or an enum", function()
      local P = mm.struct("P", {{"a", "u8"}})
      local E = mm.enum("E", "u8", {"a"})
      raises({"'x'", "atomic"}, one, P, {atomic = true})
      raises({"'x'", "atomic"}, one, E, {atomic = true})
    end)

    it("atomic must be a boolean", function()
      raises({"'x'", "atomic must be a boolean"}, one, "u32", {atomic = 1})
      raises({"'x'", "atomic must be a boolean"}, one, "u32", {atomic = "yes"})
    end)

    it("atomic<T> in a type string points to atomic = true", function()
      raises({"'x'", "atomic = true"}, one, "atomic<u8>")
    end)

    it("unknown field option", function()
      raises({"'x'", "unknown option 'atomc'"}, one, "u8", {atomc = true})
      raises({"'x'", "unknown option '3'"}, mm.struct, "A", {{"x", "u8", "extra"}})
    end)

    it("enum with duplicate names", function()
      raises({"mm.enum 'E'", "duplicate name 'a'"}, mm.enum, "E", "u8", {"a", "b", "a"})
    end)

    it("enum with too many names for its base", function()
      local names = {}
      for i = 1, 257 do names[i] = "n" .. i end
      raises({"mm.enum 'E'", "257 names", "u8"}, mm.enum, "E", "u8", names)
      raises({"mm.enum 'E'", "129 names", "i8"}, mm.enum, "E", "i8", {table.unpack(names, 1, 129)})
    end)

    it("enum with a base that is not an integer", function()
      raises({"mm.enum 'E'", "base must be an integer"}, mm.enum, "E", "f32", {"a"})
      raises({"mm.enum 'E'", "base must be an integer"}, mm.enum, "E", "string<4>", {"a"})
      raises({"mm.enum 'E'", "base must be an integer"}, mm.enum, "E", "bool", {"a"})
    end)

    it("enum without names", function()
      raises({"mm.enum 'E'", "non-empty"}, mm.enum, "E", "u8", {})
      raises({"mm.enum 'E'", "non-empty"}, mm.enum, "E", "u8", nil)
    end)

    it("non-identifier struct, field, enum and enum value names", function()
      raises({"mm.struct", "identifier", "1A"}, mm.struct, "1A", {{"x", "u8"}})
      raises({"mm.struct", "identifier"}, mm.struct, "my struct", {{"x", "u8"}})
      raises({"mm.struct", "identifier"}, mm.struct, 42, {{"x", "u8"}})
      raises({"mm.struct 'A'", "field 1", "identifier", "1x"}, mm.struct, "A", {{"1x", "u8"}})
      raises({"mm.struct 'A'", "field 2", "identifier", "a-b"}, mm.struct, "A",
        {{"ok", "u8"}, {"a-b", "u8"}})
      raises({"mm.struct 'A'", "identifier"}, mm.struct, "A", {{"", "u8"}})
      raises({"mm.enum", "identifier", "1E"}, mm.enum, "1E", "u8", {"a"})
      raises({"mm.enum 'E'", "identifier", "a b"}, mm.enum, "E", "u8", {"a b"})
    end)

    it("empty struct", function()
      raises({"mm.struct 'A'", "at least one field"}, mm.struct, "A", {})
    end)

    it("fields that are not a sequence of tables", function()
      raises({"mm.struct 'A'", "fields must be a table"}, mm.struct, "A", "u8")
      raises({"mm.struct 'A'", "field 1 must be a table"}, mm.struct, "A", {"u8"})
      raises({"mm.struct 'A'", "sequence"}, mm.struct, "A", {{"a", "u8"}, y = {"y", "u8"}})
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("canonical text", function()
    local Class = mm.enum("Class", "u8", {"warrior", "mage", "rogue"})
    local Player = mm.struct("Player", {
      {"id", "u64"}, {"name", "string<32>"}, {"pos", "f32[3]"},
      {"kills", "u64", atomic = true}, {"class", Class}, {"salt", "bytes<16>"},
    })
    local Save = mm.struct("Save", {
      {"version", "u32"}, {"players", mm.array(Player, 4)}, {"best", Player},
      {"grid", "u8[16][16][4]"}, {"c", "char"}, {"big", "u128"},
    })

    it("lists named types, dependencies first, once each, then the root", function()
      assert.equal(table.concat({
        "enum Class:u8{warrior,mage,rogue}",
        "struct Player{id:u64;name:string<32>;pos:f32[3];kills:atomic<u64>;class:Class;salt:bytes<16>}",
        "struct Save{version:u32;players:Player[4];best:Player;grid:u8[16][16][4];c:char;big:u128}",
        "root Save",
      }, "\n"), mm.canonical(Save))
    end)

    it("of an array or primitive root", function()
      assert.equal("root u32[100]", mm.canonical(mm.type("u32[100]")))
      assert.equal("root u64", mm.canonical(mm.type("u64")))
      assert.equal("enum Class:u8{warrior,mage,rogue}\nroot Class[2][3]", mm.canonical(mm.array(Class, 2, 3)))
    end)

    it("refuses two different types with one name", function()
      local P1 = mm.struct("P", {{"a", "u8"}})
      local P2 = mm.struct("P", {{"a", "u16"}})
      local S = mm.struct("S", {{"x", P1}, {"y", P2}})
      raises("two different types named 'P'", mm.canonical, S)
    end)

    it("accepts two equal declarations of one name", function()
      local P1 = mm.struct("P", {{"a", "u8"}})
      local P2 = mm.struct("P", {{"a", "u8"}})
      local S = mm.struct("S", {{"x", P1}, {"y", P2}})
      assert.equal("struct P{a:u8}\nstruct S{x:P;y:P}\nroot S", mm.canonical(S))
    end)

    local function same_layout(a, b)
      assert.equal(a.kind, b.kind)
      assert.equal(a.size, b.size)
      assert.equal(a.align, b.align)
      if a.kind == "struct" then
        assert.equal(#a.fields, #b.fields)
        for i, f in ipairs(a.fields) do
          assert.equal(f.name, b.fields[i].name)
          assert.equal(f.offset, b.fields[i].offset)
          assert.equal(f.atomic, b.fields[i].atomic)
          same_layout(f.type, b.fields[i].type)
        end
      elseif a.kind == "array" then
        assert.equal(a.n, b.n)
        same_layout(a.elem, b.elem)
      elseif a.kind == "enum" then
        assert.same(a.names, b.names)
        assert.equal(a.base.name, b.base.name)
      end
    end

    local ROUND = {
      Save = Save,
      Player = Player,
      ["u32[100]"] = mm.type("u32[100]"),
      ["Player[2][3]"] = mm.array(Player, 2, 3),
      ["every primitive"] = (function()
        local f = {}
        for i, p in ipairs(PRIMS) do f[i] = {"f_" .. p[1], p[1]} end
        return mm.struct("AllPrims", f)
      end)(),
      ["every atomic"] = (function()
        local f = {{"flag", "bool", atomic = true}}
        for _, n in ipairs(INTEGERS) do f[#f + 1] = {"a_" .. n, n, atomic = true} end
        return mm.struct("Atomics", f)
      end)(),
      ["enums of every base"] = mm.struct("Enums", {
        {"a", mm.enum("A8", "i8", {"x", "y"})}, {"b", mm.enum("B16", "u16", {"p"})},
        {"c", mm.enum("C64", "u64", {"q", "r", "s"})}, {"d", mm.array(mm.enum("D", "u32", {"z"}), 2)},
      }),
    }
    for name, T in pairs(ROUND) do
      it("round trip: parse_schema(canonical(T)) gives the same layout for " .. name, function()
        local text = mm.canonical(T)
        local back, err = schema.parse_schema(text)
        assert.is_nil(err)
        assert.is_truthy(schema.is_type(back))
        assert.equal(text, mm.canonical(back))
        assert.equal(T.canon, back.canon)
        same_layout(T, back)
        assert.is_nil(schema.diff(T, back))
      end)
    end

    it("parse_schema refuses text that is not a schema", function()
      local t, err = schema.parse_schema("garbage")
      assert.is_nil(t)
      assert.matches("cannot parse", err)
      t, err = schema.parse_schema("root Nope")
      assert.is_nil(t)
      assert.matches("unknown type 'Nope'", err, 1, true)
      t, err = schema.parse_schema("struct A{x:u8;x:u8}\nroot A")
      assert.is_nil(t)
      assert.matches("duplicate field 'x'", err, 1, true)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("schema.diff", function()
    local E = mm.enum("Class", "u16", {"a", "b"})
    local function player(o)
      o = o or {}
      return mm.struct("P", {
        {"id", "u64", atomic = o.atomic == nil and true or o.atomic},
        {"name", o.name or "string<8>"},
        {"c", o.enum or E},
      })
    end
    local function save(o)
      o = o or {}
      return mm.struct(o.sname or "S", {
        {"version", o.version or "u32"},
        {o.players or "players", mm.array(o.player or player(), o.n or 2)},
      })
    end
    local file = save()

    it("is nil for the same layout", function()
      assert.is_nil(schema.diff(file, save()))
      assert.is_nil(schema.diff(file, file))
    end)

    it("names a field whose type changed", function()
      assert.equal("field 'version' is u32 in the file, u64 in the schema",
        schema.diff(file, save{version = "u64"}))
    end)

    it("names nested fields inside arrays of structs", function()
      assert.equal("field 'players[].name' is string<8> in the file, string<9> in the schema",
        schema.diff(file, save{player = player{name = "string<9>"}}))
    end)

    it("names an atomic mismatch", function()
      assert.equal("field 'players[].id' is atomic in the file, not atomic in the schema",
        schema.diff(file, save{player = player{atomic = false}}))
    end)

    it("names an enum whose names changed", function()
      local d = schema.diff(file, save{player = player{enum = mm.enum("Class", "u16", {"a", "c"})}})
      assert.equal("field 'players[].c' is enum Class:u16{a,b} in the file, Class:u16{a,c} in the schema", d)
    end)

    it("names an array length change", function()
      assert.equal("field 'players' is P[2] in the file, P[3] in the schema", schema.diff(file, save{n = 3}))
    end)

    it("names a renamed field by position", function()
      assert.equal("field 2 is 'players' in the file, 'qs' in the schema",
        schema.diff(file, save{players = "qs"}))
    end)

    it("names added and removed fields", function()
      local A = mm.struct("S", {{"version", "u32"}})
      local B = mm.struct("S", {{"version", "u32"}, {"x", "u8"}})
      assert.equal("field 'x' is in the schema but not in the file", schema.diff(A, B))
      assert.equal("field 'x' is in the file but not in the schema", schema.diff(B, A))
    end)

    it("names a different root", function()
      assert.equal("root is struct S in the file, struct T in the schema",
        schema.diff(file, save{sname = "T"}))
      assert.equal("root is u32[4] in the file, u32[5] in the schema",
        schema.diff(mm.type("u32[4]"), mm.type("u32[5]")))
      assert.equal("root is S in the file, u32[4] in the schema", schema.diff(file, mm.type("u32[4]")))
    end)
  end)
end)
