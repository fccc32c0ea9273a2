-- Layout is C's (SPEC §2): for each schema, the equivalent C struct is
-- written to a temporary .c file that prints offsetof/sizeof/_Alignof for
-- every field; it is compiled with `cc`, run, and compared with the layout
-- memmap3 computed. A last test reads a file memmap3 wrote through the C
-- struct, byte for byte.
local mm = require "memmap3"
local h = require "helpers"
local sh_quote, tmpdir, rmrf = h.shell_quote, h.tmpdir, h.rmrf

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Compile `src` in dir and run it; returns its stdout.
local function compile_run(dir, src)
  local c, exe = dir .. "/layout.c", dir .. "/layout"
  write(c, src)
  local p = assert(io.popen(("cc -std=c11 -Wall -o %s %s 2>&1"):format(sh_quote(exe), sh_quote(c))))
  local msg = p:read("a")
  local ok = p:close()
  assert(ok, "cc failed:\n" .. msg .. "\n" .. src)
  p = assert(io.popen(sh_quote(exe)))
  local out = p:read("a")
  ok = p:close()
  assert(ok, "the C program failed")
  return out
end

-- C spelling of memmap3 types (the mapping the brief fixes).
local CTYPE = {
  u8 = "uint8_t", u16 = "uint16_t", u32 = "uint32_t", u64 = "uint64_t", u128 = "unsigned __int128",
  i8 = "int8_t", i16 = "int16_t", i32 = "int32_t", i64 = "int64_t", i128 = "__int128",
  usize = "uint64_t", isize = "int64_t", f32 = "float", f64 = "double", bool = "_Bool",
  char = "uint32_t",
}

-- base C type and array suffix of a memmap3 type
local function cdecl(t)
  if t.kind == "prim" then return CTYPE[t.name], "" end
  if t.kind == "string" then return "char", ("[%d]"):format(t.cap) end
  if t.kind == "bytes" then return "uint8_t", ("[%d]"):format(t.cap) end
  if t.kind == "enum" then return CTYPE[t.base.name], "" end
  if t.kind == "struct" then return "struct " .. t.name, "" end
  if t.kind == "array" then
    local base, dims = cdecl(t.elem)
    return base, ("[%d]"):format(t.n) .. dims
  end
  error("no C type for " .. t.canon)
end

-- C source declaring every struct reachable from root (dependencies first)
-- and a main that prints "S size align" and "S.f offset size" lines.
local function c_program(root)
  local decls, prints, seen = {}, {}, {}
  local function visit(t)
    if t.kind == "array" then return visit(t.elem) end
    if t.kind ~= "struct" or seen[t.name] then return end
    seen[t.name] = true
    for _, f in ipairs(t.fields) do visit(f.type) end
    local lines = {("struct %s {"):format(t.name)}
    for _, f in ipairs(t.fields) do
      local base, dims = cdecl(f.type)
      lines[#lines + 1] = ("  %s %s%s;"):format(base, f.name, dims)
    end
    lines[#lines + 1] = "};"
    decls[#decls + 1] = table.concat(lines, "\n")
    prints[#prints + 1] = ('  printf("%s %%zu %%zu\\n", sizeof(struct %s), _Alignof(struct %s));')
      :format(t.name, t.name, t.name)
    for _, f in ipairs(t.fields) do
      prints[#prints + 1] = ('  printf("%s.%s %%zu %%zu\\n", offsetof(struct %s, %s),'
        .. ' sizeof(((struct %s *)0)->%s));'):format(t.name, f.name, t.name, f.name, t.name, f.name)
    end
  end
  visit(root)
  return table.concat({
    "#include <stddef.h>", "#include <stdint.h>", "#include <stdio.h>", "",
    table.concat(decls, "\n\n"), "",
    "int main(void) {", table.concat(prints, "\n"), "  return 0;", "}", "",
  }, "\n")
end

-- What memmap3 computed, in the C program's output format.
local function mm_layout(root)
  local out, seen = {}, {}
  local function visit(t)
    if t.kind == "array" then return visit(t.elem) end
    if t.kind ~= "struct" or seen[t.name] then return end
    seen[t.name] = true
    for _, f in ipairs(t.fields) do visit(f.type) end
    out[#out + 1] = ("%s %d %d"):format(t.name, t.size, t.align)
    for _, f in ipairs(t.fields) do
      out[#out + 1] = ("%s.%s %d %d"):format(t.name, f.name, f.offset, f.type.size)
    end
  end
  visit(root)
  return out
end

local function lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

local Inner = mm.struct("Inner", {{"a", "u8"}, {"b", "u64"}, {"c", "u8"}})
local Wide = mm.struct("Wide", {{"a", "u8"}, {"w", "u128"}, {"b", "u8"}})

local SCHEMAS = {
  {"every primitive, mixed for padding", mm.struct("Mixed", {
    {"a", "u8"}, {"b", "u16"}, {"c", "u8"}, {"d", "u32"}, {"e", "u8"}, {"f", "u64"},
    {"g", "u8"}, {"h", "u128"}, {"i", "u8"}, {"j", "i8"}, {"k", "i16"}, {"l", "i32"},
    {"m", "i64"}, {"n", "i128"}, {"o", "u8"}, {"p", "usize"}, {"q", "isize"}, {"r", "bool"},
    {"s", "f32"}, {"t", "u8"}, {"u", "f64"}, {"v", "bool"}, {"w", "char"}, {"x", "u8"},
    {"y", "string<3>"}, {"z", "bytes<5>"}, {"last", "u8"},
  })},
  {"nested structs", mm.struct("Outer", {
    {"x", "u8"}, {"inner", Inner}, {"y", "u16"}, {"more", mm.array(Inner, 3)}, {"z", "u8"},
    {"wide", Wide}, {"tail", "u8"},
  })},
  {"arrays of every dimension", mm.struct("Arrays", {
    {"tag", "u8"}, {"grid", "u8[16][16][4]"}, {"m", "u16[3][5]"}, {"d", "f64[2]"},
    {"names", "string<5>[3]"}, {"raw", "bytes<3>[2][2]"}, {"flags", "bool[7]"},
    {"chars", "char[3]"}, {"inners", mm.array(Inner, 2, 2)}, {"end_", "u8"},
  })},
  {"enums of several bases", mm.struct("Enums", {
    {"a", mm.enum("E8", "u8", {"x", "y", "z"})}, {"b", mm.enum("E16", "u16", {"p"})},
    {"c", "u8"}, {"d", mm.enum("E32", "i32", {"q", "r"})}, {"e", "u8"},
    {"f", mm.enum("E64", "u64", {"s"})}, {"g", mm.array(mm.enum("E8b", "u8", {"t"}), 3)},
    {"h", "u8"},
  })},
  {"u128 alignment 16", mm.struct("U128s", {
    {"a", "u8"}, {"w", Wide}, {"b", "u8"}, {"c", "i128"}, {"d", "u8"}, {"e", "u128[2]"}, {"f", "u8"},
  })},
  {"bool, char and usize", mm.struct("Small", {
    {"a", "bool"}, {"c", "char"}, {"b", "bool"}, {"n", "usize"}, {"d", "bool"}, {"i", "isize"},
    {"e", "char"}, {"f", "bool"},
  })},
  {"atomic fields", mm.struct("Atomics", {
    {"flag", "bool", atomic = true}, {"a", "u64", atomic = true}, {"b", "u8", atomic = true},
    {"c", "i32", atomic = true}, {"d", "u16", atomic = true}, {"e", "isize", atomic = true},
  })},
  {"the SPEC's Player and Save", (function()
    local Class = mm.enum("Class", "u8", {"warrior", "mage", "rogue"})
    local Player = mm.struct("Player", {
      {"id", "u64"}, {"name", "string<32>"}, {"pos", "f32[3]"}, {"kills", "u64", atomic = true},
      {"class", Class}, {"salt", "bytes<16>"},
    })
    return mm.struct("Save", {{"version", "u32"}, {"players", mm.array(Player, 4)}})
  end)()},
}

describe("C layout", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function() rmrf(dir) end)

  for _, case in ipairs(SCHEMAS) do
    local name, T = case[1], case[2]
    it("matches cc for " .. name, function()
      local want = lines(compile_run(dir, c_program(T)))
      local got = mm_layout(T)
      assert.is_true(#want > 2, "the C program printed nothing")
      assert.same(want, got)
      -- the root's own line is size and alignment
      assert.equal(("%s %d %d"):format(T.name, T.size, T.align), want[#want - #T.fields])
    end)
  end

  it("hand-written C struct matches a mixed struct", function()
    local T = mm.struct("H", {
      {"a", "u8"}, {"b", "u128"}, {"c", "char"}, {"d", "bool"}, {"e", "usize"}, {"f", "string<7>"},
      {"g", "i16"},
    })
    local out = compile_run(dir, [[
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
struct H { uint8_t a; unsigned __int128 b; uint32_t c; _Bool d; uint64_t e; char f[7]; int16_t g; };
int main(void) {
  printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n", sizeof(struct H), _Alignof(struct H),
         offsetof(struct H, a), offsetof(struct H, b), offsetof(struct H, c), offsetof(struct H, d),
         offsetof(struct H, e), offsetof(struct H, f), offsetof(struct H, g), (size_t)0);
  return 0;
}
]])
    local c = {}
    for n in out:gmatch("%d+") do c[#c + 1] = tonumber(n) end
    assert.same({64, 16, 0, 16, 32, 36, 40, 48, 56, 0}, c)
    local m = {T.size, T.align}
    for _, f in ipairs(T.fields) do m[#m + 1] = f.offset end
    m[#m + 1] = 0
    assert.same(c, m)
  end)

  it("a C program reads what memmap3 wrote through the same struct", function()
    local E = mm.enum("E", "u8", {"zero", "one", "two"})
    local T = mm.struct("Rec", {
      {"a", "u8"}, {"b", "u64"}, {"c", "i16"}, {"big", "u128"}, {"neg", "i128"}, {"flag", "bool"},
      {"ch", "char"}, {"f", "f64"}, {"g", "f32"}, {"name", "string<8>"}, {"grid", "u16[2][3]"},
      {"e", E}, {"n", "usize"}, {"k", "u32", atomic = true},
    })
    local path = dir .. "/rec.mm3"
    local r = assert(mm.create(path, T))
    r.a, r.b, r.c = 200, -1, -1234
    r.big = "340282366920938463463374607431768211455"
    r.neg = "-170141183460469231731687303715884105728"
    r.flag, r.ch, r.f, r.g, r.name = true, "é", 0.1, 1.5, "héllo"
    r.grid = {{1, 2, 3}, {4, 5, 65535}}
    r.e, r.n = "two", 1 << 40
    r.k = 4000000000
    local off = mm.info(r).root_offset
    assert.is_true(mm.flush(r))
    mm.close(r)
    local main = ([[
int main(int argc, char **argv) {
  (void)argc;
  FILE *f = fopen(argv[1], "rb");
  if (!f) return 1;
  struct Rec r;
  if (fseek(f, %d, SEEK_SET) || fread(&r, sizeof r, 1, f) != 1) return 2;
  fclose(f);
  printf("%%u %%lld %%d\n", r.a, (long long)r.b, r.c);
  printf("%%016llx%%016llx\n", (unsigned long long)(r.big >> 64), (unsigned long long)r.big);
  printf("%%016llx%%016llx\n", (unsigned long long)((unsigned __int128)r.neg >> 64),
         (unsigned long long)r.neg);
  printf("%%d %%u %%.17g %%.9g %%s\n", r.flag, r.ch, r.f, r.g, r.name);
  for (int i = 0; i < 2; i++) for (int j = 0; j < 3; j++) printf("%%u ", r.grid[i][j]);
  printf("\n%%u %%llu %%u\n", r.e, (unsigned long long)r.n, r.k);
  return 0;
}
]]):format(off)
    local prog = c_program(T):gsub("int main%(void%) {.-\n}\n$", function() return main end)
    local c, exe = dir .. "/read.c", dir .. "/read"
    write(c, prog)
    assert.is_true(os.execute(("cc -std=c11 -o %s %s"):format(sh_quote(exe), sh_quote(c))))
    local p = assert(io.popen(sh_quote(exe) .. " " .. sh_quote(path)))
    local out = p:read("a")
    assert.is_true(p:close())
    assert.same({
      "200 -1 -1234",
      "ffffffffffffffffffffffffffffffff",
      "80000000000000000000000000000000",
      "1 233 0.10000000000000001 1.5 héllo",
      "1 2 3 4 5 65535 ",
      "2 1099511627776 4000000000",
    }, lines(out))
  end)
end)
