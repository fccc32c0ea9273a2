-- memmap3 cheader: C headers whose structs match a schema's layout. A C
-- program (spec/c_host/allfields.c, no Lua inside) writes every field type
-- through the generated header and Lua reads the same values, and the
-- reverse; every run is a real process.
local h = require "helpers"
local mm = require "memmap3"
local cheader = require "memmap3.cheader"

local CC = os.getenv("CC") or "cc"
local WARN = "-std=c11 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Werror"
-- C++ compiles of the headers, when g++ is there.
local CXX = os.execute("command -v g++ >/dev/null 2>&1") and "g++" or nil
local CXXWARN = "-std=c++11 -Wall -Wextra -pedantic -Werror"
-- Under make sanitize the build's objects are instrumented: so are the programs.
local SAN = h.under_asan() and " -fsanitize=address,undefined" or ""

-- Every field type memmap3 has; `default` is a C keyword (default_ in C).
local SCHEMA = [[
local mm = require "memmap3"
local Class = mm.enum("Class", "u8", { "warrior", "mage", "rogue" })
local Pos = mm.struct("Pos", { { "x", "i16" }, { "y", "i16" } })
local Entry = mm.struct("Entry", { { "id", "u32" }, { "score", "f64" } })
local All = mm.struct("All", {
  { "u8", "u8" }, { "u16", "u16" }, { "u32", "u32" }, { "u64", "u64" },
  { "i8", "i8" }, { "i16", "i16" }, { "i32", "i32" }, { "i64", "i64" },
  { "f32", "f32" }, { "f64", "f64" }, { "flag", "bool" }, { "ch", "char" },
  { "big", "u128" }, { "neg", "i128" }, { "us", "usize" }, { "is", "isize" },
  { "name", "string<16>" }, { "raw", "bytes<4>" }, { "class", Class },
  { "pos", Pos }, { "grid", "u8[2][3]" }, { "path", mm.array(Pos, 2) },
  { "hits", "u32", atomic = true }, { "alive", "bool", atomic = true },
  { "vec", mm.vec(Entry, 4) }, { "ring", mm.ring("u16", 3) }, { "tags", mm.string_array(3, 8) },
  { "fmap", mm.map("u32", "i32", 4) }, { "hmap", mm.map("string<8>", "f64") },
  { "seg", mm.segmented("u64") }, { "small", mm.value(16) }, { "any", mm.value() },
  { "default", "u8" },
})
return { All = All, Pos = Pos, Entry = Entry, Class = Class }
]]

-- What allfields.c prints for the values both sides write.
local EXPECT = {
  u8 = "255", u16 = "65535", u32 = "4294967295", u64 = "18446744073709551615",
  i8 = "-128", i16 = "-32768", i32 = "-2147483648", i64 = "-9223372036854775808",
  f32 = "1.5", f64 = "0.10000000000000001", flag = "1", ch = "U+20AC",
  big = "340282366920938463463374607431768211455", neg = "-170141183460469231731687303715884105728",
  us = "123456789012", is = "-5", name = "héllo wörld", raw = "0001feff", class = "2", rogue = "1",
  pos = "-7,300", grid = "1,2,3,4,5,6", path = "1,2,3,4", hits = "41", alive = "1", default = "9",
  ["vec.len"] = "2", ["vec[1]"] = "7:2.5", ["vec[2]"] = "8:-0.25",
  ["ring.len"] = "5", ["ring[1]"] = "30", ["ring[2]"] = "40", ["ring[3]"] = "50",
  ["tags[1]"] = "a", ["tags[2]"] = "bb", ["tags[3]"] = "ccc",
  ["fmap.count"] = "3", ["fmap[1]"] = "-1", ["fmap[2]"] = "-2", ["fmap[3]"] = "-3",
  ["hmap.count"] = "2", ["hmap[alpha]"] = "1.25", ["hmap[beta]"] = "-2",
  ["seg.len"] = "3", ["seg[1]"] = "1", ["seg[2]"] = "2", ["seg[3]"] = "1099511627776",
  small = "06026869",      -- tag 6 (string), length 2, "hi"
  any = "04cb04fb711f010000", -- tag 4 (integer), 1234567890123 little-endian
}

local function run(cmd)
  local errf = h.tmpname()
  local p = assert(io.popen(cmd .. " 2>" .. h.shell_quote(errf)))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, status, h.read_file(errf) or ""
end

local function memmap3(args)
  return run(string.format("LUA_INIT= LUA_PATH=%s LUA_CPATH=%s %s bin/memmap3 %s",
    h.shell_quote("lua/?.lua;lua/?/init.lua;;"), h.shell_quote(h.build .. "/?.so;;"), h.shell_quote(h.lua),
    args))
end

-- name=value lines as a table.
local function lines(out)
  local t = {}
  for k, v in out:gmatch("([^=\n]+)=([^\n]*)") do t[k] = v end
  return t
end

describe("memmap3 cheader", function()
  local dir, T, prog, header

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. h.shell_quote(dir)))
    h.write_file(dir .. "/all_types.lua", SCHEMA)
    T = dofile(dir .. "/all_types.lua")
    local _, status, err = memmap3(string.format("cheader %s All -o %s",
      h.shell_quote(dir .. "/all_types.lua"), h.shell_quote(dir .. "/all_types.h")))
    assert(status == 0, err)
    header = h.read_file(dir .. "/all_types.h")
    prog = dir .. "/allfields"
    local _, cstatus, cerr = run(string.format("%s %s%s -D_GNU_SOURCE -Isrc -I%s -o %s %s %s -lpthread",
      CC, WARN, SAN, h.shell_quote(dir), h.shell_quote(prog), "spec/c_host/allfields.c",
      h.shell_quote(h.build .. "/libmemmap3.a")))
    assert(cstatus == 0, "allfields.c does not compile:\n" .. cerr)
  end)

  teardown(function()
    if dir then os.execute("rm -rf " .. h.shell_quote(dir)) end
  end)

  after_each(h.cleanup)

  -- Compile C code that includes a header made for types[name] (only its
  -- static asserts are checked): status, compiler messages.
  local function compile_header(types, name, body)
    local hp = h.tmpname(".h")
    local cp = h.tmpname(".c")
    h.write_file(hp, cheader.generate(types, name))
    h.write_file(cp, string.format('#include "%s"\n#include "%s"\n%s\nint main(void) { return 0; }\n',
      "memmap3.h", hp, body or ""))
    local _, status, err = run(string.format("%s %s -Isrc -fsyntax-only %s", CC, WARN, h.shell_quote(cp)))
    return status, err, h.read_file(hp)
  end

  -- The same as C++ (g++): status, compiler messages; nil when g++ is missing.
  local function compile_header_cxx(types, name, body)
    if not CXX then return nil end
    local hp = h.tmpname(".h")
    local cp = h.tmpname(".cc")
    h.write_file(hp, cheader.generate(types, name))
    h.write_file(cp, string.format('#include "%s"\n#include "%s"\n%s\nint main() { return 0; }\n',
      "memmap3.h", hp, body or ""))
    local _, status, err = run(string.format("%s %s -Isrc -fsyntax-only -x c++ %s", CXX, CXXWARN,
      h.shell_quote(cp)))
    return status, err, h.read_file(hp)
  end
  local function skip_cxx()
    if not CXX then print("\ncheader_spec: g++ is not installed: C++ compiles of the headers skipped") end
  end

  it("writes structs, enums, containers and a static assert on every offset and size", function()
    assert.matches("#ifndef ALL_MM3_H", header, 1, true)
    assert.matches("#include <stdint.h>", header, 1, true)
    assert.matches("#include <stddef.h>", header, 1, true)
    assert.matches("#include <assert.h>", header, 1, true)
    assert.matches("typedef uint8_t Class;\n#define CLASS_WARRIOR 0\n#define CLASS_MAGE 1\n" ..
      "#define CLASS_ROGUE 2", header, 1, true)
    assert.matches("typedef struct All {", header, 1, true)
    assert.matches("  char name[16];", header, 1, true)
    assert.matches("  uint8_t raw[4];", header, 1, true)
    assert.matches("  uint8_t grid[2][3];", header, 1, true)
    assert.matches("  Pos path[2];", header, 1, true)
    assert.matches("  uint32_t hits; /* atomic: use mm3_atomic_* */", header, 1, true)
    assert.matches("  mm3_u128 big;", header, 1, true)
    assert.matches("__extension__ typedef unsigned __int128 mm3_u128;", header, 1, true)
    assert.matches("  char tags[3][8];", header, 1, true)
    assert.matches("  uint8_t default_; /* field 'default' */", header, 1, true)
    assert.matches("typedef struct All_vec_Entry_4 {\n  uint64_t len;", header, 1, true)
    assert.matches("typedef struct All_map_u32_i32_4_node {", header, 1, true)
    assert.matches("typedef struct All_segmented_u64 {", header, 1, true)
    assert.matches("  uint64_t seg[56];", header, 1, true)
    assert.matches("typedef struct All_value_16 {\n  uint32_t len;", header, 1, true)
    assert.matches("#define ALL_ROOT_SIZE " .. T.All.size .. "\n", header, 1, true)
    for _, f in ipairs(T.All.fields) do
      local cf = f.name == "default" and "default_" or f.name
      assert.matches(string.format("MM3_STATIC_ASSERT(offsetof(All, %s) == %d,", cf, f.offset), header, 1,
        true)
    end
    assert.matches(string.format("MM3_STATIC_ASSERT(sizeof(All) == %d,", T.All.size), header, 1, true)
    assert.matches(string.format("MM3_STATIC_ASSERT(sizeof(Pos) == %d,", T.Pos.size), header, 1, true)
    -- the canonical schema text, split after each newline
    local text = mm.canonical(T.All)
    local macro = header:match("#define ALL_SCHEMA \\\n(.-)\n#define")
    local joined = macro:gsub('"%s*\\\n%s*"', ""):gsub('^%s*"', ""):gsub('"$', ""):gsub("\\n", "\n")
    assert.equal(text, joined)
  end)

  it("C writes every field through the header; Lua reads the same values", function()
    local p = h.missing_path()
    local out, status, err = run(h.shell_quote(prog) .. " write " .. h.shell_quote(p))
    assert.equal(0, status, err)
    assert.equal("written\n", out)
    -- the file C created has exactly the Lua schema's layout
    local v = assert(mm.open(p, T.All))
    assert.equal(255, v.u8)
    assert.equal(65535, v.u16)
    assert.equal(4294967295, v.u32)
    assert.equal(-1, v.u64) -- u64 wraps as string.unpack "J"
    assert.equal(-128, v.i8)
    assert.equal(-32768, v.i16)
    assert.equal(-2147483648, v.i32)
    assert.equal(math.mininteger, v.i64)
    assert.equal(1.5, v.f32)
    assert.equal(0.1, v.f64)
    assert.is_true(v.flag)
    assert.equal("€", v.ch)
    assert.equal(EXPECT.big, v.big)
    assert.equal(EXPECT.neg, v.neg)
    assert.equal(123456789012, v.us)
    assert.equal(-5, v.is)
    assert.equal("héllo wörld", v.name)
    assert.equal("\0\1\254\255", v.raw)
    assert.equal("rogue", v.class)
    assert.same({ x = -7, y = 300 }, mm.totable(v.pos))
    assert.same({ { 1, 2, 3 }, { 4, 5, 6 } }, mm.totable(v.grid))
    assert.same({ { x = 1, y = 2 }, { x = 3, y = 4 } }, mm.totable(v.path))
    assert.equal(41, v.hits:load())
    assert.is_true(v.alive:load())
    assert.equal(9, v.default)
    assert.same({ { id = 7, score = 2.5 }, { id = 8, score = -0.25 } }, mm.totable(v.vec))
    assert.same({ 30, 40, 50 }, mm.totable(v.ring))
    assert.same({ "a", "bb", "ccc" }, mm.totable(v.tags))
    assert.same({ [1] = -1, [2] = -2, [3] = -3 }, mm.totable(v.fmap))
    assert.same({ alpha = 1.25, beta = -2.0 }, mm.totable(v.hmap))
    assert.same({ 1, 2, 1 << 40 }, mm.totable(v.seg))
    assert.equal("hi", v.small)
    assert.equal(1234567890123, v.any)
    assert.equal("integer", math.type(v.any))
    -- Lua keeps working on what C made
    v.vec:push({ id = 9, score = 1 })
    v.hmap.gamma = 3
    v.seg:push(4)
    assert.is_true(mm.check(v))
    local fp = header:match("#define ALL_FINGERPRINT UINT64_C%(0x(%x+)%)")
    assert.equal(fp, mm.info(v).fingerprint)
    mm.close(v)
    -- and C reads back what it wrote, through the same header
    local out2, status2, err2 = run(h.shell_quote(prog) .. " read " .. h.shell_quote(p))
    assert.equal(0, status2, err2)
    local got = lines(out2)
    assert.equal("3", got["vec.len"])
    assert.equal("9:1", got["vec[3]"])
    assert.equal("3", got["hmap[gamma]"])
    assert.equal("4", got["seg[4]"])
  end)

  it("Lua writes every field; C reads the same values through the header", function()
    local p = h.missing_path()
    local v = assert(mm.create(p, T.All))
    v.u8, v.u16, v.u32, v.u64 = 255, 65535, 4294967295, -1
    v.i8, v.i16, v.i32, v.i64 = -128, -32768, -2147483648, math.mininteger
    v.f32, v.f64, v.flag, v.ch = 1.5, 0.1, true, "€"
    v.big, v.neg = EXPECT.big, EXPECT.neg
    v.us, v.is = 123456789012, -5
    v.name, v.raw, v.class = "héllo wörld", "\0\1\254\255", "rogue"
    v.pos = { x = -7, y = 300 }
    v.grid = { { 1, 2, 3 }, { 4, 5, 6 } }
    v.path = { { x = 1, y = 2 }, { x = 3, y = 4 } }
    v.hits = 40
    v.hits:fetch_add(1)
    v.alive = true
    v.default = 9
    v.vec:push({ id = 7, score = 2.5 })
    v.vec:push({ id = 8, score = -0.25 })
    for x = 10, 50, 10 do v.ring:push(x) end
    v.tags[1], v.tags[2], v.tags[3] = "a", "bb", "ccc"
    for k = 1, 3 do v.fmap[k] = -k end
    v.hmap.alpha, v.hmap.beta = 1.25, -2
    v.seg:push(1)
    v.seg:push(2)
    v.seg:push(1 << 40)
    v.small = "hi"
    v.any = 1234567890123
    mm.close(v)
    local out, status, err = run(h.shell_quote(prog) .. " read " .. h.shell_quote(p))
    assert.equal(0, status, err)
    assert.same(EXPECT, lines(out))
  end)

  it("C reads what C wrote: the same lines as from Lua", function()
    local p = h.missing_path()
    local _, status, err = run(h.shell_quote(prog) .. " write " .. h.shell_quote(p))
    assert.equal(0, status, err)
    local out, status2, err2 = run(h.shell_quote(prog) .. " read " .. h.shell_quote(p))
    assert.equal(0, status2, err2)
    assert.same(EXPECT, lines(out))
  end)

  it("C refuses to open a file of another layout with the header's schema", function()
    local p = h.missing_path()
    local v = assert(mm.create(p, mm.struct("Other", { { "x", "u32" } })))
    mm.close(v)
    local _, status, err = run(h.shell_quote(prog) .. " read " .. h.shell_quote(p))
    assert.equal(1, status)
    assert.matches("schema", err)
  end)

  it("prints to stdout what generate returns, and is deterministic", function()
    local out, status, err = memmap3("cheader " .. h.shell_quote(dir .. "/all_types.lua") .. " All")
    assert.equal(0, status, err)
    assert.equal(header, out)
    assert.equal(header, cheader.generate(T, "All"))
    assert.equal(header, cheader.generate(T.All))
  end)

  it("lays out what C would not by itself, and checks it: every static assert holds", function()
    local cases = {
      -- small keys and values: the node is padded to 8 bytes (_Alignas)
      { mm.struct("A1", { { "m", mm.map("u8", "u8", 3) }, { "n", mm.map("u16", "bool", 9) } }) },
      -- 16-byte items: vec and ring items at 16, u128 keys and values in both maps
      { mm.struct("A2", { { "x", "u8" }, { "v", mm.vec("u128", 3) }, { "r", mm.ring("i128[2]", 2) },
        { "m", mm.map("u8", "u128", 5) }, { "h", mm.map("u8", "i128") } }) },
      -- containers of containers, arrays of containers, bytes and string keys
      { mm.struct("A3", { { "vv", mm.vec(mm.vec("u8", 3), 2) }, { "av", mm.array(mm.ring("u32", 2), 3, 2) },
        { "sm", mm.map("string<5>", mm.string_array(2, 3), 4) }, { "bm", mm.map("bytes<3>", "char") },
        { "sg", mm.segmented(mm.array("f32", 3)) }, { "vs", mm.array(mm.value(3), 2) },
        { "va", mm.array(mm.value(), 2) } }) },
      -- roots that are not structs get a typedef under NAME
      { mm.vec("u64", 4), "Log" },
      { mm.array(mm.struct("P", { { "a", "u8" }, { "b", "f64" } }), 3), "Ps" },
      { mm.map("string<16>", "u64"), "Index" },
      { "u32", "Counter" },
      -- C keywords as field names
      { mm.struct("K", { { "int", "u8" }, { "for", "u16" },
        { "static", mm.enum("E", "i16", { "if", "else" }) } }) },
    }
    skip_cxx()
    for _, c in ipairs(cases) do
      local status, err, text = compile_header(c[1], c[2])
      assert(status == 0, (c[2] or c[1].name) .. ":\n" .. err .. "\n" .. text)
      -- and as C++11
      local cstatus, cerr, ctext = compile_header_cxx(c[1], c[2])
      assert(cstatus == nil or cstatus == 0, (c[2] or c[1].name) .. " (C++):\n" .. tostring(cerr) .. "\n" ..
        tostring(ctext))
    end
    local _, _, text = compile_header(mm.vec("u64", 4), "Log")
    assert.matches("typedef Log_vec_u64_4 Log;", text, 1, true)
    assert.matches("#define LOG_ROOT_SIZE 40\n", text, 1, true)
    local _, _, ktext = compile_header(mm.struct("K2", { { "int", "u8" } }))
    assert.matches("uint8_t int_; /* field 'int' */", ktext, 1, true)
    -- the _CTYPE macros are mm3_ctype initialisers that mm3_ctype_init accepts
    local status, err = compile_header(mm.struct("C", { { "v", mm.vec("u16", 3) } }), nil,
      "int f(void);\nint f(void) { mm3_ctype t = C_vec_u16_3_CTYPE; return mm3_ctype_init(&t); }")
    assert(status == 0, err)
  end)

  -- A host includes <stdio.h> or <errno.h> before the header (examples/embed.c
  -- does): a field named errno or stdout did not compile after them.
  it("renames fields named like a macro of <stdio.h>, <stdlib.h>, <errno.h> or <limits.h>", function()
    local names = { "errno", "stdout", "stdin", "stderr", "EOF", "EXIT_FAILURE", "INT_MAX", "EINVAL",
      "SEEK_SET" }
    local fields = {}
    for i, n in ipairs(names) do fields[i] = { n, "u8" } end
    local hp, cp = h.tmpname(".h"), h.tmpname(".c")
    local text = cheader.generate(mm.struct("Host", fields))
    h.write_file(hp, text)
    local uses = {}
    for i, n in ipairs(names) do uses[i] = ("s.%s_ = %d;"):format(n, i) end
    h.write_file(cp, ('#include <errno.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <limits.h>\n'
      .. '#include "memmap3.h"\n#include "%s"\nint main(void) { Host s; %s return s.errno_; }\n')
      :format(hp, table.concat(uses, " ")))
    local _, status, err = run(string.format("%s %s -Isrc -fsyntax-only %s", CC, WARN, h.shell_quote(cp)))
    assert(status == 0, err .. "\n" .. text)
    assert.matches("uint8_t errno_; /* field 'errno' */", text, 1, true)
  end)

  it("renames fields named like a macro of the header or of the standard headers, without clashes", function()
    local E = mm.enum("E", "u8", { "a" })
    -- B's enum is met after A: its constant F_B is a macro when A is written
    local A = mm.struct("A", { { "F_B", "u8" }, { "x", "u8" } })
    local F = mm.enum("F", "u16", { "b" })
    local S = mm.struct("S", {
      { "e", E }, { "E_A", "u8" }, { "S_SCHEMA", "u8" }, { "S_ROOT_SIZE", "u8" }, { "INT8_MAX", "u8" },
      { "UINT64_C", "u8" }, { "SIZE_MAX", "u8" }, { "NULL", "u8" }, { "true", "u8" }, { "alignof", "u8" },
      { "unix", "u8" }, { "MM3_EFULL", "u8" }, { "MM3_STATIC_ASSERT", "u8" },
      { "S_vec_u8_2_CTYPE", "u8" }, { "v", mm.vec("u8", 2) },
      -- renames cannot clash with another field or with each other
      { "int", "u8" }, { "int_", "u8" }, { "int__", "u8" }, { "INT8_MAX_", "u16" },
      { "a", A }, { "f", F },
    })
    local body = [[
int f(S *s);
int f(S *s) {
  s->E_A_ = E_A; s->S_SCHEMA_ = 1; s->S_ROOT_SIZE_ = 2; s->INT8_MAX__ = INT8_MAX; s->UINT64_C_ = 3;
  s->SIZE_MAX_ = 4; s->NULL_ = 5; s->true_ = 6; s->alignof_ = 7; s->unix_ = 8; s->MM3_EFULL_ = 9;
  s->MM3_STATIC_ASSERT_ = 10; s->S_vec_u8_2_CTYPE_ = 11; s->int___ = 12; s->int_ = 13; s->int__ = 14;
  s->INT8_MAX_ = 15; s->a.F_B_ = (uint8_t)F_B; s->f = F_B;
  return (int)sizeof S_SCHEMA + (int)S_ROOT_SIZE + (int)MM3_EFULL;
}]]
    local status, err, text = compile_header(S, nil, body)
    assert(status == 0, err .. "\n" .. text)
    assert.matches("  uint8_t E_A_; /* field 'E_A' */\n", text, 1, true)
    assert.matches("  uint8_t INT8_MAX__; /* field 'INT8_MAX' */\n", text, 1, true)
    assert.matches("  uint16_t INT8_MAX_;\n", text, 1, true)
    assert.matches("  uint8_t int___; /* field 'int' */\n  uint8_t int_;\n  uint8_t int__;\n", text, 1, true)
    assert.matches("  uint8_t F_B_; /* field 'F_B' */\n", text, 1, true)
    assert.matches("  uint8_t unix_; /* field 'unix' */\n", text, 1, true)
    assert.matches("  uint8_t MM3_EFULL_; /* field 'MM3_EFULL' */\n", text, 1, true)
    assert.matches("`int` is int_, and int__ if the struct has a field int_", text, 1, true)
    assert.equal(text, cheader.generate(S))
    -- the header gcc compiles in its default GNU mode, where unix is a macro
    local hp = h.tmpname(".h")
    h.write_file(hp, text)
    local _, gstatus, gerr = run(string.format("%s -fsyntax-only -x c %s", CC, h.shell_quote(hp)))
    assert.equal(0, gstatus, gerr)
    -- and as C++
    skip_cxx()
    local cstatus, cerr = compile_header_cxx(S, nil, body)
    assert(cstatus == nil or cstatus == 0, tostring(cerr))
    -- a type or an enum constant named like a macro is refused, not renamed
    -- names the compiler may have predefined as macros, and memmap3.h's guard
    local G = mm.struct("G", {
      { "__linux__", "u32" }, { "_Foo", "u8" }, { "MEMMAP3_H", "u8" }, { "ok", "u8" },
    })
    local gs, gerr2, gtext = compile_header(G, nil,
      "int g(G *s);\nint g(G *s) { s->__linux___ = 1; s->_Foo_ = 2; s->MEMMAP3_H_ = 3; return s->ok; }")
    assert(gs == 0, gerr2 .. "\n" .. gtext)
    assert.matches("  uint32_t __linux___; /* field '__linux__' */\n", gtext, 1, true)
    local R = mm.struct("R", { { "e", mm.enum("INT8", "u8", { "max" }) } })
    assert.has_error(function() cheader.generate(R) end,
      "memmap3 cheader: the constant of INT8.max: 'INT8_MAX' is reserved in C")
    assert.has_error(function() cheader.generate(mm.struct("SIZE_MAX", { { "x", "u8" } })) end)
    -- types (and so macros) in the compiler's space: __linux__ is 1 with GCC
    local inner = mm.struct("__linux__", { { "x", "u8" } })
    assert.has_error(function() cheader.generate(mm.struct("Outer", { { "a", inner } })) end,
      "memmap3 cheader: struct __linux__: '__linux__' is reserved in C (at file scope, names that begin "
      .. "with _ are the compiler's)")
    local ok, uerr = pcall(cheader.generate, mm.struct("Outer", { { "e", mm.enum("_Kind", "u8", { "a" }) } }))
    assert.is_false(ok)
    assert.matches("enum _Kind: '_Kind' is reserved in C", uerr, 1, true)
    ok, uerr = pcall(cheader.generate, mm.struct("_save", { { "x", "u8" } }))
    assert.is_false(ok)
    assert.matches("NAME '_save' begins with _, so would the header's macros (_SAVE_SCHEMA)", uerr, 1, true)
    ok, uerr = pcall(cheader.generate, mm.struct("_save", { { "x", "u8" } }), "Save")
    assert.is_false(ok)
    assert.matches("struct _save: '_save' is reserved in C", uerr, 1, true)
    assert.is_true((pcall(cheader.generate, mm.struct("save", { { "_x", "u8" } }), "Save"))) -- fields may
    -- memmap3.h's own names (MM3_EBUSY is one of its macros), as a type or an enum constant
    local busy = mm.struct("MM3_EBUSY", { { "x", "u8" } })
    ok, uerr = pcall(cheader.generate, mm.struct("R", { { "b", busy } }))
    assert.is_false(ok)
    assert.matches("struct MM3_EBUSY: 'MM3_EBUSY' is reserved: memmap3.h's names begin with MM3_", uerr, 1,
      true)
    ok, uerr = pcall(cheader.generate, mm.struct("mm3_save", { { "x", "u8" } }))
    assert.is_false(ok)
    assert.matches("NAME 'mm3_save' begins with MM3_", uerr, 1, true)
    ok, uerr = pcall(cheader.generate, mm.struct("R", { { "e", mm.enum("mm3", "u8", { "ebusy" }) } }))
    assert.is_false(ok)
    assert.matches("'MM3_EBUSY' is reserved", uerr, 1, true)
  end)

  it("compiles as C++11: fields named like a C++ keyword or a type of their struct get a _ there", function()
    skip_cxx()
    -- All has a field `class`: class in C, class_ in C++
    assert.matches("#ifdef __cplusplus\n  Class class_; /* field 'class' */\n#else\n  Class class;\n#endif\n",
      header, 1, true)
    assert.matches("#ifdef __cplusplus\nMM3_STATIC_ASSERT(offsetof(All, class_) == ", header, 1, true)
    -- a member named like its own type: C++ says it "changes meaning"
    local Pos = mm.struct("Pos", { { "x", "i16" } })
    local Sh = mm.struct("Sh", { { "Pos", Pos }, { "uint8_t", "u8" }, { "q", Pos }, { "Pos_", "u8" } })
    local sh_c = "int f(Sh *s);\nint f(Sh *s) { s->Pos.x = 1; s->uint8_t = 2; s->Pos_ = 3; return s->q.x; }"
    local status, err, text = compile_header(Sh, nil, sh_c)
    assert(status == 0, err .. "\n" .. text)
    assert.matches("  Pos Pos__; /* field 'Pos' */", text, 1, true)
    assert.matches("  uint8_t uint8_t_; /* field 'uint8_t' */", text, 1, true)
    -- a type named like a C++ keyword: C only, and says so
    local kw = cheader.generate(mm.struct("new", { { "x", "u8" } }))
    assert.matches('#ifdef __cplusplus\n#error "this header is C only: new is a C++ keyword"', kw, 1, true)
    if not CXX then return end
    local cstatus, cerr, ctext = compile_header_cxx(Sh, nil,
      "int f(Sh *s);\nint f(Sh *s) { s->Pos__.x = 1; s->uint8_t_ = 2; s->Pos_ = 3; return s->q.x; }")
    assert(cstatus == 0, tostring(cerr) .. "\n" .. tostring(ctext))
    -- the header of every field type, as C++: enums, containers, u128, MM3_ALIGNAS, static asserts
    local cp = h.tmpname(".cc")
    h.write_file(cp, string.format('#include "memmap3.h"\n#include "%s"\n%s\n', dir .. "/all_types.h", [[
static_assert(sizeof(All().class_) == 1 && sizeof(All().default_) == 1, "fields");
static_assert(alignof(All_map_u32_i32_4_node) == 8, "MM3_ALIGNAS");
static_assert(ALL_ROOT_SIZE == sizeof(All), "root size");
int main() { All a = All(); a.class_ = CLASS_ROGUE; return a.class_ == CLASS_ROGUE ? 0 : 1; }]]))
    local _, status2, err2 = run(string.format("%s %s -Isrc -fsyntax-only -x c++ %s", CXX, CXXWARN,
      h.shell_quote(cp)))
    assert.equal(0, status2, err2)
    assert.matches("MM3_ALIGNAS(8) uint32_t next;", header, 1, true)
    local kp = h.tmpname(".h")
    h.write_file(kp, kw)
    local _, status3, err3 = run(string.format("%s %s -fsyntax-only -x c++ %s", CXX, CXXWARN,
      h.shell_quote(kp)))
    assert.equal(1, status3)
    assert.matches("this header is C only: new is a C++ keyword", err3, 1, true)
  end)

  it("refuses two structs of one name with different layouts, and names both", function()
    local A = mm.struct("Item", { { "x", "u8" } })
    local B = mm.struct("Item", { { "x", "u16" } })
    local Root = mm.struct("Root", { { "a", A }, { "b", mm.vec(B, 2) } })
    local ok, err = pcall(cheader.generate, Root)
    assert.is_false(ok)
    assert.matches("two types are named 'Item' with different layouts", err, 1, true)
    assert.matches("struct Item{x:u8}", err, 1, true)
    assert.matches("struct Item{x:u16}", err, 1, true)
    -- the same layout under two type objects is one struct
    local C = mm.struct("Item", { { "x", "u8" } })
    local text = cheader.generate(mm.struct("Root2", { { "a", A }, { "c", C } }))
    local _, n = text:gsub("typedef struct Item {", "")
    assert.equal(1, n)
    -- clashes of C names: an enum constant that is another macro, a struct named like a container
    assert.has_error(function()
      cheader.generate(mm.struct("S", { { "e", mm.enum("S", "u8", { "x" }) } }))
    end)
    local ok2, err2 = pcall(cheader.generate, mm.struct("R", { { "e", mm.enum("E", "u8", { "schema" }) } }))
    assert.is_true(ok2, err2)
    local ok3, err3 = pcall(cheader.generate, mm.struct("Q", { { "e", mm.enum("q", "u8", { "schema" }) } }))
    assert.is_false(ok3)
    assert.matches("Q_SCHEMA", err3, 1, true)
  end)

  it("reports errors on stderr with exit status 1 (2 for a usage error)", function()
    local bad = h.tmpname(".lua")
    h.write_file(bad, [[
      local mm = require "memmap3"
      local A = mm.struct("Item", { { "x", "u8" } })
      local B = mm.struct("Item", { { "y", "u32" } })
      return { Root = mm.struct("Root", { { "a", A }, { "b", B } }) }
    ]])
    local out, status, err = memmap3("cheader " .. h.shell_quote(bad) .. " Root")
    assert.equal(1, status)
    assert.equal("", out)
    assert.matches("two types are named 'Item'", err, 1, true)
    local _, s2, e2 = memmap3("cheader " .. h.shell_quote(dir .. "/all_types.lua") .. " Nope")
    assert.equal(1, s2)
    assert.matches("no type named 'Nope' in the schema (it has: All, Class, Entry, Pos)", e2, 1, true)
    local _, s3, e3 = memmap3("cheader " .. h.shell_quote(h.missing_path()) .. " All")
    assert.equal(1, s3)
    assert.matches("No such file", e3, 1, true)
    local _, s4, e4 = memmap3("cheader") -- a usage error (lua/memmap3/cli.lua): status 2
    assert.equal(2, s4)
    assert.matches("cheader needs a SCHEMA.lua", e4, 1, true)
    local _, s5, e5 = memmap3("cheader " .. h.shell_quote(dir .. "/all_types.lua") ..
      " All -o /nonexistent/dir/x.h")
    assert.equal(1, s5)
    assert.matches("/nonexistent/dir/x.h", e5, 1, true)
    local _, s6, e6 = memmap3("cheader " .. h.shell_quote(dir .. "/all_types.lua")) -- no NAME: usage
    assert.equal(2, s6)
    assert.matches("a NAME is needed", e6, 1, true)
    -- a module returning one struct needs no NAME
    local one = h.tmpname(".lua")
    h.write_file(one, 'return require("memmap3").struct("One", { { "x", "u8" } })')
    local o7, s7, e7 = memmap3("cheader " .. h.shell_quote(one))
    assert.equal(0, s7, e7)
    assert.matches("typedef struct One {", o7, 1, true)
    -- a mistake in the schema file keeps its file and line (memmap3's own
    -- source positions are what the command line leaves out)
    local syn = h.tmpname(".lua")
    h.write_file(syn, 'local mm = require "memmap3"\nreturn mm.struct("S", { { "x", "u8" } }\n')
    local _, s8, e8 = memmap3("cheader " .. h.shell_quote(syn) .. " S")
    assert.equal(1, s8)
    assert.matches(syn .. ":3:", e8, 1, true)
    local nilidx = h.tmpname(".lua")
    h.write_file(nilidx, 'local t\nreturn t.x\n')
    local _, s9, e9 = memmap3("cheader " .. h.shell_quote(nilidx) .. " S")
    assert.equal(1, s9)
    assert.matches(nilidx .. ":2: attempt to index", e9, 1, true)
    assert.equal("memmap3: " .. nilidx .. ":2: ", e9:sub(1, #nilidx + 13)) -- the file named once
  end)
end)
