-- Bad files (SPEC §5): random bytes, an empty file, every header field
-- corrupted in turn (with the header check left stale, and recomputed so the
-- other checks are reached), the schema text corrupted, a file cut at every
-- 4 KiB boundary, another format version. mm.open answers each with nil, a
-- message naming the file and the problem, and an integer code, and never
-- crashes. Where a damaged live field (lock, heap, log) or a recomputed check
-- lets the file open, using it must not crash either. Every case runs in a
-- child lua5.4 process, so a crash shows as a signal exit status, and the
-- child says which case it was in.
--
-- Header layout (src/mm3_internal.h, formats 1 to 3): 0 magic[8], 8 version u32,
-- 12 byte order u32, 16 size, 24 fingerprint, 32 schema_off, 40 schema_len,
-- 48 root_off, 56 root_size, 64 seed, 72 check (FNV-1a 64 of bytes 0-15,
-- 24-71 and the schema text), 80 lock[64], 144 heap_top, 152 seq,
-- 160 free_list[48], 544 alloc_bytes, 552 log_off, 560 log_len, 568 log_cap,
-- 576 retired_n, 584 retired[16], 712 prefilled, 720 gaps_n, 728 gaps[8][2];
-- the schema text at 1024.
local mm = require "memmap3"
local h = require "helpers"
local tmpdir, rmrf = h.tmpdir, h.rmrf

local SCHEMA = [[
local mm = require "memmap3"
local Pt = mm.struct("BadPt", {{"x", "f64"}, {"y", "i32"}})
local Root = mm.struct("BadRoot", {
  {"n", "i64"}, {"name", "string<32>"}, {"pts", mm.array(Pt, 4)},
  {"seg", mm.segmented("i64")}, {"m", mm.map("u64", "i64")}, {"fm", mm.map("string<8>", "u32", 16)},
  {"blob", "value"}, {"vec", mm.vec("i64", 16)}, {"ring", mm.ring("u16", 4)}, {"sa", mm.string_array(4, 12)},
})
]]
local Root = assert(load(SCHEMA .. " return Root"))()

-- The child: runs every case of a case list, saying "begin NAME" before
-- each (flushed), then one result line per open:
--   "res NAME HOW nil|<code>|<msg>" or "res NAME HOW opened|<exercise result>".
local CHILD = SCHEMA .. [==[
local dir, casefile = ...
local cases = dofile(casefile)
local f = assert(io.open(dir .. "/base.mm3", "rb"))
local base = f:read("a")
f:close()

local function write(p, s)
  local o = assert(io.open(p, "wb"))
  o:write(s)
  o:close()
end

-- Uses an opened file every way there is; errors are fine, crashes are not.
local function exercise(r)
  local errs = 0
  local function try(fn, ...) if not pcall(fn, ...) then errs = errs + 1 end end
  try(mm.totable, r)
  try(function() for _ in pairs(r.m) do end end)
  try(function() for _ in pairs(r.fm) do end end)
  try(function() for i = 1, #r.seg do local _ = r.seg[i] end end)
  try(function() for _, v in ipairs(r.vec) do local _ = v end end)
  try(function() for _, v in ipairs(r.ring) do local _ = v end end)
  try(function() return r.blob end)
  try(function() return r.m[3], r.fm.abc, r.sa[1], r.name, r.pts[2].x end)
  try(function() r.m[123456] = 1 end)
  try(function() r.m[3] = nil end)
  try(function() r.fm.new = 1 end)
  try(function() r.seg:push(7) end)
  try(function() r.seg:pop() end)
  try(function() r.vec:insert(1, 5) end)
  try(function() r.ring:push(1) end)
  try(function() r.blob = ("z"):rep(5000) end)
  try(function() r.name = "renamed" end)
  try(mm.transaction, r, function() r.n = 1; r.m[1] = 2; r.seg:push(1); r.blob = "t" end)
  try(mm.transaction, r, function() r.n = 2; r.m[2] = 3; error("undo") end)
  try(mm.lock, r, function() r.n = 3 end)
  try(mm.flush, r)
  mm.close(r)
  return "exercised, " .. errs .. " errors"
end

local function result(name, how, r, msg, code)
  if r then
    local ok, e = pcall(exercise, r)
    local what = ok and e or ("exercise raised: " .. tostring(e)):gsub("\n", " ")
    io.write("res ", name, " ", how, " opened|", what, "\n")
  else
    io.write("res ", name, " ", how, " nil|", tostring(code), "|", tostring(msg):gsub("\n", " "), "\n")
  end
  io.stdout:flush()
end

for _, c in ipairs(cases) do
  io.write("begin ", c.name, "\n")
  io.stdout:flush()
  local p = dir .. "/case.mm3"
  local content
  if c.content then content = c.content
  elseif c.cut then content = base:sub(1, c.cut)
  elseif c.fill then content = c.fill:rep(c.n)
  elseif c.random then
    math.randomseed(c.random)
    local t = {}
    for i = 1, c.n - (c.prefix or 0) do t[i] = string.char(math.random(0, 255)) end
    content = base:sub(1, c.prefix or 0) .. table.concat(t)
  else
    content = base
    if c.off then content = content:sub(1, c.off) .. c.bytes .. content:sub(c.off + #c.bytes + 1) end
    local pos = 1
    while c.patch and pos <= #c.patch do  -- {u64 offset, u16 length, bytes}...
      local off, len, nxt = string.unpack("<I8I2", c.patch, pos)
      content = content:sub(1, off) .. c.patch:sub(nxt, nxt + len - 1) .. content:sub(off + len + 1)
      pos = nxt + len
    end
  end
  if c.fixfp then content = fix_fingerprint(content) end
  if c.fix then content = fix_check(content) end
  write(p, content)
  result(c.name, "readonly", mm.open(p, {readonly = true}))
  result(c.name, "noschema", mm.open(p))
  result(c.name, "schema", mm.open(p, Root))
  os.remove(p)
end
io.write("end\n")
]==]

-- FNV-1a 64 and the header check, shared by both sides.
local FNV = [[
local function fnv(s, i, j, hh)
  for k = i, j do hh = (hh ~ s:byte(k)) * 0x100000001b3 end
  return hh
end
local function fix_check(s)
  if #s < 1024 then return s end
  local slen = string.unpack("<I8", s, 41)
  if slen > #s - 1024 then return s end
  local c = fnv(s, 1, 16, -3750763034362895579)  -- 0xcbf29ce484222325
  c = fnv(s, 25, 72, c)
  c = fnv(s, 1025, 1024 + slen, c)
  return s:sub(1, 72) .. string.pack("<i8", c) .. s:sub(81)
end
local function fix_fingerprint(s)
  local slen = string.unpack("<I8", s, 41)
  return s:sub(1, 24) .. string.pack("<i8", fnv(s, 1025, 1024 + slen, -3750763034362895579)) .. s:sub(33)
end
]]
CHILD = FNV .. CHILD

-- A patch list for the child: {offset, bytes} pairs.
local function patch(list)
  local out = {}
  for _, pb in ipairs(list) do out[#out + 1] = string.pack("<I8I2", pb[1], #pb[2]) .. pb[2] end
  return table.concat(out)
end

-- Writes a Lua file returning the case list.
local function write_cases(path, cases)
  local out = {"return {"}
  for _, c in ipairs(cases) do
    local parts = {}
    for k, v in pairs(c) do
      parts[#parts + 1] = ("%s = %s"):format(k, type(v) == "string" and ("%q"):format(v) or tostring(v))
    end
    out[#out + 1] = "{" .. table.concat(parts, ", ") .. "},"
  end
  out[#out + 1] = "}"
  local f = assert(io.open(path, "wb"))
  f:write((table.concat(out, "\n"):gsub("\\\n", "\\n")))
  f:close()
end

-- Runs cases in a child; returns {name = {readonly = res, noschema = res, schema = res}}.
local function run_cases(dir, cases)
  local cf = dir .. "/cases.lua"
  write_cases(cf, cases)
  local out, status, err = h.run_lua(CHILD, {args = {dir, cf}})
  local last
  for name in out:gmatch("begin (%S+)\n") do last = name end
  assert(status == 0, ("the child %s in case %s\nstderr: %s"):format(
    status > 128 and ("was killed by signal " .. (status - 128)) or ("exited with status " .. status),
    tostring(last), err))
  assert(out:find("\nend\n$") or out:find("^end\n$"), "the child did not finish: " .. out:sub(-500) .. err)
  local res = {}
  for name, how, rest in out:gmatch("res (%S+) (%S+) ([^\n]*)\n") do
    res[name] = res[name] or {}
    res[name][how] = rest
  end
  return res
end

-- Every open of the case was refused with a clear error.
local function assert_refused(res, name, path_hint)
  local r = res[name]
  assert(r, "no result for case " .. name)
  for _, how in ipairs({"readonly", "noschema", "schema"}) do
    local line = r[how]
    assert(line, ("case %s: no result for the %s open"):format(name, how))
    local code, msg = line:match("^nil|([^|]*)|(.*)$")
    if not code then
      error(("case %s: the %s open succeeded (%s); it must be refused"):format(name, how, line), 0)
    end
    if not (math.type(tonumber(code)) == "integer" and tonumber(code) ~= 0) then
      error(("case %s: %s open: code %s is not an error code"):format(name, how, code), 0)
    end
    if not msg:find(path_hint, 1, true) or #msg < #path_hint + 8 then
      error(("case %s: %s open: message %q does not name the file and the problem"):format(name, how, msg), 0)
    end
  end
  return r
end

-- Refused, or opened and used without a crash (the child exiting 0 says that).
local function assert_no_crash(res, name)
  local r = res[name]
  assert(r and r.readonly and r.noschema and r.schema, "missing results for case " .. name)
  for _, how in ipairs({"readonly", "noschema", "schema"}) do
    local line = r[how]
    if line:match("^opened|") then
      assert(not line:find("exercise raised", 1, true), ("case %s: %s: %s"):format(name, how, line))
    else
      local code, msg = line:match("^nil|([^|]*)|(.*)$")
      assert(code and math.type(tonumber(code)) == "integer" and #msg > 0,
        ("case %s: %s: %s"):format(name, how, line))
    end
  end
end

local function u32(v) return string.pack("<I4", v & 0xffffffff) end
local function u64(v) return string.pack("<i8", v) end

-- The header's fields: name, offset, width.
local FIELDS = {
  {"magic", 0, 8}, {"version", 8, 4}, {"byte_order", 12, 4}, {"size", 16, 8}, {"fingerprint", 24, 8},
  {"schema_off", 32, 8}, {"schema_len", 40, 8}, {"root_off", 48, 8}, {"root_size", 56, 8}, {"seed", 64, 8},
  {"check", 72, 8},
}
-- Live state after the checked part: may be anything after a crash of the
-- machine; a damaged one must not crash the opener.
local LIVE = {
  {"lock", 80, 8}, {"lock_owner", 88, 8}, {"lock_kind", 96, 8}, {"lock_tail", 136, 8},
  {"heap_top", 144, 8}, {"seq", 152, 8},
  {"free_list0", 160, 8}, {"free_list1", 168, 8}, {"free_list5", 200, 8}, {"free_list47", 536, 8},
  {"alloc_bytes", 544, 8}, {"log_off", 552, 8}, {"log_len", 560, 8}, {"log_cap", 568, 8},
  {"retired_n", 576, 8}, {"retired0", 584, 8}, {"prefilled", 712, 8},
  {"gaps_n", 720, 8}, {"gap0_from", 728, 8}, {"gap0_to", 736, 8},
}

describe("bad files", function()
  local dir, base
  local function p(name) return dir .. "/" .. name end

  before_each(function()
    dir = tmpdir()
    local r = assert(mm.create(p("base.mm3"), Root))
    r.n = 7
    r.name = "base"
    for i = 1, 500 do
      r.seg:push(i)
      r.m[i] = -i
    end
    r.fm.abc = 5
    r.blob = {a = 1, b = ("xx"):rep(300)}
    r.vec:push(3)
    r.ring:push(9)
    r.sa[1] = "hi"
    r.pts[2] = {x = 1.5, y = 2}
    mm.close(r)
    base = h.read_file(p("base.mm3"))
  end)
  after_each(function()
    collectgarbage()
    rmrf(dir)
    h.cleanup()
  end)

  it("the untouched file opens and every use works (the control case)", function()
    local res = run_cases(dir, {{name = "control", cut = #base}})
    for _, how in ipairs({"readonly", "noschema", "schema"}) do
      assert.are.equal("opened|", res.control[how]:sub(1, 7), res.control[how])
    end
  end)

  it("random bytes of many sizes, with and without a valid magic, are refused", function()
    local cases = {}
    for seed, n in ipairs({1, 7, 8, 9, 100, 1023, 1024, 1100, 4096, 65536, 1 << 20}) do
      cases[#cases + 1] = {name = "random" .. n, random = seed, n = n}
      if n >= 8 then cases[#cases + 1] = {name = "magic+random" .. n, random = seed, n = n, prefix = 8} end
      if n >= 16 then
        cases[#cases + 1] = {name = "header16+random" .. n, random = seed, n = n, prefix = 16}
        cases[#cases + 1] = {name = "header16+random+check" .. n, random = seed, n = n, prefix = 16,
                             fix = true}
      end
    end
    cases[#cases + 1] = {name = "text", content = "local mm = require 'memmap3'\n" .. ("-- text\n"):rep(1000)}
    cases[#cases + 1] = {name = "zeros1MiB", fill = "\0", n = 1 << 20}
    cases[#cases + 1] = {name = "ones1MiB", fill = "\255", n = 1 << 20}
    local res = run_cases(dir, cases)
    for _, c in ipairs(cases) do assert_refused(res, c.name, p("case.mm3")) end
  end)

  it("a zero-length file is refused by every kind of open (and create = true initialises it)", function()
    local path = p("empty.mm3")
    h.write_file(path, "")
    local res = run_cases(dir, {{name = "empty", content = ""}})
    local r = assert_refused(res, "empty", p("case.mm3"))
    assert.are.equal(tostring(mm.EBADFILE), r.schema:match("^nil|([^|]*)|"))
    -- and the documented exception
    local v = assert(mm.open(path, Root, {create = true}))
    assert.are.equal(0, v.n)
    mm.close(v)
  end)

  it("a directory, /dev/null and a missing path are refused with a message and a code", function()
    for _, path in ipairs({dir, "/dev/null", p("missing.mm3")}) do
      for _, args in ipairs({{path}, {path, Root}, {path, {readonly = true}}}) do
        local r, msg, code = mm.open(table.unpack(args))
        assert.is_nil(r)
        assert.is_truthy(type(msg) == "string" and msg:find(path, 1, true), tostring(msg))
        assert.is_truthy(math.type(code) == "integer", tostring(code))
      end
    end
    -- a directory says so, whichever way it is opened (read-only said "not a memmap3 file", a map
    -- "No such device")
    local calls = {{mm.open, dir}, {mm.open, dir, {readonly = true}}, {mm.check, dir}, {mm.map, dir}}
    for _, call in ipairs(calls) do
      local r, msg, code = call[1](call[2], call[3])
      assert.is_nil(r)
      assert.equal(dir .. ": Is a directory", msg)
      assert.equal(21, code) -- EISDIR
    end
  end)

  -- A FIFO blocked the open until some writer came (memmap3 info hung).
  it("a FIFO is refused at once by every kind of open, by mm.check and by mm.map", function()
    local fifo = p("fifo.mm3")
    assert.is_true(os.execute("mkfifo " .. h.shell_quote(fifo)))
    -- in a child, under timeout: the bug was a hang
    local code = ([=[
      local mm = require "memmap3"
      local path = %q
      for _, opts in ipairs({{}, {readonly = true}}) do
        local r, msg = mm.open(path, opts)
        assert(r == nil and msg:find(path, 1, true), tostring(msg))
      end
      local ok, why = mm.check(path)
      assert(ok == nil and why:find(path, 1, true), tostring(why))
      for _, opts in ipairs({{}, {mode = "rw"}, {mode = "copy"}, {create = true, len = 16}}) do
        local m, err = mm.map(path, opts) -- (it waited for a writer)
        assert(m == nil and err:find(path, 1, true), tostring(err))
      end
      print("refused")]=]):format(fifo)
    local out, status, err = h.run_lua(code, { timeout = 20 })
    assert.are.equal(0, status, err)
    assert.are.equal("refused\n", out)
  end)

  it("every header field corrupted in turn is refused; the size field and a recomputed check may open but "
    .. "nothing crashes", function()
    local cases, must_fail = {}, {}
    for _, fld in ipairs(FIELDS) do
      local name, off, width = fld[1], fld[2], fld[3]
      local orig = base:sub(off + 1, off + width)
      local values
      if name == "magic" then
        values = {"memmap3\0", ("\0"):rep(8), "MEMMAP4\0", "MEMMAP3X", "\0EMMAP3\0"}
      elseif width == 4 then
        local o = string.unpack("<I4", orig)
        values = {u32(0), u32(2), u32(0xffffffff), u32(o + 1), string.pack(">I4", o), u32(o ~ 0x80000000)}
      else
        local o = string.unpack("<i8", orig)
        values = {u64(0), u64(1), u64(-1), u64(1 << 62), u64(o + 1), u64(o - 1), u64(o + 4096), u64(o - 4096),
                  u64(o ~ (1 << 40)), u64(o * 2), u64(0x123456789abcdef)}
      end
      for vi, bytes in ipairs(values) do
        if bytes ~= orig then
          local cname = ("%s.%d"):format(name, vi)
          cases[#cases + 1] = {name = cname, off = off, bytes = bytes}
          -- the check covers bytes 0-15 and 24-71: a stale check refuses
          -- those; the check itself, too
          if name ~= "size" then must_fail[cname] = true end
          if name ~= "check" then
            cases[#cases + 1] = {name = cname .. "+check", off = off, bytes = bytes, fix = true}
            -- even with a good check: these cannot be right
            -- (an older version, 1 up to this file's, is a version this library opens)
            local older = name == "version" and string.unpack("<I4", bytes) >= 1
              and string.unpack("<I4", bytes) < string.unpack("<I4", orig)
            if name == "magic" or (name == "version" and not older) or name == "byte_order"
              or name == "fingerprint" or name == "schema_off" or name == "schema_len"
              or name == "root_size" then
              must_fail[cname .. "+check"] = true
            end
          end
        end
      end
    end
    local res = run_cases(dir, cases)
    local refused, opened = 0, 0
    for _, c in ipairs(cases) do
      if must_fail[c.name] then
        assert_refused(res, c.name, p("case.mm3"))
        refused = refused + 1
      else
        assert_no_crash(res, c.name)
        if res[c.name].schema:match("^opened") then opened = opened + 1 end
      end
    end
    assert.is_true(refused > 100, "refused " .. refused)
  end)

  it("damaged live header state (lock, heap, free lists, log) never crashes the opener or its user",
    function()
    local cases = {}
    for _, fld in ipairs(LIVE) do
      local name, off = fld[1], fld[2]
      local o = string.unpack("<i8", base, off + 1)
      local values = {u64(0), u64(1), u64(-1), u64(1 << 62), u64(o + 8), u64(o - 8), u64(#base),
                      u64(#base - 16), u64(1024), u64(1040), u64(0x7fffffffffffffff), u64(o ~ 0x55555555)}
      for vi, bytes in ipairs(values) do
        cases[#cases + 1] = {name = ("%s.%d"):format(name, vi), off = off, bytes = bytes}
      end
    end
    -- a log that says a write is under way, with damaged entries
    local log_off = string.unpack("<i8", base, 553)
    if log_off > 0 then
      local entry = u64(1024) .. u64(8) .. ("\255"):rep(8) .. u64(24)
      local entries = {entry, u64(80) .. u64(64) .. ("\255"):rep(64) .. u64(88),
                       u64(-1) .. u64(-1) .. u64(0) .. u64(24), u64(0) .. u64(0) .. u64(0) .. u64(1 << 40)}
      for vi, e in ipairs(entries) do
        cases[#cases + 1] = {name = "log_entry." .. vi, patch = patch({{560, u64(#e)}, {log_off, e}})}
      end
    end
    local res = run_cases(dir, cases)
    for _, c in ipairs(cases) do assert_no_crash(res, c.name) end
  end)

  it("every byte of the schema text changed is refused; with the check and fingerprint recomputed, "
    .. "nothing crashes", function()
    local slen = string.unpack("<I8", base, 41)
    local cases, fixed = {}, {}
    for i = 0, slen - 1 do
      local off = 1024 + i
      local b = base:byte(off + 1)
      local nb = string.char(b == 0x7a and 0x30 or (b + 1) % 256)
      cases[#cases + 1] = {name = "schema." .. i, off = off, bytes = nb}
      -- recomputed fingerprint and check: the text is all that is wrong
      cases[#cases + 1] = {name = "schema+check." .. i, off = off, bytes = nb, fixfp = true, fix = true}
      fixed[#cases] = true
    end
    local res = run_cases(dir, cases)
    for ci, c in ipairs(cases) do
      if fixed[ci] then assert_no_crash(res, c.name) else assert_refused(res, c.name, p("case.mm3")) end
    end
  end)

  it("the file cut at every 4 KiB boundary (and inside the header and schema) is refused", function()
    local cases = {}
    local slen = string.unpack("<I8", base, 41)
    for _, cut in ipairs({0, 1, 7, 8, 9, 15, 16, 80, 576, 1023, 1024, 1025, 1024 + slen - 1, 1024 + slen,
                          #base - 1}) do
      cases[#cases + 1] = {name = "cut" .. cut, cut = cut}
    end
    for cut = 4096, #base - 4096, 4096 do cases[#cases + 1] = {name = "cut" .. cut, cut = cut} end
    assert.is_true(#cases > 200, "the base file is too small: " .. #base)
    local res = run_cases(dir, cases)
    for _, c in ipairs(cases) do assert_refused(res, c.name, p("case.mm3")) end
  end)

  it("another format version is refused: newer ones as 'newer than this library' (EVERSION), 0 as corrupted",
    function()
    local cases = {}
    local current = string.unpack("<I4", base, 9) -- the version new files have
    for _, v in ipairs({current + 1, 255, 0xffffffff}) do
      cases[#cases + 1] = {name = "v" .. v, off = 8, bytes = u32(v), fix = true}
      cases[#cases + 1] = {name = "v" .. v .. "stale", off = 8, bytes = u32(v)}
    end
    cases[#cases + 1] = {name = "v0", off = 8, bytes = u32(0), fix = true}
    local res = run_cases(dir, cases)
    for _, c in ipairs(cases) do
      local r = assert_refused(res, c.name, p("case.mm3"))
      local code, msg = r.schema:match("^nil|([^|]*)|(.*)$")
      if c.name == "v0" then
        assert.are.equal(tostring(mm.ECORRUPT), code, msg)
      else
        assert.are.equal(tostring(mm.EVERSION), code, msg)
        assert.is_truthy(msg:find("newer", 1, true), msg)
      end
    end
  end)

  it("the other byte order is refused as such", function()
    local cases = {{name = "swapped", off = 12, bytes = string.pack(">I4", 0x01020304), fix = true}}
    local res = run_cases(dir, cases)
    local r = assert_refused(res, "swapped", p("case.mm3"))
    assert.is_truthy(r.schema:find("byte order", 1, true), r.schema)
  end)

  it("random bytes written over the root and the heap never crash a reader or a writer", function()
    math.randomseed(777)
    local root_off = string.unpack("<I8", base, 49)
    local heap_end = string.unpack("<I8", base, 145)
    if heap_end == 0 then heap_end = #base end
    local cases = {}
    for t = 1, 300 do
      local list = {}
      for k = 1, math.random(1, 3) do
        local off = math.random(root_off, math.min(heap_end, #base) - 8)
        local bytes = {}
        for j = 1, math.random(1, 8) do bytes[j] = string.char(math.random(0, 255)) end
        list[k] = {off, table.concat(bytes)}
      end
      cases[#cases + 1] = {name = "fuzz." .. t, patch = patch(list)}
    end
    local res = run_cases(dir, cases)
    for _, c in ipairs(cases) do assert_no_crash(res, c.name) end
  end)
end)
