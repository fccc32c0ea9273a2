-- The C core computes the same layout from a schema's canonical text as the
-- Lua layer does from the schema (mm3_schema_layout, used by C programs that
-- create files from the text alone).
local mm = require "memmap3"
local core = require "memmap3.core"

describe("C layout of canonical schema text", function()
  local Inner = mm.struct("LInner", {{"b", "bool"}, {"x", "u128"}, {"c", "char"}})
  local E = mm.enum("LE", "u16", {"a", "b", "c"})
  local types = {
    "u8", "u64", "i128", "f32", "bool", "char", "usize", "string<33>", "bytes<7>", "u8[16][16][4]",
    "vec<u16, 64>", "vec<u128, 3>", "ring<u64, 256>", "string_array<8, 16>", "map<string<16>, u64, 1024>",
    "map<u64, bool>", "map<bytes<5>, u8, 3>", "segmented<u64>", "value<1024>", "value", "value<3>",
    mm.struct("LAll", {
      {"a", "u8"}, {"b", "u64", atomic = true}, {"c", "i16"}, {"d", Inner}, {"e", mm.array(Inner, 3)},
      {"f", E}, {"g", "f64[2][3]"}, {"h", "string<5>"}, {"i", mm.vec(Inner, 4)},
      {"j", mm.map("u32", Inner, 10)},
      {"k", mm.segmented(Inner)}, {"l", "map<string<8>, u16>"}, {"m", "value<9>"}, {"n", mm.ring(E, 5)},
      {"o", "string_array<3, 5>"}, {"p", "bool"},
    }),
    mm.array(mm.struct("LPad", {{"a", "u8"}, {"b", "u32"}, {"c", "u8"}}), 7),
  }
  for _, t in ipairs(types) do
    local T = mm.type(t)
    it(T.canon, function()
      local size, align = core.schema_layout(mm.canonical(T))
      assert.equal(T.size, size)
      assert.equal(T.align, align)
    end)
  end

  it("refuses text that does not parse, or names an unknown type", function()
    for _, bad in ipairs{"", "root", "root nope", "struct A{x:u8}\nroot B", "root u8[0]", "root vec<u8,0>",
      "struct A{x:u8\nroot A", "root u8 trailing"} do
      local ok, msg, code = core.schema_layout(bad)
      assert.is_nil(ok, bad)
      assert.matches("schema", msg)
      assert.is_number(code)
    end
  end)

  -- (names of 64 bytes and more, and more than 256 named types, were refused
  -- in C: a C host creating a file from such a text failed with "file layout
  -- differs from the schema")
  it("takes what the Lua layer takes: names of any length, any number of named types", function()
    local long = string.rep("N", 300)
    local fields = {}
    for i = 1, 600 do fields[i] = {"f" .. i, mm.struct("LMany" .. i, {{"x", "u8"}, {"y", "u16"}})} end
    for _, T in ipairs{
      mm.type(mm.struct(long, {{string.rep("f", 1000), "u64"}, {"e", mm.enum(long .. "E", "u32", {"a"})}})),
      mm.type(mm.struct("LMany", fields)),
    } do
      local size, align = core.schema_layout(mm.canonical(T))
      assert.equal(T.size, size)
      assert.equal(T.align, align)
    end
  end)

  it("refuses nesting deeper than the Lua layer allows, without using up the C stack", function()
    local text = "root " .. string.rep("vec<", 100000) .. "u8" .. string.rep(",1>", 100000)
    local ok, msg = core.schema_layout(text)
    assert.is_nil(ok)
    assert.matches("overflows", msg)
    local deep = "root " .. string.rep("vec<", 200) .. "u8" .. string.rep(",1>", 200)
    assert.is_number((core.schema_layout(deep)))
  end)


end)
