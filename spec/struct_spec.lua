-- Files (SPEC §3) and values (SPEC §4): mm.create / mm.open and their
-- failures, scalars of every type, strings, bytes, chars, enums, nested
-- structs and arrays, table assignment, iteration, mm.totable, closing, and
-- the module functions mm.flush / mm.close / mm.schema / mm.path / mm.info.
local mm = require "memmap3"
local h = require "helpers"
local sh_quote, tmpdir, rmrf, raises = h.shell_quote, h.tmpdir, h.rmrf, h.raises

local spack, sunpack = string.pack, string.unpack

local function shell(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+$", ""))
end

-- Calls fn(...) and checks it returned fail, "path: ...phrase...", code
-- without raising.
local function fails(path, phrase, code, fn, ...)
  local r = table.pack(pcall(fn, ...))
  assert.is_true(r[1], "raised instead of returning fail: " .. tostring(r[2]))
  local v, msg, c = r[2], r[3], r[4]
  assert.is_nil(v)
  assert.is_string(msg)
  assert.equal(path .. ": ", msg:sub(1, #path + 2))
  if phrase then
    assert.is_truthy(msg:find(phrase, 1, true), ("%q does not contain %q"):format(msg, phrase))
  end
  assert.equal("integer", math.type(c))
  if code then assert.equal(code, c) end
  return msg, c
end

-- Raw bytes of a file.
local function raw(path, off, n) return h.read_file(path, off, n) end

local Class = mm.enum("Class", "u8", {"warrior", "mage", "rogue"})
local Player = mm.struct("Player", {
  {"id", "u64"}, {"name", "string<32>"}, {"pos", "f32[3]"}, {"kills", "u64", atomic = true},
  {"class", Class}, {"salt", "bytes<16>"},
})
local Save = mm.struct("Save", {
  {"version", "u32"}, {"players", mm.array(Player, 4)}, {"grid", "u8[3][2]"}, {"best", Player},
})

-- One field of each scalar type.
local Scalars = mm.struct("Scalars", {
  {"u8", "u8"}, {"u16", "u16"}, {"u32", "u32"}, {"u64", "u64"}, {"u128", "u128"},
  {"i8", "i8"}, {"i16", "i16"}, {"i32", "i32"}, {"i64", "i64"}, {"i128", "i128"},
  {"usize", "usize"}, {"isize", "isize"}, {"f32", "f32"}, {"f64", "f64"}, {"bool", "bool"},
  {"char", "char"}, {"s", "string<8>"}, {"b", "bytes<4>"}, {"class", Class},
})

local EEXIST, ENOENT, EISDIR = 17, 2, 21

describe("memmap3 files and values", function()
  local dir
  before_each(function() dir = tmpdir() end)
  after_each(function()
    collectgarbage()
    collectgarbage()
    rmrf(dir)
    h.cleanup()
  end)

  local function path(name) return dir .. "/" .. (name or "f.mm3") end

  -- -------------------------------------------------------------------------
  describe("mm.create", function()
    it("creates a zeroed file whose root has the schema's layout", function()
      local p = path()
      local s = assert(mm.create(p, Save))
      assert.equal(0, s.version)
      assert.equal(0, s.players[4].id)
      assert.equal("", s.players[1].name)
      assert.equal("warrior", s.players[1].class)
      assert.equal(string.rep("\0", 16), s.players[1].salt)
      local info = mm.info(s)
      assert.equal(Save.size, info.root_size)
      assert.is_true(h.file_size(p) >= info.root_offset + info.root_size)
      assert.equal("MEMMAP3\0", raw(p, 0, 8))
      mm.close(s)
    end)

    it("fails with fail, msg, code if the file exists, and leaves it alone", function()
      local p = path()
      local s = assert(mm.create(p, Save))
      s.version = 42
      mm.close(s)
      fails(p, "File exists", EEXIST, mm.create, p, Save)
      local before = raw(p)
      h.write_file(dir .. "/other", "not mine")
      fails(dir .. "/other", "File exists", EEXIST, mm.create, dir .. "/other", Save)
      assert.equal("not mine", raw(dir .. "/other"))
      assert.equal(before, raw(p))
      s = assert(mm.open(p, Save))
      assert.equal(42, s.version)
      mm.close(s)
    end)

    it("leaves no temporary file behind", function()
      local s = assert(mm.create(path(), Save))
      mm.close(s)
      assert.equal("f.mm3", shell("ls " .. sh_quote(dir)))
    end)

    it("needs a type; a root of any other type is a cell with one field, value", function()
      raises("needs a type", mm.create, path())
      raises("unknown type 'nope'", mm.create, path(), "nope")
      assert.is_nil(h.file_size(path()))
      local p = path("cell.mm3")
      local c = assert(mm.create(p, "u64"))
      c.value = 42
      local s = assert(mm.create(path("s.mm3"), "string<8>"))
      local _ = s << "hi"
      assert.equal("hi", s.value)
      -- a refused `<<` raises at the line that wrote it (it said init.lua's)
      local ok, err = pcall(function() _ = s << "far too long" end)
      assert.is_false(ok)
      assert.matches("^[^\n]*struct_spec%.lua:%d+: string<8> field 'value': string of 12 bytes", err)
      assert.equal("hi", s.value)
      mm.close(s)
      mm.close(c)
      local out = h.run_lua([[local mm = require "memmap3"
        local c = assert(mm.open(...)); print(c.value, mm.schema(c).canon)]], {args = {p}})
      assert.equal("42\tu64\n", out)
    end)

    it("raises for a path that is not a string and for unknown options", function()
      raises("path must be a string", mm.create, 5, Save)
      raises("unknown option 'bogus'", mm.create, path(), Save, {bogus = true})
      raises("option 'mode'", mm.create, path(), Save, {mode = "abc"})
      raises("option 'mode'", mm.create, path(), Save, {mode = -1}) -- would set setuid, setgid, sticky
      raises("option 'mode'", mm.create, path(), Save, {mode = 1 << 40})
      raises("option 'mode'", mm.create, path(), Save, {mode = 4095}) -- 07777: permission bits only
      assert.is_nil(h.file_size(path()))
      -- a NUL inside a path would name another file to the system
      raises("the path contains a NUL byte", mm.create, path() .. "\0tail", Save)
      raises("the path contains a NUL byte", mm.open, path() .. "\0tail", Save, {create = true})
      raises("the path contains a NUL byte", mm.map, path() .. "\0tail", {create = true})
      assert.is_nil(h.file_size(path()))
    end)

    it("array roots: mm.create(path, \"u32[100]\")", function()
      local p = path()
      local a = assert(mm.create(p, "u32[100]"))
      assert.equal(100, #a)
      assert.equal(0, a[1])
      assert.equal(0, a[100])
      assert.is_nil(a[101])
      a[1], a[100] = 7, 4294967295
      raises("out of range", function() a[101] = 1 end)
      raises("out of range", function() a[2] = -1 end)
      local off = mm.info(a).root_offset
      assert.equal(spack("<I4", 7), raw(p, off, 4))
      assert.equal(spack("<I4", 4294967295), raw(p, off + 396, 4))
      mm.close(a)
      a = assert(mm.open(p))
      assert.equal("root u32[100]", mm.canonical(mm.schema(a)))
      assert.equal(100, #a)
      assert.equal(7, a[1])
      assert.equal(4294967295, a[100])
      mm.close(a)
    end)

    it("array roots of structs", function()
      local p = path()
      local a = assert(mm.create(p, mm.array(Player, 3)))
      assert.equal(3, #a)
      a[3].name = "Ana"
      a[2] = {id = 5, class = "rogue"}
      mm.close(a)
      a = assert(mm.open(p, mm.array(Player, 3)))
      assert.equal("Ana", a[3].name)
      assert.equal(5, a[2].id)
      assert.equal("rogue", a[2].class)
      mm.close(a)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("mm.open", function()
    it("with a schema reads what an earlier open wrote", function()
      local p = path()
      local s = assert(mm.create(p, Save))
      s.version = 3
      s.players[2].name = "Bo"
      mm.close(s)
      s = assert(mm.open(p, Save))
      assert.equal(3, s.version)
      assert.equal("Bo", s.players[2].name)
      assert.equal(Save, mm.schema(s))
      mm.close(s)
    end)

    it("without a schema uses the one stored in the file", function()
      local p = path()
      local s = assert(mm.create(p, Save))
      s.version = 9
      s.players[1].class = "mage"
      s.players[1].kills = 12
      mm.close(s)
      s = assert(mm.open(p))
      assert.equal(9, s.version)
      assert.equal("mage", s.players[1].class)
      assert.equal(12, s.players[1].kills:load())
      assert.equal(mm.canonical(Save), mm.canonical(mm.schema(s)))
      assert.equal(Save.size, mm.schema(s).size)
      mm.close(s)
    end)

    it("files of one stored schema share one type; 100 different schemas each open with their own", function()
      local pa, pb = path("a.mm3"), path("b.mm3")
      local a0 = assert(mm.create(pa, Save))
      local b0 = assert(mm.create(pb, Save))
      mm.close(a0)
      mm.close(b0)
      local a, b = assert(mm.open(pa)), assert(mm.open(pb))
      collectgarbage("collect") -- the parsed schema survives collections between opens
      local c = assert(mm.open(pa))
      assert.equal(mm.schema(a), mm.schema(b))
      assert.equal(mm.schema(a), mm.schema(c))
      mm.close(a)
      mm.close(b)
      mm.close(c)
      -- more schemas than the parsed-schema cache holds (64): each file still gets its own layout
      local paths = {}
      for i = 1, 100 do
        paths[i] = path("s" .. i .. ".mm3")
        local T = mm.struct("S" .. i, { { "a", "u8[" .. i .. "]" }, { "n", "i64" } })
        local s = assert(mm.create(paths[i], T))
        s.n = i
        mm.close(s)
      end
      for round = 1, 2 do
        for i = 1, 100 do
          local s = assert(mm.open(paths[i]))
          assert.equal(i, #s.a, "round " .. round)
          assert.equal(i, s.n)
          assert.equal("S" .. i, mm.schema(s).name)
          mm.close(s)
        end
      end
    end)

    it("{create = true} creates a missing file and opens an existing one", function()
      local p = path()
      local s = assert(mm.open(p, Save, {create = true}))
      assert.equal(0, s.version)
      s.version = 5
      mm.close(s)
      s = assert(mm.open(p, Save, {create = true}))
      assert.equal(5, s.version)
      mm.close(s)
    end)

    it("{create = true} without a schema opens an existing file", function()
      local p = path()
      local s = assert(mm.create(p, Save))
      s.version = 6
      mm.close(s)
      local t, msg = mm.open(p, {create = true})
      assert.is_not_nil(t, msg)
      assert.equal(6, t.version)
      mm.close(t)
    end)

    it("{create = true} with a different layout fails and keeps the file", function()
      local p = path()
      mm.close(assert(mm.create(p, Save)))
      local before = raw(p)
      fails(p, "field 'version' is u32 in the file, u64 in the schema", mm.ESCHEMA,
        mm.open, p, mm.struct("Save", {{"version", "u64"}}), {create = true})
      assert.equal(before, raw(p))
    end)

    it("{readonly = true}: reads work, every write raises and changes nothing", function()
      local p = path()
      local s = assert(mm.create(p, Save))
      s.version = 4
      s.players[1].name = "Ana"
      s.players[1].kills = 3
      mm.close(s)
      local before = raw(p)
      local r = assert(mm.open(p, Save, {readonly = true}))
      assert.equal(4, r.version)
      assert.is_true(mm.info(r).readonly)
      raises({"field 'version'", p, "read-only"}, function() r.version = 5 end)
      raises({"field 'name'", p, "read-only"}, function() r.players[1].name = "Bob" end)
      raises({"element '1'", p, "read-only"}, function() r.grid[1][1] = 1 end)
      raises("read-only", function() r.players[1] = {id = 1} end)
      raises("read-only", function() r.players = {} end)
      raises("read-only", function() r.grid[1][1] = 1 end)
      raises("read-only", function() r.players[1].kills = 4 end)
      raises("read-only", function() r.players[1].kills:fetch_add(1) end)
      raises("read-only", function() r.players[1].kills:store(1) end)
      assert.equal(4, r.version)
      assert.equal("Ana", r.players[1].name)
      assert.equal(3, r.players[1].kills:load())
      assert.is_true(mm.flush(r))
      mm.close(r)
      assert.equal(before, raw(p))
      -- readonly without a schema
      r = assert(mm.open(p, {readonly = true}))
      assert.equal(4, r.version)
      raises("read-only", function() r.version = 1 end)
      mm.close(r)
    end)

    it("readonly and create exclude each other", function()
      raises("exclude each other", mm.open, path(), Save, {readonly = true, create = true})
    end)

    local function umask()
      return tonumber(shell("umask"), 8)
    end

    it("{mode = \"600\"} sets the permission bits of a new file", function()
      local p = path()
      mm.close(assert(mm.create(p, Save, {mode = "600"})))
      assert.equal("600", shell("stat -c %a " .. sh_quote(p)))
    end)

    it("mode as an integer, and with open {create = true}; umask applies", function()
      local p1, p2 = path("a.mm3"), path("b.mm3")
      mm.close(assert(mm.create(p1, Save, {mode = tonumber("640", 8)})))
      mm.close(assert(mm.open(p2, Save, {create = true, mode = "0640"})))
      local want = ("%o"):format(tonumber("640", 8) & ~umask())
      assert.equal(want, shell("stat -c %a " .. sh_quote(p1)))
      assert.equal(want, shell("stat -c %a " .. sh_quote(p2)))
    end)

    it("mode does not change an existing file", function()
      local p = path()
      mm.close(assert(mm.create(p, Save, {mode = "600"})))
      mm.close(assert(mm.open(p, Save, {create = true, mode = "644"})))
      assert.equal("600", shell("stat -c %a " .. sh_quote(p)))
    end)

    it("a layout mismatch fails naming the first difference", function()
      local p = path()
      local V = mm.struct("S", {{"version", "u32"}, {"score", "u32"}, {"arr", "u8[4]"}})
      mm.close(assert(mm.create(p, V)))
      fails(p, "field 'version' is u32 in the file, u64 in the schema", mm.ESCHEMA,
        mm.open, p, mm.struct("S", {{"version", "u64"}, {"score", "u32"}, {"arr", "u8[4]"}}))
      fails(p, "field 'score' is u32 in the file, u64 in the schema", mm.ESCHEMA,
        mm.open, p, mm.struct("S", {{"version", "u32"}, {"score", "u64"}, {"arr", "u8[4]"}}))
      fails(p, "field 'arr' is u8[4] in the file, u8[5] in the schema", mm.ESCHEMA,
        mm.open, p, mm.struct("S", {{"version", "u32"}, {"score", "u32"}, {"arr", "u8[5]"}}))
      fails(p, "field 'arr' is in the file but not in the schema", mm.ESCHEMA,
        mm.open, p, mm.struct("S", {{"version", "u32"}, {"score", "u32"}}))
      fails(p, "root is S in the file, u32[3] in the schema", mm.ESCHEMA, mm.open, p, "u32[3]")
      -- still opens with the right schema
      mm.close(assert(mm.open(p, V)))
    end)

    it("a nested mismatch names the path to the field", function()
      local p = path()
      mm.close(assert(mm.create(p, Save)))
      local P2 = mm.struct("Player", {
        {"id", "u64"}, {"name", "string<16>"}, {"pos", "f32[3]"}, {"kills", "u64", atomic = true},
        {"class", Class}, {"salt", "bytes<16>"},
      })
      local S2 = mm.struct("Save", {
        {"version", "u32"}, {"players", mm.array(P2, 4)}, {"grid", "u8[3][2]"}, {"best", P2},
      })
      fails(p, "field 'players[].name' is string<32> in the file, string<16> in the schema", mm.ESCHEMA,
        mm.open, p, S2)
    end)

    it("a foreign file (random bytes) fails", function()
      local p = path()
      local rnd = assert(io.open("/dev/urandom", "rb")):read(8192)
      h.write_file(p, rnd)
      fails(p, "not a memmap3 file", mm.EBADFILE, mm.open, p, Save)
      fails(p, "not a memmap3 file", mm.EBADFILE, mm.open, p)
      fails(p, "not a memmap3 file", mm.EBADFILE, mm.open, p, Save, {create = true})
      fails(p, "not a memmap3 file", mm.EBADFILE, mm.open, p, Save, {readonly = true})
      assert.equal(rnd, raw(p))
    end)

    it("an empty file fails", function()
      local p = h.write_file(path(), "")
      fails(p, "not a memmap3 file", mm.EBADFILE, mm.open, p, Save)
      fails(p, "not a memmap3 file", mm.EBADFILE, mm.open, p)
      assert.equal(0, h.file_size(p))
    end)

    it("an existing empty file is initialised by {create = true}", function()
      local p = h.write_file(path(), "")
      local s = assert(mm.open(p, Save, {create = true}))
      assert.equal(0, s.version)
      s.version = 3
      mm.close(s)
      assert.equal("MEMMAP3\0", raw(p, 0, 8))
      s = assert(mm.open(p))
      assert.equal(3, s.version)
      mm.close(s)
    end)

    it("a truncated file fails", function()
      local p = path()
      local Big = mm.struct("Big", {{"data", "u8[10000]"}})
      mm.close(assert(mm.create(p, Big)))
      local whole = raw(p)
      assert.is_true(#whole >= 10000)
      for _, n in ipairs{20, 100, 255, 256, 300, 4096, 5000, #whole - 1} do
        local t = h.write_file(path("t" .. n .. ".mm3"), whole:sub(1, n))
        fails(t, "truncated", mm.ETRUNCATED, mm.open, t, Big)
        fails(t, "truncated", mm.ETRUNCATED, mm.open, t)
      end
      -- shorter than the magic number: not recognisable at all
      local t = h.write_file(path("t4.mm3"), whole:sub(1, 4))
      fails(t, nil, nil, mm.open, t, Big)
    end)

    it("a corrupted header or schema fails", function()
      local p = path()
      mm.close(assert(mm.create(p, Save)))
      local whole = raw(p)
      -- flip one byte of the stored schema text (at offset 1024)
      local bad = whole:sub(1, 1028) .. string.char(whole:byte(1029) ~ 0x20) .. whole:sub(1030)
      local c = h.write_file(path("c.mm3"), bad)
      fails(c, "corrupt", mm.ECORRUPT, mm.open, c, Save)
      fails(c, "corrupt", mm.ECORRUPT, mm.open, c)
      -- a newer format version (u32 at offset 8)
      local newer = whole:sub(1, 8) .. spack("<I4", 99) .. whole:sub(13)
      local v = h.write_file(path("v.mm3"), newer)
      fails(v, "newer", mm.EVERSION, mm.open, v, Save)
    end)

    it("a non-existent path fails", function()
      local p = path("missing.mm3")
      fails(p, "No such file or directory", ENOENT, mm.open, p, Save)
      fails(p, "No such file or directory", ENOENT, mm.open, p)
      fails(p, "No such file or directory", ENOENT, mm.open, p, Save, {readonly = true})
      local q = path("no/such/dir.mm3")
      fails(q, "No such file or directory", ENOENT, mm.open, q, Save, {create = true})
      fails(q, "No such file or directory", ENOENT, mm.create, q, Save)
      assert.is_nil(h.file_size(p))
    end)

    it("a directory fails", function()
      fails(dir, "Is a directory", EISDIR, mm.open, dir, Save)
      fails(dir, "Is a directory", EISDIR, mm.open, dir)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("scalars", function()
    local s, p
    before_each(function()
      p = path("scalars.mm3")
      s = assert(mm.create(p, Scalars))
    end)
    after_each(function() mm.close(s) end)

    local function field_bytes(name)
      local f = Scalars.index[name]
      return raw(p, mm.info(s).root_offset + f.offset, f.type.size)
    end

    local CASES = {
      u8 = {0, 1, 255}, u16 = {0, 65535}, u32 = {0, 4294967295},
      i8 = {-128, 127, -1}, i16 = {-32768, 32767}, i32 = {-2147483648, 2147483647},
      u64 = {0, math.maxinteger, 1 << 40}, i64 = {math.mininteger, math.maxinteger, -1},
      usize = {0, 1 << 62}, isize = {-5, math.mininteger},
      f64 = {0.0, math.pi, -1e300, math.huge, -math.huge}, f32 = {1.5, -0.25, 1e10},
      bool = {true, false}, char = {"a", "é", "€", "😀"},
      u128 = {0, 5, math.maxinteger}, i128 = {-1, math.mininteger, math.maxinteger},
    }
    local FMT = {
      u8 = "<I1", u16 = "<I2", u32 = "<I4", u64 = "<J", i8 = "<i1", i16 = "<i2", i32 = "<i4",
      i64 = "<j", usize = "<J", isize = "<j", f32 = "<f", f64 = "<d",
    }
    for name, values in pairs(CASES) do
      it(name .. " reads back what was written, with the bytes C would store", function()
        for _, v in ipairs(values) do
          s[name] = v
          local got = s[name]
          if name == "f32" then
            assert.equal(sunpack("<f", spack("<f", v)), got)
          else
            assert.equal(v, got)
          end
          assert.equal(math.type(v), math.type(got))
          if FMT[name] then assert.equal(spack(FMT[name], v), field_bytes(name)) end
        end
      end)
    end

    it("f32 rounds to single precision; NaN stays NaN", function()
      s.f32 = 0.1
      assert.equal(sunpack("<f", spack("<f", 0.1)), s.f32)
      assert.not_equal(0.1, s.f32)
      s.f32 = 0 / 0
      assert.is_true(s.f32 ~= s.f32)
      s.f64 = 0 / 0
      assert.is_true(s.f64 ~= s.f64)
      s.f64 = 3 -- an integer into a float field
      assert.equal(3.0, s.f64)
      assert.equal("float", math.type(s.f64))
      -- a finite value beyond f32's range is refused (it would become inf); inf itself is stored
      s.f32 = 2.5
      raises({"field 'f32'", "out of range for f32"}, function() s.f32 = 1e300 end)
      raises({"field 'f32'", "out of range for f32"}, function() s.f32 = -3.5e38 end)
      assert.equal(2.5, s.f32)
      s.f32 = math.huge
      assert.equal(math.huge, s.f32)
      s.f32 = 3.4e38
      assert.is_true(s.f32 < math.huge)
      s.f32 = 3.4028235e38 -- FLT_MAX as printed: rounds to FLT_MAX, not refused
      assert.equal(sunpack("<f", spack("<f", 3.4028235e38)), s.f32)
    end)

    it("a zeroed file reads as zero values", function()
      assert.equal(0, s.u8)
      assert.equal(0, s.u128)
      assert.equal(0.0, s.f64)
      assert.is_false(s.bool)
      assert.equal("", s.char)
      assert.equal("", s.s)
      assert.equal("\0\0\0\0", s.b)
      assert.equal("warrior", s.class)
    end)

    local BAD = {
      {"u8", 300, "out of range"}, {"u8", -1, "out of range"}, {"i8", -129, "out of range"},
      {"i8", 128, "out of range"}, {"u16", 70000, "out of range"}, {"u16", -1, "out of range"},
      {"i16", 32768, "out of range"}, {"i16", -32769, "out of range"},
      {"u32", 4294967296, "out of range"}, {"u32", -1, "out of range"},
      {"i32", 2147483648, "out of range"}, {"i32", -2147483649, "out of range"},
      {"u8", 3.5, "expected an integer"}, {"u64", 3.5, "expected an integer"},
      {"i64", 2 ^ 63, "expected an integer"}, {"u32", "3", "expected an integer"},
      {"u8", nil, "expected an integer"}, {"u8", true, "expected an integer"},
      {"u8", {}, "expected an integer"}, {"f64", "1.5", "expected a number"},
      {"f32", nil, "expected a number"}, {"bool", 1, "expected a boolean"},
      {"bool", nil, "expected a boolean"}, {"bool", "true", "expected a boolean"},
      {"u128", 1.5, "expected an integer"}, {"u128", true, "expected an integer"},
      {"u128", "12\0xyz", "NUL"},
      {"char", 65, "one-character string"}, {"char", "ab", "one UTF-8 character"},
      {"char", "\xff", "one UTF-8 character"}, {"char", "\xed\xa0\x80", "one UTF-8 character"},
      {"char", "\0", "cannot hold NUL"},
      {"s", 5, "expected a string"}, {"s", nil, "expected a string"}, {"b", 5, "expected a string"},
      {"class", 1.5, "enum"}, {"class", "bard", "'bard' is not a name"}, {"class", nil, "enum"},
    }
    local GOOD = {
      u8 = 7, u16 = 7, u32 = 7, u64 = 7, i8 = 7, i16 = 7, i32 = 7, i64 = 7, u128 = 7, f64 = 7.5,
      f32 = 7.5, bool = true, char = "x", s = "seven", b = "abcd", class = "mage",
    }
    for _, case in ipairs(BAD) do
      local name, v, why = case[1], case[2], case[3]
      it(("%s = %s raises naming the field and keeps the old value"):format(name, tostring(v)), function()
        s[name] = GOOD[name]
        raises({("field '%s'"):format(name), why}, function() s[name] = v end)
        assert.equal(GOOD[name], s[name])
      end)
    end

    it("u64 wraps as string.unpack(\"J\"): -1 reads back as -1", function()
      s.u64 = -1
      assert.equal(-1, s.u64)
      assert.equal(string.rep("\xff", 8), field_bytes("u64"))
      assert.equal(sunpack("<J", string.rep("\xff", 8)), s.u64)
      assert.is_true(math.ult(1, s.u64)) -- as unsigned it is the largest
    end)

    it("u64: math.maxinteger + 1 is math.mininteger, i.e. 2^63", function()
      s.u64 = math.maxinteger
      assert.equal(math.maxinteger, s.u64)
      s.u64 = math.maxinteger + 1
      assert.equal(math.mininteger, s.u64)
      assert.equal("\0\0\0\0\0\0\0\x80", field_bytes("u64"))
      raises({"field 'u64'", "expected an integer"}, function() s.u64 = 2 ^ 64 end)
      assert.equal(math.mininteger, s.u64)
    end)

    it("u128 holds its maximum losslessly as a decimal string", function()
      local max = "340282366920938463463374607431768211455"
      s.u128 = max
      assert.equal(max, s.u128)
      assert.equal(string.rep("\xff", 16), field_bytes("u128"))
      s.u128 = "18446744073709551616" -- 2^64
      assert.equal("18446744073709551616", s.u128)
      assert.equal(string.rep("\0", 8) .. "\1" .. string.rep("\0", 7), field_bytes("u128"))
      s.u128 = "9223372036854775808" -- 2^63: too big for an integer, read as a string
      assert.equal("9223372036854775808", s.u128)
    end)

    it("u128 and i128 read as integers when they fit", function()
      s.u128 = "42"
      assert.equal(42, s.u128)
      assert.equal("integer", math.type(s.u128))
      s.u128 = "0xff"
      assert.equal(255, s.u128)
      s.i128 = "-5"
      assert.equal(-5, s.i128)
      assert.equal("integer", math.type(s.i128))
      s.i128 = math.mininteger
      assert.equal(math.mininteger, s.i128)
      assert.equal(spack("<j", math.mininteger) .. string.rep("\xff", 8), field_bytes("i128"))
      s.i128 = -1
      assert.equal(string.rep("\xff", 16), field_bytes("i128"))
    end)

    it("i128 holds its minimum and maximum losslessly", function()
      local min = "-170141183460469231731687303715884105728"
      local max = "170141183460469231731687303715884105727"
      s.i128 = min
      assert.equal(min, s.i128)
      assert.equal(string.rep("\0", 15) .. "\x80", field_bytes("i128"))
      s.i128 = max
      assert.equal(max, s.i128)
      s.i128 = "-9223372036854775809" -- just below math.mininteger
      assert.equal("-9223372036854775809", s.i128)
    end)

    local BAD128 = {
      {"u128", "340282366920938463463374607431768211456", "128 bits"},
      {"u128", "-1", "negative"}, {"u128", -1, "negative"}, {"u128", math.mininteger, "negative"},
      {"i128", "170141183460469231731687303715884105728", "out of range"},
      {"i128", "-170141183460469231731687303715884105729", "out of range"},
      {"u128", "12abc", "not a decimal"}, {"u128", "", "not a decimal"}, {"i128", "-", "not a decimal"},
      {"u128", "1e5", "not a decimal"},
    }
    for _, case in ipairs(BAD128) do
      local name, v, why = case[1], case[2], case[3]
      it(("%s = %q raises and keeps the old value"):format(name, tostring(v)), function()
        s[name] = "123456789012345678901234567890"
        raises({("field '%s'"):format(name), why}, function() s[name] = v end)
        assert.equal("123456789012345678901234567890", s[name])
      end)
    end

    it("char stores a code point (C's char32_t) and takes one UTF-8 character", function()
      s.char = "é"
      assert.equal("é", s.char)
      assert.equal(spack("<I4", 0xE9), field_bytes("char"))
      s.char = "😀"
      assert.equal("😀", s.char)
      assert.equal(spack("<I4", 0x1F600), field_bytes("char"))
      s.char = ""
      assert.equal("", s.char)
      assert.equal("\0\0\0\0", field_bytes("char"))
    end)

    it("string<N>: capacity, exact-capacity strings, shorter strings clear the old tail", function()
      s.s = "12345678" -- exactly 8 bytes
      assert.equal("12345678", s.s)
      s.s = "hi"
      assert.equal("hi", s.s)
      assert.equal("hi" .. string.rep("\0", 6), field_bytes("s"))
      s.s = "ééé" .. "xy" -- 8 bytes of UTF-8
      assert.equal("éééxy", s.s)
      raises({"field 's'", "longer than its capacity"}, function() s.s = "123456789" end)
      raises({"field 's'", "longer than its capacity"}, function() s.s = "éééé" .. "x" end)
      assert.equal("éééxy", s.s)
    end)

    it("string<N>: invalid UTF-8 raises and keeps the old value", function()
      s.s = "old"
      for _, bad in ipairs{"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"} do
        raises({"field 's'", "UTF-8"}, function() s.s = bad end)
        assert.equal("old", s.s)
      end
      raises({"field 's'", "NUL"}, function() s.s = "a\0b" end)
      assert.equal("old", s.s)
    end)

    it("bytes<N> takes any bytes and reads back zero-padded to N", function()
      s.b = "\0\255"
      assert.equal("\0\255\0\0", s.b)
      s.b = "\xff\xfe\xfd\xfc"
      assert.equal("\xff\xfe\xfd\xfc", s.b)
      s.b = ""
      assert.equal("\0\0\0\0", s.b)
      raises({"field 'b'", "capacity"}, function() s.b = "12345" end)
      assert.equal("\0\0\0\0", s.b)
    end)

    it("enums read and write names", function()
      for _, n in ipairs{"mage", "rogue", "warrior"} do
        s.class = n
        assert.equal(n, s.class)
      end
      s.class = "rogue"
      assert.equal("\2", field_bytes("class"))
      raises({"field 'class'", "'bard' is not a name"}, function() s.class = "bard" end)
      assert.equal("rogue", s.class)
    end)

    it("reading or writing an unknown field raises naming it", function()
      raises({"Scalars", "no field 'nope'"}, function() return s.nope end)
      raises({"Scalars", "no field 'nope'"}, function() s.nope = 1 end)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("nested structs and arrays", function()
    it("write through, and a fresh lua5.4 process reads them", function()
      local p = path()
      local s = assert(mm.create(p, Save))
      s.players[2].name = "x"
      s.players[2].class = "mage"
      s.players[2].pos[3] = 2.5
      s.grid[3][2] = 9
      s.best.id = 77
      mm.close(s)
      local out, status, err = h.run_lua([[
        local mm = require "memmap3"
        local s = assert(mm.open(...))
        io.write(s.players[2].name, " ", s.players[2].class, " ", s.players[2].pos[3], " ",
                 s.grid[3][2], " ", s.best.id, " ", s.players[1].name == "" and "empty" or "?")
      ]], {args = {p}})
      assert.equal("", err)
      assert.equal(0, status)
      assert.equal("x mage 2.5 9 77 empty", out)
    end)

    it("an error deep inside a stored table names the path to it, and nothing is stored", function()
      local s = assert(mm.create(path(), Save))
      s.players[2].name = "ana"
      s.grid[3][2] = 9
      local before = mm.totable(s)
      local P = function(t) return {id = 1, name = "p", class = "mage", kills = 0, pos = t} end
      raises("Save field 'players' element 3 field 'pos' element 2: expected a number, got string",
        function() s.players = {P{1, 2, 3}, P{1, 2, 3}, P{1, "x", 3}} end)
      raises("Save field 'players' element 4 field 'class': 'bard' is not a name of this enum",
        function() s.players = {[4] = {class = "bard"}} end)
      raises("Save field 'players' element 1 field 'kills': expected an integer, got boolean",
        function() s.players = {{kills = true}} end)
      raises("Save field 'players' element 2 field 'name': string of 40 bytes is longer than its capacity",
        function() s.players = {{}, {name = ("n"):rep(40)}} end)
      raises("Save field 'players' element 2 field 'pos': f32[3] index 4 is out of range (1..3)",
        function() s.players = {{}, {pos = {1, 2, 3, 4}}} end)
      raises("Save field 'players' element 1: Player has no field 'hp'",
        function() s.players = {{hp = 3}} end)
      raises("Save field 'players' element 2: expected a table for Player, got number",
        function() s.players = {{}, 7} end)
      raises("Save field 'grid' element 3 element 2: 256 is out of range for u8 (0..255)",
        function() s.grid = {{}, {}, {1, 256}} end)
      raises("Player[4] 'players' element 2 field 'pos' element 1: expected a number",
        function() s.players[2] = {pos = {"x"}} end)
      -- an array names itself as a vec does (it said "u8[3]: index 4 ...")
      raises("u8[2] 'grid[3]': index 5 is out of range (1..2)", function() s.grid[3][5] = 1 end)
      raises("u8[2] 'grid[3]' element 1: 256 is out of range", function() s.grid[3][1] = 256 end)
      raises("Save field 'best' field 'pos' element 3: 1e+39 is out of range for f32",
        function() s.best = {pos = {1, 2, 1e39}} end)
      raises("Save field 'version': -1 is out of range for u32 (0..4294967295)",
        function() s.version = -1 end)
      assert.same(before, mm.totable(s))
    end)

    it("a write in a fresh process is seen by a view already open here", function()
      local p = path()
      local s = assert(mm.create(p, Save))
      local _, status, err = h.run_lua([[
        local mm = require "memmap3"
        local s = assert(mm.open(...))
        s.players[4].name = "from child"
        s.version = 12
      ]], {args = {p}})
      assert.equal("", err)
      assert.equal(0, status)
      assert.equal("from child", s.players[4].name)
      assert.equal(12, s.version)
      mm.close(s)
    end)

    it("child views are the same object on each access and equal to themselves", function()
      local s = assert(mm.create(path(), Save))
      assert.equal(s.players, s.players)
      assert.is_true(rawequal(s.players[1], s.players[1]))
      assert.is_true(s.players[1] == s.players[1])
      assert.is_false(s.players[1] == s.players[2])
      mm.close(s)
    end)

    it("a view is not equal to a view of another type at the same address", function()
      local s = assert(mm.create(path(), Save))
      -- s.players and s.players[1] start at the same byte but are different things
      assert.is_false(s.players == s.players[1])
      assert.is_false(s.best == s.best.pos)
      mm.close(s)
    end)

    it("assigning a table sets a struct; absent fields become zero", function()
      local s = assert(mm.create(path(), Save))
      s.best = {id = 1, name = "Ana", pos = {1, 2, 3}, class = "rogue", salt = "s"}
      assert.equal(1, s.best.id)
      assert.equal(3.0, s.best.pos[3])
      s.best = {name = "Bo"}
      assert.equal(0, s.best.id)
      assert.equal("Bo", s.best.name)
      assert.equal(0.0, s.best.pos[1])
      assert.equal("warrior", s.best.class)
      assert.equal(string.rep("\0", 16), s.best.salt)
      s.best = {}
      assert.equal("", s.best.name)
      mm.close(s)
    end)

    it("assigning a table with an unknown key or a bad value raises and changes nothing", function()
      local s = assert(mm.create(path(), Save))
      s.best = {id = 5, name = "keep"}
      raises({"Player", "no field 'bogus'"}, function() s.best = {id = 6, name = "new", bogus = 1} end)
      raises("UTF-8", function() s.best = {id = 6, name = "\xff"} end)
      raises("out of range", function() s.best = {id = 6, pos = {1, 2, 3, 4}} end)
      raises("'bard'", function() s.best = {id = 6, class = "bard"} end)
      raises("expected a table", function() s.best = 5 end)
      raises("expected a table", function() s.best = nil end)
      assert.equal(5, s.best.id)
      assert.equal("keep", s.best.name)
      mm.close(s)
    end)

    it("assigning a table sets an array, nested arrays included", function()
      local s = assert(mm.create(path(), Save))
      s.grid = {{1, 2}, {3, 4}, {5, 6}}
      assert.same({{1, 2}, {3, 4}, {5, 6}}, mm.totable(s.grid))
      s.grid[2] = {9}
      assert.same({{1, 2}, {9, 0}, {5, 6}}, mm.totable(s.grid))
      s.grid = {[3] = {7, 7}}
      assert.same({{0, 0}, {0, 0}, {7, 7}}, mm.totable(s.grid))
      raises("out of range", function() s.grid = {{1, 2}, [4] = {1}} end)
      raises("out of range", function() s.grid = {x = 1} end)
      raises("out of range", function() s.grid = {{300}} end)
      assert.same({{0, 0}, {0, 0}, {7, 7}}, mm.totable(s.grid))
      s.players = {{name = "a"}, [4] = {name = "d"}}
      assert.equal("a", s.players[1].name)
      assert.equal("", s.players[2].name)
      assert.equal("d", s.players[4].name)
      mm.close(s)
    end)

    it("assigning one view to another of the same type copies the bytes", function()
      local s = assert(mm.create(path(), Save))
      s.players[1] = {id = 9, name = "src", class = "mage", pos = {1, 2, 3}}
      s.players[1].kills = 4
      s.players[3] = s.players[1]
      assert.equal(9, s.players[3].id)
      assert.equal("src", s.players[3].name)
      assert.equal("mage", s.players[3].class)
      assert.equal(4, s.players[3].kills:load())
      s.players[3].name = "changed"
      assert.equal("src", s.players[1].name) -- a copy, not an alias
      s.best = s.players[3]
      assert.equal("changed", s.best.name)
      s.grid[1] = s.grid[1] -- itself
      raises("expected a table", function() s.best = s.grid end)
      mm.close(s)
    end)

    it("copies a view between two files opened with the same schema", function()
      local a = assert(mm.create(path("a.mm3"), Save))
      local b = assert(mm.create(path("b.mm3"), Save))
      b.players[1] = {id = 5, name = "bob"}
      a.best = b.players[1]
      a.players = b.players
      assert.equal("bob", a.best.name)
      assert.equal("bob", a.players[1].name)
      mm.close(a)
      mm.close(b)
    end)

    it("copies a view from a file opened without a schema (same layout)", function()
      local a = assert(mm.create(path("a.mm3"), Save))
      local b0 = assert(mm.create(path("b.mm3"), Save))
      b0.players[1] = {id = 5, name = "bob"}
      mm.close(b0)
      local b = assert(mm.open(path("b.mm3"))) -- its types come from the file's schema text
      assert.equal(mm.canonical(Save), mm.canonical(mm.schema(b)))
      local ok, err = pcall(function() a.best = b.players[1] end)
      assert.is_true(ok, err)
      assert.equal("bob", a.best.name)
      mm.close(a)
      mm.close(b)
    end)

    it("# and ipairs on arrays; # on a struct counts its fields", function()
      local s = assert(mm.create(path(), Save))
      assert.equal(4, #s.players)
      assert.equal(3, #s.grid)
      assert.equal(2, #s.grid[1])
      assert.equal(4, #s)
      for i = 1, 4 do s.players[i].id = i * 10 end
      local ids = {}
      for i, p in ipairs(s.players) do ids[i] = p.id end
      assert.same({10, 20, 30, 40}, ids)
      mm.close(s)
    end)

    it("pairs on an array gives 1..n in order", function()
      local s = assert(mm.create(path(), Save))
      s.grid = {{1, 2}, {3, 4}, {5, 6}}
      local keys, vals = {}, {}
      for k, row in pairs(s.grid) do
        keys[#keys + 1] = k
        vals[#vals + 1] = row[1]
      end
      assert.same({1, 2, 3}, keys)
      assert.same({1, 3, 5}, vals)
      mm.close(s)
    end)

    it("pairs on a struct gives its fields in declaration order", function()
      local s = assert(mm.create(path(), Save))
      s.best.name = "Ana"
      local names, vals = {}, {}
      for k, v in pairs(s.best) do
        names[#names + 1] = k
        vals[k] = v
      end
      assert.same({"id", "name", "pos", "kills", "class", "salt"}, names)
      assert.equal("Ana", vals.name)
      assert.equal("warrior", vals.class)
      local top = {}
      for k in pairs(s) do top[#top + 1] = k end
      assert.same({"version", "players", "grid", "best"}, top)
      mm.close(s)
    end)

    it("mm.totable makes a deep plain copy of structs and arrays", function()
      local s = assert(mm.create(path(), Save))
      s.version = 2
      s.players[2] = {id = 7, name = "Cy", pos = {0.5, 1, 2}, class = "rogue", salt = "ab"}
      s.players[2].kills = 11
      s.grid[1][2] = 8
      local t = mm.totable(s)
      assert.is_nil(getmetatable(t))
      assert.equal(2, t.version)
      assert.equal(4, #t.players)
      assert.same({
        id = 7, name = "Cy", pos = {0.5, 1.0, 2.0}, kills = 11, class = "rogue",
        salt = "ab" .. string.rep("\0", 14),
      }, t.players[2])
      assert.same({{0, 8}, {0, 0}, {0, 0}}, t.grid)
      t.players[2].name = "changed" -- a copy
      assert.equal("Cy", s.players[2].name)
      assert.same({0.5, 1.0, 2.0}, mm.totable(s.players[2].pos))
      assert.equal(5, mm.totable(5))
      assert.equal("x", mm.totable("x"))
      mm.close(s)
    end)

    it("mm.totable keeps 128-bit values lossless", function()
      local T = mm.struct("T", {{"a", "u128[2]"}, {"b", "i128"}})
      local s = assert(mm.create(path(), T))
      s.a[1] = "340282366920938463463374607431768211455"
      s.a[2] = 3
      s.b = "-170141183460469231731687303715884105728"
      assert.same({a = {"340282366920938463463374607431768211455", 3},
        b = "-170141183460469231731687303715884105728"}, mm.totable(s))
      mm.close(s)
    end)

    it("reading past the end of an array gives nil, writing past it raises", function()
      local s = assert(mm.create(path(), Save))
      assert.is_nil(s.players[0])
      assert.is_nil(s.players[5])
      assert.is_nil(s.players[-1])
      assert.is_nil(s.grid[1][3])
      assert.is_nil(s.grid[1.5])
      raises("index 5 is out of range (1..4)", function() s.players[5] = {} end)
      raises("index 0 is out of range (1..4)", function() s.players[0] = {} end)
      raises("out of range", function() s.grid[1][3] = 1 end)
      raises("out of range", function() s.grid[1][0] = 1 end)
      raises("out of range", function() s.grid[1.5] = {} end)
      mm.close(s)
    end)

    it("field names longer than Lua's interned strings (40 bytes) work", function()
      local long = string.rep("n", 50)
      local T = mm.struct("T", {{long, "u32"}, {long .. "2", "u8[2]"}, {"x", "u8"}})
      local s = assert(mm.create(path(), T))
      s[long] = 5
      s[long .. "2"][2] = 3
      assert.equal(5, s[long])
      assert.equal(3, s[long .. "2"][2])
      assert.equal(5, mm.totable(s)[long])
      raises("out of range", function() s[long] = -1 end)
      assert.equal(5, s[long])
      mm.close(s)
    end)

    it("an array indexed by a field name raises naming it", function()
      local s = assert(mm.create(path(), Save))
      raises("no field 'name'", function() return s.players.name end)
      raises("no field 'nope'", function() return s.players[1].nope end)
      mm.close(s)
    end)

    it("fields at offsets of 4 GiB and more are read and written where they are", function()
      -- x is at offset 2^32; it must not alias a (offset 0). Runs in a child:
      -- the file is 4 GiB (sparse, but fallocated) and a wrong offset could crash.
      local p = path("big.mm3")
      local out, status, err = h.run_lua([[
        local mm = require "memmap3"
        local S = mm.struct("Big", {{"a", "u64"}, {"b", "u64"},
          {"big", "u8[" .. ((1 << 32) - 16) .. "]"}, {"x", "u64"}})
        assert(S.fields[4].offset == 1 << 32)
        local s = assert(mm.create(..., S))
        s.x = 7
        io.write(s.a, " ", s.x)
        mm.close(s)
      ]], {args = {p}})
      os.remove(p)
      assert.equal(0, status, err)
      assert.equal("0 7", out)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("closing", function()
    it("mm.flush returns true; mm.close makes every view raise", function()
      local s = assert(mm.create(path(), Save))
      local players, p1, kills = s.players, s.players[1], s.players[1].kills
      assert.is_true(mm.flush(s))
      assert.is_true(mm.flush(p1)) -- any view of the file
      mm.close(s)
      local msg = "attempt to use a closed memmap3 file"
      raises(msg, function() return s.version end)
      raises(msg, function() s.version = 1 end)
      raises(msg, function() return players[1] end)
      raises(msg, function() return p1.name end)
      raises(msg, function() p1.name = "x" end)
      raises(msg, function() return #players end)
      raises(msg, function() return pairs(s) end)
      raises(msg, function() return kills:load() end)
      raises(msg, function() kills:fetch_add(1) end)
      raises(msg, mm.totable, s)
      raises(msg, mm.flush, s)
      raises(msg, mm.path, s)
      raises(msg, mm.info, s)
      assert.matches("closed", tostring(s))
      -- the errors of mm.* functions name the caller's line, not memmap3's
      for name, fn in pairs { totable = mm.totable, flush = mm.flush, info = mm.info, path = mm.path } do
        local ok, err = pcall(function() local r = fn(s); return r end)
        assert.is_false(ok)
        assert.matches("^spec/struct_spec%.lua:%d+: attempt to use a closed memmap3 file %(", err, nil, name)
        -- and which file
        assert.equal(" file (" .. path() .. ")", err:sub(-(#path() + 8)), name)
      end
      local ok, err = pcall(function() local m = mm.map(path(), {mode = "x"}); return m end)
      assert.is_false(ok)
      assert.matches("^spec/struct_spec%.lua:%d+: mm%.map: bad mode 'x'", err)
      mm.close(s) -- idempotent
      mm.close(p1)
    end)

    it("mm.close through a child view closes the file", function()
      local p = path()
      mm.close(assert(mm.create(p, Save)))
      local s = assert(mm.open(p, Save))
      assert.is_true(h.is_mapped(p))
      mm.close(s.players[2])
      assert.is_false(h.is_mapped(p))
      raises("closed memmap3 file", function() return s.version end)
    end)

    it("<close> on the root view closes the file", function()
      local p = path()
      mm.close(assert(mm.create(p, Save)))
      local keep
      do
        local s <close> = assert(mm.open(p, Save))
        s.version = 8
        keep = s
        assert.is_true(h.is_mapped(p))
      end
      assert.is_false(h.is_mapped(p))
      raises("closed memmap3 file", function() return keep.version end)
      local s = assert(mm.open(p, Save))
      assert.equal(8, s.version)
      mm.close(s)
    end)

    it("<close> on a child view does not close the file", function()
      local s = assert(mm.create(path(), Save))
      do
        local p <close> = s.players[1]
        p.id = 3
      end
      assert.equal(3, s.players[1].id)
      mm.close(s)
    end)

    it("garbage collection closes a file with no references left", function()
      local p = path()
      mm.close(assert(mm.create(p, Save)))
      local function use()
        local s = assert(mm.open(p, Save))
        s.version = 21
        local _ = s.players[1].kills:load()
      end
      use()
      collectgarbage()
      collectgarbage()
      assert.is_false(h.is_mapped(p))
      local s = assert(mm.open(p, Save))
      assert.equal(21, s.version)
      mm.close(s)
    end)

    it("a child view keeps its file open after the root is collected", function()
      local p = path()
      mm.close(assert(mm.create(p, Save)))
      local function child()
        local s = assert(mm.open(p, Save))
        s.players[3].name = "kept"
        return s.players
      end
      local players = child()
      collectgarbage()
      collectgarbage()
      assert.is_true(h.is_mapped(p))
      assert.equal("kept", players[3].name)
      players[3].id = 1
      players = nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      assert.is_false(h.is_mapped(p))
    end)

    it("collecting garbage in a fresh process with views left over does not crash", function()
      local p = path()
      local out, status, err = h.run_lua([[
        local mm = require "memmap3"
        local S = mm.struct("S", {{"n", "u64", atomic = true}, {"a", "u8[4][4]"}})
        for i = 1, 50 do
          local s = assert(mm.open(..., S, {create = true}))
          local row, n = s.a[2], s.n
          n:fetch_add(1)
          row[1] = i % 256
          if i % 2 == 0 then mm.close(s) end
          collectgarbage()
        end
        local s = assert(mm.open(..., S))
        io.write(s.n:load(), " ", s.a[2][1])
      ]], {args = {p}})
      assert.equal("", err)
      assert.equal(0, status)
      assert.equal("50 50", out)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("module functions", function()
    it("mm.schema, mm.path and mm.info describe a view's file", function()
      local p = path()
      local s = assert(mm.create(p, Save))
      assert.equal(Save, mm.schema(s))
      assert.equal(p, mm.path(s))
      assert.equal(p, mm.path(s.players[2]))
      local info = mm.info(s)
      assert.equal(p, info.path)
      assert.equal(mm.canonical(Save), info.schema)
      assert.equal(Save.size, info.root_size)
      assert.equal(0, info.root_offset % 64)
      assert.is_true(info.root_offset >= 256 + #info.schema)
      assert.is_true(info.size >= info.root_offset + info.root_size)
      assert.equal(h.file_size(p), info.size)
      assert.equal(3, info.format_version)
      assert.is_false(info.readonly)
      assert.matches("^%x+$", info.fingerprint)
      assert.equal(16, #info.fingerprint)
      mm.close(s)
      -- the same layout has the same fingerprint in another file
      local s2 = assert(mm.create(path("g.mm3"), Save))
      assert.equal(info.fingerprint, mm.info(s2).fingerprint)
      mm.close(s2)
    end)

    it("mm.schema of a child view is its own type", function()
      local s = assert(mm.create(path(), Save))
      assert.equal(Player, mm.schema(s.best))
      assert.equal("Player[4]", mm.schema(s.players).canon)
      mm.close(s)
    end)

    it("module functions raise for things that are not views", function()
      raises("expected a memmap3 view", mm.flush, {})
      raises("expected a memmap3 view", mm.close, 5)
      raises("expected a memmap3 view", mm.path, "x")
      raises("expected a memmap3 view", mm.info, nil)
      raises("expected a memmap3 view", mm.schema, io.stdout)
    end)
  end)
end)
