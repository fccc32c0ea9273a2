-- memmap3.Map: raw mappings from Lua (SPEC §1), and each of memmap2's own
-- tests (../shared/memmap2-parity.md) as "parity N".
local mm = require "memmap3"
local h = require "helpers"

local PAGE = mm.page_size
local ZEROS128 = string.rep("\0", 128)
local rep, spack = string.rep, string.pack

-- Raises an error whose message contains `phrase` (plain text).
local function raises(phrase, fn, ...)
  local args = table.pack(...)
  assert.error_matches(function() return fn(table.unpack(args, 1, args.n)) end, phrase, 1, true)
end

-- The `fail, "what: message", code` triple of a failure of the system.
local function fails(phrase, ok, msg, code)
  assert.is_nil(ok)
  assert.is_string(msg)
  assert.is_truthy(msg:find(phrase, 1, true), ("%q does not contain %q"):format(msg, phrase))
  assert.is_true(math.type(code) == "integer", "code is an integer")
  return msg, code
end

local function overcommit_never()
  return (h.read_sys("/proc/sys/vm/overcommit_memory") or ""):match("^2") ~= nil
end

describe("memmap3.Map", function()
  after_each(h.cleanup)

  -- -------------------------------------------------------------------------
  describe("memmap2 parity", function()
    it("parity 1: a 128-byte file mapped rw reads zeros and keeps what is written", function()
      local p = h.tmpfile(128)
      local m = assert(mm.map(p, {mode = "rw"}))
      assert.equal(128, #m)
      assert.equal(ZEROS128, m:read())
      local incr = h.bytes(128)
      assert.equal(128, m:write(0, incr))
      assert.equal(incr, m:read(0, 128))
      assert.equal(incr, h.read_file(p)) -- a shared map writes the page cache
      m:close()
    end)

    it("parity 2: the same through an integer file descriptor", function()
      -- Lua has no fileno(), so the descriptor comes from the shell: a child
      -- lua5.4 is started with `3<>file`, and maps descriptor 3. That number is
      -- known for certain, unlike any guess inside this process.
      local p = h.tmpfile(128)
      local out, status, err = h.run_lua([[
        local mm = require "memmap3"
        local m = assert(mm.map(3, {mode = "rw"}))
        assert(#m == 128, "length " .. #m)
        assert(m:read() == string.rep("\0", 128), "not zeros")
        local incr = {}
        for i = 0, 127 do incr[#incr + 1] = string.char(i) end
        incr = table.concat(incr)
        m:write(0, incr)
        assert(m:read() == incr, "write not read back")
        assert(m:flush())
        io.write("ok ", m:mode(), " ", #m)
      ]], {redirect = "3<>" .. h.shell_quote(p)})
      assert.equal("", err)
      assert.equal(0, status)
      assert.equal("ok rw 128", out)
      assert.equal(h.bytes(128), h.read_file(p))
    end)

    it("parity 3: an empty file maps read-only and read-write with length 0", function()
      local p = h.tmpfile("")
      for _, mode in ipairs{"r", "rw", "copy", "copy_r"} do
        local m = assert(mm.map(p, {mode = mode}))
        assert.equal(0, #m)
        assert.equal("", m:read())
        assert.equal(mode, m:mode())
        assert.is_true(m:flush())
        raises("outside the map", m.read, m, 0, 1)
        m:close()
      end
      local f = assert(io.open(p, "rb"))
      local m = assert(mm.map(f))
      f:close()
      assert.equal(0, #m)
      local rw = assert(mm.map(p, {mode = "rw"}))
      assert.equal(0, rw:write(0, ""))
      raises("outside the map", rw.write, rw, 0, "x")
      assert.equal(0, h.file_size(p))
    end)

    it("parity 4: a 128-byte anonymous map is zeroed, writable and readable", function()
      local m = assert(mm.anon(128))
      assert.equal(128, #m)
      assert.equal(ZEROS128, m:read())
      local incr = h.bytes(128)
      assert.equal(128, m:write(0, incr))
      assert.equal(incr, m:read())
      assert.equal(127, m[127])
    end)

    it("parity 5: an anonymous map of length 0 is valid and empty", function()
      local m = assert(mm.anon(0))
      assert.equal(0, #m)
      assert.equal("", m:read())
      assert.is_true(m:flush())
      assert.is_true(m:advise("normal"))
      raises("outside the map", function() return m[0] end)
      assert.matches("0 bytes", tostring(m))
    end)

    it("parity 6: a length beyond the address space raises a clear error", function()
      raises("mm.anon: length overflows the address space (length " .. math.maxinteger .. ")",
             mm.anon, math.maxinteger)
      local p = h.tmpfile(16)
      raises("length overflows the address space", mm.map, p, {len = math.maxinteger})
      -- A length the address space could express but cannot hold is a failure
      -- of the system instead: fail, message, ENOMEM.
      fails("anonymous map: ", mm.anon(1 << 60))
    end)

    it("parity 7: bytes written and flushed are seen by an ordinary read", function()
      local p = h.tmpfile(128)
      local m = assert(mm.map(p, {mode = "rw"}))
      m:write(10, "hello")
      assert.is_true(m:flush())
      assert.equal(rep("\0", 10) .. "hello" .. rep("\0", 113), h.read_file(p))
    end)

    it("parity 8: offset 2, length 6: writes land at file offset 2; range flushes succeed", function()
      local p = h.tmpfile(128)
      local m = assert(mm.map(p, {mode = "rw", offset = 2, len = 6}))
      assert.equal(6, #m)
      m:write(0, "\1\2\3\4\5\6")
      assert.is_true(m:flush_async(0, 6))
      assert.is_true(m:flush(0, 6))
      assert.is_true(m:flush(2, 3))
      assert.is_true(m:flush_async(5, 1))
      assert.equal("\0\0\1\2\3\4\5\6" .. rep("\0", 120), h.read_file(p))
    end)

    it("parity 9: a copy-on-write map sees its own writes; the file and new maps never do", function()
      local incr = h.bytes(128)
      local p = h.tmpfile(incr)
      local c = assert(mm.map(p, {mode = "copy"}))
      c:write(0, "COPY")
      assert.equal("COPY", c:read(0, 4))
      assert.is_true(c:flush())
      assert.equal(incr, h.read_file(p))
      local fresh = assert(mm.map(p))
      assert.equal(incr, fresh:read())
      assert.equal("COPY" .. incr:sub(5), c:read())
    end)

    it("parity 10: a private read-only map reads what a shared map reads", function()
      local data = h.bytes(3 * PAGE + 7, 11)
      local p = h.tmpfile(data)
      local shared = assert(mm.map(p))
      local private = assert(mm.map(p, {mode = "copy_r"}))
      assert.equal(data, private:read())
      assert.equal(shared:read(), private:read())
      assert.equal("copy_r", private:mode())
      raises("read-only", private.write, private, 0, "x")
    end)

    it("parity 11: offsets above 4 GiB, with the length inferred and explicit", function()
      local p = h.tmpname()
      local at = (4 << 30) + 3 -- above 4 GiB and not page-aligned
      local f = assert(io.open(p, "wb"))
      assert(f:seek("set", at))
      f:write("above-4G")
      assert(f:seek("set", 5 << 30))
      f:write("END!")
      f:close()
      assert.equal((5 << 30) + 4, h.file_size(p))

      local m = assert(mm.map(p, {offset = at}))
      assert.equal((5 << 30) + 4 - at, #m)
      assert.equal("above-4G", m:read(0, 8))
      assert.equal("END!", m:read(#m - 4, 4))
      m:close()

      local e = assert(mm.map(p, {offset = 5 << 30, len = 4}))
      assert.equal(4, #e)
      assert.equal("END!", e:read())
      e:close()

      local w = assert(mm.map(p, {mode = "rw", offset = at, len = 8}))
      assert.equal("above-4G", w:read())
      w:write(0, "CHANGED!")
      assert.is_true(w:flush())
      assert.equal("CHANGED!", h.read_file(p, at, 8))
    end)

    it("parity 12: single bytes written and read by index on an anonymous map", function()
      local m = assert(mm.anon(128))
      for i = 0, 127 do m[i] = (i * 7 + 3) % 256 end
      for i = 0, 127 do assert.equal((i * 7 + 3) % 256, m[i]) end
      m[0] = 42
      assert.equal(42, m[0])
      assert.equal("*", m:read(0, 1))
    end)

    it("parity 13: one map used from several coroutines", function()
      local m = assert(mm.anon(64))
      local cos = {}
      for id = 1, 4 do
        cos[id] = coroutine.wrap(function()
          for round = 1, 8 do
            -- each coroutine owns 8 bytes and reads its neighbour's too
            m:pack((id - 1) * 8, "<i4 i4", id, round)
            coroutine.yield(m:unpack("<i4 i4", (id % 4) * 8))
          end
          return "done"
        end)
      end
      for round = 1, 8 do
        for id = 1, 4 do
          local nid, nround, nxt = cos[id]()
          -- a neighbour with a larger id has not run this round yet
          local expect_round = id % 4 + 1 > id and round - 1 or round
          assert.equal(expect_round == 0 and 0 or id % 4 + 1, nid)
          assert.equal(expect_round, nround)
          assert.equal((id % 4) * 8 + 8, nxt)
        end
      end
      for id = 1, 4 do assert.equal("done", cos[id]()) end
      for id = 1, 4 do
        local a, b, nxt = m:unpack("<i4 i4", (id - 1) * 8)
        assert.same({id, 8, id * 8}, {a, b, nxt})
      end
    end)

    -- parity 14 (machine code run from a map) needs C: spec/c.

    it("parity 15: a file map goes rw -> r -> rw, writes reach the file, can be made executable", function()
      local p = h.tmpfile(128)
      local m = assert(mm.map(p, {mode = "rw"}))
      m:write(0, "a")
      assert.is_true(m:protect("r"))
      assert.matches("protection r,", tostring(m))
      raises("read-only", m.write, m, 1, "b")
      raises("read-only", function() m[1] = 98 end)
      assert.equal("a", m:read(0, 1))
      assert.is_true(m:protect("rw"))
      m:write(1, "b")
      m[2] = 99
      assert.is_true(m:flush())
      assert.equal("abc", h.read_file(p, 0, 3))
      local other = assert(mm.map(p))
      assert.equal("abc", other:read(0, 3))
      assert.is_true(m:protect("rx"))
      assert.matches("protection rx", tostring(m))
      assert.equal("abc", m:read(0, 3))
      raises("read-only", m.write, m, 0, "z")
      assert.equal("rw", m:mode()) -- the mode is what it was created with
    end)

    it("parity 16: the same chain on a copy-on-write map never reaches the file", function()
      local p = h.tmpfile(128)
      local m = assert(mm.map(p, {mode = "copy"}))
      m:write(0, "a")
      assert.is_true(m:protect("r"))
      raises("read-only", m.write, m, 1, "b")
      assert.is_true(m:protect("rw"))
      m:write(1, "b")
      assert.is_true(m:flush())
      assert.equal("ab", m:read(0, 2))
      assert.equal(ZEROS128, h.read_file(p))
      assert.equal(ZEROS128, assert(mm.map(p)):read())
      assert.is_true(m:protect("rx"))
      assert.equal("ab", m:read(0, 2))
    end)

    it("parity 17: the same chain on an anonymous map", function()
      local m = assert(mm.anon(128))
      m:write(0, "a")
      assert.is_true(m:protect("r"))
      raises("read-only", m.write, m, 1, "b")
      assert.equal("a", m:read(0, 1))
      assert.is_true(m:protect("rw"))
      m:write(1, "b")
      assert.equal("ab", m:read(0, 2))
      assert.is_true(m:protect("rx"))
      assert.equal("ab", m:read(0, 2))
      assert.matches("%(anon, protection rx, 128 bytes%)", tostring(m))
    end)

    it("parity 18: a 6-byte file maps with length 6 and its first byte reads back", function()
      local p = h.tmpfile("\7abcde")
      local m = assert(mm.map(p))
      assert.equal(6, #m)
      assert.equal(7, m[0])
      assert.equal(string.byte("e"), m[5])
    end)

    it("parity 19: a file opened read-only maps read-only", function()
      local p = h.tmpfile("read only")
      local f = assert(io.open(p, "rb"))
      local m = assert(mm.map(f))
      assert.equal("r", m:mode())
      assert.equal("read only", m:read())
      raises("read-only", m.write, m, 0, "R")
      -- and asking for more than the descriptor allows is a failure of the system
      local _, code = fails("Permission denied", mm.map(f, {mode = "rw"}))
      assert.equal(13, code) -- EACCES
      f:close()
      assert.equal("read only", m:read()) -- the map outlives the handle
    end)

    it("parity 20: the address does not change across protection changes", function()
      local p = h.tmpfile(PAGE * 2)
      local maps = {assert(mm.map(p, {mode = "rw"})), assert(mm.map(p, {mode = "copy"})),
                    assert(mm.anon(PAGE * 2))}
      for _, m in ipairs(maps) do
        local ptr = m:ptr()
        assert.equal("userdata", type(ptr))
        for _, prot in ipairs{"r", "rw", "rx", "rw"} do
          assert.is_true(m:protect(prot))
          assert.equal(ptr, m:ptr())
        end
        -- the mapping is still there, whole (the kernel may merge it with a neighbour)
        local info = h.mapping_at(ptr)
        assert.is_true(info.start <= h.address(ptr) and info.stop >= h.address(ptr) + #m)
      end
    end)

    it("parity 21: random on the whole map and sequential on a range, rw and r", function()
      local p = h.tmpfile(PAGE * 3)
      for _, mode in ipairs{"rw", "r"} do
        local m = assert(mm.map(p, {mode = mode}))
        assert.is_true(m:advise("random"))
        assert.is_true(m:advise("sequential", 0, #m))
        assert.is_true(m:advise("sequential", PAGE + 1, 10))
      end
    end)

    it("parity 22: dontneed on a private anonymous map filled with 255 makes it read 0", function()
      local m = assert(mm.anon(PAGE * 2))
      m:write(0, rep("\255", #m))
      assert.equal(rep("\255", #m), m:read())
      assert.is_true(m:advise("dontneed"))
      assert.equal(rep("\0", #m), m:read())
    end)

    it("parity 23: dontneed on the second page zeroes only that page", function()
      local m = assert(mm.anon(PAGE * 3))
      m:write(0, rep("\255", #m))
      assert.is_true(m:advise("dontneed", PAGE, PAGE))
      assert.equal(rep("\255", PAGE), m:read(0, PAGE))
      assert.equal(rep("\0", PAGE), m:read(PAGE, PAGE))
      assert.equal(rep("\255", PAGE), m:read(2 * PAGE, PAGE))
    end)

    it("parity 24: lock, lock, unlock, unlock; VmLck shows the locked size", function()
      local m = assert(mm.anon(PAGE * 4, {populate = true}))
      local before = h.status_kb("VmLck")
      assert.is_number(before)
      if h.under_asan() then
        -- AddressSanitizer replaces mlock and munlock with no-ops (make
        -- sanitize): only the results can be checked there
        for _, op in ipairs{"lock", "lock", "unlock", "unlock"} do assert.is_true(m[op](m)) end
        return
      end
      assert.is_true(m:lock())
      assert.equal(before + PAGE * 4 // 1024, h.status_kb("VmLck"))
      assert.is_true(m:lock())
      assert.equal(before + PAGE * 4 // 1024, h.status_kb("VmLck"))
      assert.equal(PAGE * 4 // 1024, h.mapping_at(m:ptr()).locked_kb)
      assert.is_true(m:unlock())
      assert.equal(before, h.status_kb("VmLck"))
      assert.is_true(m:unlock())
      assert.equal(before, h.status_kb("VmLck"))
    end)

    it("parity 25: remap 128 -> 2000 (may move) keeps the contents; the rest is zero and writable", function()
      local p = h.tmpfile(2000)
      local m = assert(mm.map(p, {mode = "rw", len = 128}))
      local head = h.bytes(128, 100)
      m:write(0, head)
      assert.is_true(m:remap(2000, {may_move = true}))
      assert.equal(2000, #m)
      assert.equal(head, m:read(0, 128))
      assert.equal(rep("\0", 1872), m:read(128, 1872))
      local incr = h.bytes(2000)
      assert.equal(2000, m:write(0, incr))
      assert.equal(incr, m:read())
      assert.is_true(m:flush())
      assert.equal(incr, h.read_file(p))
    end)

    it("parity 26: remap 20000 -> 400 in place stays writable", function()
      local p = h.tmpfile(20000)
      local m = assert(mm.map(p, {mode = "rw"}))
      local ptr = m:ptr()
      assert.is_true(m:remap(400))
      assert.equal(400, #m)
      assert.equal(ptr, m:ptr())
      local incr = h.bytes(400)
      m:write(0, incr)
      assert.equal(incr, m:read())
      raises("outside the map", m.read, m, 0, 401)
      assert.is_true(m:flush())
      assert.equal(incr, h.read_file(p, 0, 400))
    end)

    it("parity 27: a remap that fails leaves the mapping and its length untouched", function()
      local data = h.bytes(1024, 5)
      local p = h.tmpfile(data)
      local m = assert(mm.map(p, {len = 1024}))
      -- bad input raises: memmap2's overflowing length (a file map also may
      -- not grow past the end of its file)
      raises("runs past the end of the file", m.remap, m, math.maxinteger)
      raises("runs past the end of the file", m.remap, m, 1025, {may_move = true})
      assert.equal(1024, #m)
      assert.equal(data, m:read())
      local a = assert(mm.anon(PAGE))
      a:write(0, "kept")
      raises("remap: length overflows the address space (length " .. math.maxinteger .. ")",
             a.remap, a, math.maxinteger)
      assert.equal(PAGE, #a)
      -- a length the kernel refuses: fail, message, code
      fails("remap: ", a:remap(1 << 60, {may_move = true}))
      fails("remap: ", a:remap(1 << 60))
      assert.equal(PAGE, #a)
      assert.equal("kept", a:read(0, 4))
      assert.equal(rep("\0", PAGE - 4), a:read(4))
    end)

    it("parity 28: remap with offset 77, 128 -> 2000, keeps contents and writability", function()
      local p = h.tmpfile(2000 + 77)
      local m = assert(mm.map(p, {mode = "rw", offset = 77, len = 128}))
      local head = h.bytes(128, 9)
      m:write(0, head)
      assert.is_true(m:remap(2000, {may_move = true}))
      assert.equal(2000, #m)
      assert.equal(head, m:read(0, 128))
      assert.equal(rep("\0", 1872), m:read(128))
      local incr = h.bytes(2000)
      m:write(0, incr)
      assert.equal(incr, m:read())
      assert.is_true(m:flush())
      assert.equal(rep("\0", 77) .. incr, h.read_file(p))
    end)

    it("parity 29: advice support is probed at run time; the common five are supported", function()
      for _, name in ipairs{"normal", "random", "sequential", "willneed", "dontneed"} do
        assert.is_true(mm.advice_supported(name), name)
      end
      raises("unknown advice 'sometimes'", mm.advice_supported, "sometimes")
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("mm.map", function()
    it("maps by path", function()
      local p = h.tmpfile("hello world")
      local m = assert(mm.map(p))
      assert.equal(11, #m)
      assert.equal(11, m:len())
      assert.equal("hello world", m:read())
      assert.equal("r", m:mode())
      assert.is_true(h.is_mapped(p))
    end)

    it("maps by io.open handle, flushing buffered writes first", function()
      local p = h.tmpname()
      local f = assert(io.open(p, "w+b"))
      f:write("buffered") -- still in the FILE buffer
      local m = assert(mm.map(f, {mode = "rw"}))
      assert.equal("buffered", m:read())
      m:write(0, "B")
      assert.is_true(m:flush())
      assert(f:seek("set", 0))
      assert.equal("Buffered", f:read("a"))
      f:close()
      assert.equal("Buffered", m:read()) -- the map keeps its own reference
      raises("closed file", mm.map, f)
    end)

    it("maps by integer descriptor (in a child that got it from the shell)", function()
      local p = h.tmpfile("0123456789")
      local out, status, err = h.run_lua([[
        local mm = require "memmap3"
        local m = assert(mm.map(3, {mode = "rw", offset = 2, len = 4}))
        io.write(m:read(), ";")
        m:write(0, "AB")
        m:close()
        -- the descriptor was not closed: map it again
        local again = assert(mm.map(3))
        io.write(again:read(), ";")
        -- descriptor 4 was opened read-only by the shell
        local r = assert(mm.map(4))
        io.write(r:mode(), ";")
        local ok, msg, code = mm.map(4, {mode = "rw"})
        io.write(tostring(ok), ",", msg, ",", code, ";")
        -- descriptor 9 is not open in this child
        ok, msg, code = mm.map(9)
        io.write(tostring(ok), ",", msg, ",", code)
      ]], {redirect = "3<>" .. h.shell_quote(p) .. " 4<" .. h.shell_quote(p)})
      assert.equal("", err)
      assert.equal(0, status)
      assert.equal("2345;01AB456789;r;nil,fd 4: Permission denied,13;"
                   .. "nil,fd 9: Bad file descriptor,9", out)
      assert.equal("01AB456789", h.read_file(p))
      raises("bad file descriptor -1", mm.map, -1)
    end)

    it("maps in every mode", function()
      local data = "0123456789"
      local p = h.tmpfile(data)
      local r = assert(mm.map(p, {mode = "r"}))
      assert.equal(data, r:read())
      raises("read-only", r.write, r, 0, "x")

      local rw = assert(mm.map(p, {mode = "rw"}))
      rw:write(0, "W")
      assert.equal("W123456789", h.read_file(p))
      assert.equal("W", r:read(0, 1)) -- shared maps see each other

      local copy = assert(mm.map(p, {mode = "copy"}))
      copy:write(1, "C")
      assert.equal("WC23456789", copy:read())
      assert.equal("W123456789", h.read_file(p))

      local copy_r = assert(mm.map(p, {mode = "copy_r"}))
      raises("read-only", copy_r.write, copy_r, 0, "x")
      assert.is_true(copy_r:protect("rw"))
      copy_r:write(2, "P")
      assert.equal("W1P3456789", copy_r:read())
      assert.equal("W123456789", h.read_file(p))

      local rx = assert(mm.map(p, {mode = "rx"}))
      assert.equal("W123456789", rx:read())
      raises("read-only", rx.write, rx, 0, "x")

      for m, mode in pairs{[r] = "r", [rw] = "rw", [copy] = "copy", [copy_r] = "copy_r", [rx] = "rx"} do
        assert.equal(mode, m:mode())
        assert.matches("^memmap3%.Map %(" .. mode .. ", protection ", tostring(m))
      end
      assert.matches("protection rx,", tostring(rx))
      assert.equal("r-xs", h.mapping_at(rx:ptr()).perms)
      assert.equal("rw-p", h.mapping_at(copy:ptr()).perms)
      assert.equal("rw-s", h.mapping_at(rw:ptr()).perms)
    end)

    it("maps at any offset alignment, with and without len", function()
      local size = 3 * PAGE + 100
      local data = h.bytes(size, 0)
      local p = h.tmpfile(data)
      for _, off in ipairs{0, 1, 2, 7, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE + 3, size - 1, size} do
        local m = assert(mm.map(p, {offset = off}))
        assert.equal(size - off, #m)
        assert.equal(data:sub(off + 1), m:read())
        if off < size then assert.equal(off % 256, m[0]) end
        m:close()
        local n = math.min(5, size - off)
        local l = assert(mm.map(p, {offset = off, len = n}))
        assert.equal(n, #l)
        assert.equal(data:sub(off + 1, off + n), l:read())
        l:close()
      end
      local w = assert(mm.map(p, {mode = "rw", offset = PAGE + 1, len = 3}))
      w:write(0, "xyz")
      assert.equal("xyz", h.read_file(p, PAGE + 1, 3))
      assert.equal(data:sub(PAGE + 1, PAGE + 1), h.read_file(p, PAGE, 1))
      assert.equal(data:sub(PAGE + 5, PAGE + 5), h.read_file(p, PAGE + 4, 1))
      -- len 0 is an empty map at any offset
      assert.equal(0, #assert(mm.map(p, {offset = 5, len = 0})))
      raises("out of range", mm.map, p, {offset = size + 1})
    end)

    it("refuses a length past the end of the file (its pages would raise SIGBUS)", function()
      local p = h.tmpfile("abc")
      raises("mm.map: " .. p .. ": offset + len (8192) is past the end of the file (3 bytes)",
             mm.map, p, {len = 8192})
      raises("offset + len (4) is past the end of the file", mm.map, p, {offset = 1, len = 3})
      raises("offset + len (5) is past the end of the file", mm.map, p, {offset = 5, len = 0})
      local f = assert(io.open(p, "rb"))
      raises("mm.map: file (fd ", mm.map, f, {len = 4})
      f:close()
      assert.equal("bc", assert(mm.map(p, {offset = 1, len = 2})):read())
      -- what touching such a page does, in a child: the check is what saves us
      local out, status = h.run_lua([[
        local mm = require "memmap3"
        local ok, err = pcall(mm.map, ..., {len = 8192})
        io.write(tostring(ok), " ", tostring(err):match("past the end") or err)
      ]], {args = {p}})
      assert.equal(0, status)
      assert.equal("false past the end", out)
      -- devices have no size: /dev/zero maps with any length
      local z = assert(mm.map("/dev/zero", {mode = "copy", len = 2 * PAGE}))
      assert.equal(rep("\0", 2 * PAGE), z:read())
      z:write(PAGE, "dev")
      assert.equal("dev", z:read(PAGE, 3))
    end)

    it("a block device's size is the device's: no length past its end", function()
      -- st_size is 0 for a block device; its size comes from the device. Only
      -- maps it read-only and touches nothing: no side effect.
      local dev, size
      for name in h.capture("ls /sys/class/block 2>/dev/null"):gmatch("%S+") do
        local f = io.open("/dev/" .. name, "rb")
        if f then
          local n = f:seek("end")
          f:close()
          if n and (not dev or n > 0) then dev, size = "/dev/" .. name, n end
          if n and n > 0 then break end
        end
      end
      if not dev then return pending("skipped: no block device can be opened here") end
      local m = assert(mm.map(dev))
      assert.equal(size, #m)
      m:close()
      raises("past the end of the file (" .. size .. " bytes)", mm.map, dev, {len = size + PAGE})
      raises("past the end of the file", mm.map, dev, {offset = size, len = 1})
      local f = assert(io.open(dev, "rb"))
      raises("past the end of the file", mm.map, f, {len = size + 1})
      assert.equal(0, f:seek()) -- its position is left alone
      f:close()
      if size > 0 then
        local tail = assert(mm.map(dev, {offset = size - 1}))
        assert.equal(1, #tail)
        tail:close()
        m = assert(mm.map(dev, {len = 1}))
        raises("runs past the end of the file", m.remap, m, size + 1, {may_move = true})
        m:close()
      end
    end)

    it("populate prefaults the pages", function()
      local p = h.tmpfile(h.bytes(5 * PAGE))
      local lazy = assert(mm.map(p))
      assert.equal(0, h.mapping_at(lazy:ptr()).rss_kb) -- nothing touched yet
      local m = assert(mm.map(p, {populate = true}))
      assert.equal(5 * PAGE // 1024, h.mapping_at(m:ptr()).rss_kb)
      assert.equal(h.bytes(5 * PAGE), m:read())
    end)

    it("no_reserve maps without a swap reservation", function()
      local p = h.tmpfile(h.bytes(2 * PAGE))
      local m = assert(mm.map(p, {mode = "copy", no_reserve = true}))
      m:write(0, "NR")
      assert.equal("NR", m:read(0, 2))
      if not overcommit_never() then -- the kernel ignores it under strict overcommit
        assert.is_true(h.mapping_at(m:ptr()).flags.nr)
        local copy = assert(mm.map(p, {mode = "copy"}))
        assert.is_nil(h.mapping_at(copy:ptr()).flags.nr)
      end
    end)

    it("create makes the file and extends it to offset + len", function()
      local p = h.missing_path()
      assert.is_nil(h.file_size(p))
      local m = assert(mm.map(p, {mode = "rw", create = true, len = 100}))
      assert.equal(100, #m)
      assert.equal(100, h.file_size(p))
      assert.equal(rep("\0", 100), m:read())
      m:write(99, "!")
      assert.equal("!", h.read_file(p, 99, 1))
      m:close()

      local short = h.tmpfile("abcdefghij")
      local s = assert(mm.map(short, {mode = "rw", create = true, offset = 5, len = 20}))
      assert.equal(25, h.file_size(short))
      assert.equal("fghij" .. rep("\0", 15), s:read())
      s:close()

      -- a longer file is never shortened
      local long = h.tmpfile(h.bytes(50))
      assert(mm.map(long, {create = true, len = 10})):close()
      assert.equal(h.bytes(50), h.read_file(long))

      local empty = h.missing_path()
      local e = assert(mm.map(empty, {create = true}))
      assert.equal(0, #e)
      assert.equal(0, h.file_size(empty))

      local f = assert(io.open(h.tmpname(), "rb"))
      raises("option 'create' needs a path", mm.map, f, {create = true})
      f:close()
      raises("option 'create' must be a boolean", mm.map, p, {create = "yes"})
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("mm.anon", function()
    it("is private, zeroed and writable by default", function()
      local m = assert(mm.anon(3 * PAGE))
      assert.equal(rep("\0", 3 * PAGE), m:read())
      m:write(PAGE, "x")
      assert.equal("x", m:read(PAGE, 1))
      assert.equal("rw-p", h.mapping_at(m:ptr()).perms)
      assert.equal("rw", m:mode())
      assert.matches("^memmap3%.Map %(anon, protection rw, " .. 3 * PAGE .. " bytes%): ", tostring(m))
    end)

    it("populate prefaults the pages", function()
      -- a shared anonymous map is never merged with its neighbours, so its
      -- resident size is exactly its own
      local lazy = assert(mm.anon(8 * PAGE, {shared = true}))
      assert.equal(0, h.mapping_at(lazy:ptr()).rss_kb)
      local m = assert(mm.anon(8 * PAGE, {shared = true, populate = true}))
      assert.equal(8 * PAGE // 1024, h.mapping_at(m:ptr()).rss_kb)
      local priv = assert(mm.anon(8 * PAGE, {populate = true}))
      assert.is_true(h.mapping_at(priv:ptr()).rss_kb >= 8 * PAGE // 1024)
      assert.equal(rep("\0", 8 * PAGE), priv:read())
    end)

    it("stack is accepted and gives ordinary zeroed memory", function()
      -- MAP_STACK has no effect the process can observe on older kernels (it
      -- only turns off transparent huge pages on Linux >= 6.7)
      local m = assert(mm.anon(2 * PAGE, {stack = true}))
      assert.equal(rep("\0", 2 * PAGE), m:read())
      m:write(0, "stack")
      assert.equal("stack", m:read(0, 5))
    end)

    it("no_reserve maps without a swap reservation", function()
      local m = assert(mm.anon(4 * PAGE, {no_reserve = true}))
      m[0] = 1
      assert.equal(1, m[0])
      if not overcommit_never() then
        assert.is_true(h.mapping_at(m:ptr()).flags.nr)
        local plain = assert(mm.anon(4 * PAGE))
        assert.is_nil(h.mapping_at(plain:ptr()).flags.nr)
      end
    end)

    it("shared gives MAP_SHARED memory (what a forked child would see)", function()
      -- Lua cannot fork, and a child started with exec does not inherit the
      -- map, so a child seeing the writes cannot be shown from Lua (the C tests
      -- can). What is checked: the kernel lists the map as shared ("s").
      local m = assert(mm.anon(2 * PAGE, {shared = true}))
      m:write(0, "shared")
      assert.equal("shared", m:read(0, 6))
      local info = h.mapping_at(m:ptr())
      assert.equal("rw-s", info.perms)
      assert.is_true(info.flags.sh)
      local private = assert(mm.anon(2 * PAGE)) -- kept referenced: a collected map is unmapped
      assert.equal("rw-p", h.mapping_at(private:ptr()).perms)
    end)

    it("huge pages either map or fail cleanly", function()
      local size = 2 * 1024 * 1024
      for _, huge in ipairs{true, 21} do
        local m, msg, code = mm.anon(size, {huge = huge})
        if m then
          assert.equal(size, #m)
          m:write(size - 4, "huge")
          assert.equal("huge", m:read(size - 4, 4))
        else
          -- no huge pages configured (HugePages_Total 0): ENOMEM or EINVAL
          fails("anonymous map: ", m, msg, code)
        end
      end
      raises("option 'huge' must be true or page-size bits", mm.anon, size, {huge = 0})
      raises("option 'huge' must be true or page-size bits", mm.anon, size, {huge = 64})
      raises("option 'huge' must be true or page-size bits", mm.anon, size, {huge = "2M"})
    end)

    -- Runs only where huge pages are reserved (sysctl vm.nr_hugepages=N): on
    -- a default machine it is pending. Other programs taking huge pages
    -- meanwhile would upset its counts.
    it("a huge-page map shorter than a huge page protects and gives its page back", function()
      local function free_huge()
        return tonumber((h.read_sys("/proc/meminfo") or ""):match("HugePages_Free:%s*(%d+)")) or 0
      end
      collectgarbage() -- maps of earlier tests may hold huge pages
      collectgarbage()
      local before = free_huge()
      if before == 0 then return pending("skipped: no free huge pages (/proc/sys/vm/nr_hugepages is 0)") end
      local m = assert(mm.anon(100, {huge = true}))
      m:write(0, "x")                       -- takes the huge page
      assert.equal(before - 1, free_huge())
      assert.is_true(m:protect("r"))        -- the whole huge page (EINVAL when unrounded)
      assert.is_true(m:protect("rw"))
      m:close()
      assert.equal(before, free_huge())     -- given back (unrounded munmap kept it)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("read, write, pack, unpack", function()
    it("read and write with 0-based offsets", function()
      local m = assert(mm.anon(16))
      assert.equal(5, m:write(0, "hello"))
      assert.equal(16, m:write(11, "world"))
      assert.equal("hello", m:read(0, 5))
      assert.equal("world", m:read(11))
      assert.equal("hello" .. rep("\0", 6) .. "world", m:read())
      assert.equal("", m:read(16))
      assert.equal("", m:read(3, 0))
      assert.equal(16, m:write(16, ""))
      raises("outside the map", m.write, m, 12, "world")
      assert.equal("world", m:read(11)) -- nothing written
      raises("outside the map", m.read, m, 17)
    end)

    it("pack and unpack round-trip string.pack formats at any offset", function()
      local cases = {
        {"<i4", -5}, {">I2", 0xBEEF}, {"=h", -300}, {"H", 65535}, {"b", -128}, {"B", 255},
        {"l", -123456789}, {"L", 123456789}, {"j", math.mininteger}, {"J", -1},
        {"T", 12345}, {">I3", 0x123456}, {"<i16", -2}, {">i7", -(1 << 40)},
        {"f", 1.5}, {"d", -3.25}, {"n", 0.1}, {"<d >d", 2.5, 2.5},
        {"s1", "hi"}, {"s", "size_t length"}, {">s2", ""}, {"z", "zero"},
        {"c5", "ab\0\0\0"}, {"c3 x Xi4 i4", "abc", 9}, {"<i2 z B", 7, "mixed", 200},
      }
      local m = assert(mm.anon(64))
      for _, c in ipairs(cases) do
        local fmt = c[1]
        local values = table.pack(table.unpack(c, 2))
        local expect = spack(fmt, table.unpack(values, 1, values.n))
        for _, off in ipairs{0, 3} do
          m:write(0, rep("\255", #m))
          assert.equal(off + #expect, m:pack(off, fmt, table.unpack(values, 1, values.n)), fmt)
          assert.equal(expect, m:read(off, #expect), fmt)
          local got = table.pack(m:unpack(fmt, off))
          assert.equal(values.n + 1, got.n, fmt)
          for i = 1, values.n do assert.equal(values[i], got[i], fmt) end
          assert.equal(off + #expect, got[got.n], fmt)
        end
      end
      -- unpack defaults to offset 0 and reads what string.unpack reads
      m:write(0, spack("<i4 z", 77, "dflt"))
      local a, s, nxt = m:unpack("<i4 z")
      assert.same({77, "dflt", 9}, {a, s, nxt})
    end)

    it("alignment ('!') is relative to offset 0 of the map", function()
      local fmt = "!8 b i4 h d j"
      local values = {7, -2, 300, 0.75, math.maxinteger}
      local m = assert(mm.anon(64))
      for off = 0, 9 do
        m:write(0, rep("\255", #m)) -- the padding must really be written
        -- what string.pack produces when off bytes precede the same format
        local whole = spack("c" .. off .. " " .. fmt, rep("\0", off), table.unpack(values))
        local expect = whole:sub(off + 1)
        assert.equal(#whole, m:pack(off, fmt, table.unpack(values)), "offset " .. off)
        assert.equal(expect, m:read(off, #expect), "offset " .. off)
        local got = {m:unpack(fmt, off)}
        assert.same({7, -2, 300, 0.75, math.maxinteger, #whole}, got)
      end
      -- a concrete case: b at 1, padding 2..3, i4 at 4
      m:write(0, rep("\255", 8))
      assert.equal(8, m:pack(1, "!4 b i4", 1, -1))
      assert.equal("\255\1\0\0\255\255\255\255", m:read(0, 8))
    end)

    it("strings: s1, z and c read back exactly", function()
      local m = assert(mm.anon(32))
      assert.equal(4, m:pack(0, "s1", "abc"))
      assert.equal("\3abc", m:read(0, 4))
      assert.equal(9, m:pack(4, "z", "zeta"))
      assert.equal("zeta\0", m:read(4, 5))
      assert.equal(15, m:pack(9, "c6", "cc"))
      assert.equal("cc\0\0\0\0", m:read(9, 6))
      local s1, z, c, nxt = m:unpack("s1 z c6", 0)
      assert.same({"abc", "zeta", "cc\0\0\0\0", 15}, {s1, z, c, nxt})
    end)

    it("bad formats and values raise, and pack writes nothing then", function()
      local m = assert(mm.anon(8))
      m:write(0, rep("\255", 8))
      raises("overflow", m.pack, m, 0, "i4 b", 1, 300)
      raises("string longer than given size", m.pack, m, 0, "c2", "abc")
      raises("string contains zeros", m.pack, m, 0, "z", "a\0b")
      raises("invalid format option 'y'", m.pack, m, 0, "y", 1)
      raises("outside the map", m.pack, m, 6, "i4", 1)
      raises("outside the map", m.pack, m, 9, "b", 1)
      assert.equal(rep("\255", 8), m:read()) -- all of the above left the bytes alone
      raises("unpack past the end of the map", m.unpack, m, "i4", 6)
      raises("unfinished string for format 'z'", m.unpack, m, "z", 0)
      raises("runs past the end of the map", m.unpack, m, "s1", 0)
      raises("missing size for format option 'c'", m.unpack, m, "c", 0)
      raises("out of limits", m.unpack, m, "i17", 0)
      raises("not power of 2", m.unpack, m, "!3 i3", 0)
      raises("outside the map", m.unpack, m, "b", 9)
      local r = assert(mm.map(h.tmpfile(8)))
      raises("read-only", r.pack, r, 0, "b", 1)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("byte indexing", function()
    it("m[i] reads and writes single bytes at 0-based offsets", function()
      local p = h.tmpfile("ABCDEF")
      local m = assert(mm.map(p, {mode = "rw"}))
      assert.equal(65, m[0])
      assert.equal(70, m[5])
      assert.equal(66, m[1.0]) -- a float with an integer value is an index
      m[0] = 97
      m[5] = 0
      assert.equal("aBCDE\0", m:read())
      assert.equal("aBCDE\0", h.read_file(p))
      assert.equal("function", type(m.read)) -- string keys are methods
      assert.is_nil(m.no_such_method)
    end)

    it("m[i] checks the index, the value and the protection", function()
      local m = assert(mm.anon(4))
      raises("byte index 4 is outside the map", function() return m[4] end)
      raises("byte index -1 is outside the map", function() return m[-1] end)
      raises("is outside the map", function() return m[1.5] end)
      raises("byte index 4 is outside the map", function() m[4] = 1 end)
      raises("byte index -1 is outside the map", function() m[-1] = 1 end)
      raises("byte value 256 out of range 0..255", function() m[0] = 256 end)
      raises("byte value -1 out of range 0..255", function() m[0] = -1 end)
      raises("only bytes can be assigned", function() m.x = 1 end)
      raises("only bytes can be assigned", function() m[0.5] = 1 end)
      assert.equal(rep("\0", 4), m:read())
      local r = assert(mm.map(h.tmpfile("r")))
      raises("read-only", function() r[0] = 1 end)
      assert.equal(string.byte("r"), r[0])
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("flush", function()
    it("flush and flush_async, whole map and ranges", function()
      local p = h.tmpfile(3 * PAGE)
      local m = assert(mm.map(p, {mode = "rw", offset = 5}))
      m:write(0, "first")
      assert.is_true(m:flush())
      m:write(PAGE, "second")
      assert.is_true(m:flush(PAGE, 6))
      m:write(2 * PAGE, "third")
      assert.is_true(m:flush(2 * PAGE))
      assert.is_true(m:flush_async())
      assert.is_true(m:flush_async(1, 2))
      assert.is_true(m:flush_async(PAGE))
      assert.is_true(m:flush(#m, 0))
      assert.is_true(m:flush(#m))
      assert.equal("first", h.read_file(p, 5, 5))
      assert.equal("second", h.read_file(p, 5 + PAGE, 6))
      assert.equal("third", h.read_file(p, 5 + 2 * PAGE, 5))
      raises("outside the map", m.flush, m, 0, #m + 1)
      raises("outside the map", m.flush_async, m, #m + 1)
      raises("outside the map", m.flush, m, 1, math.maxinteger)
      assert.is_true(assert(mm.anon(PAGE)):flush())
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("advice", function()
    local names = {"normal", "random", "sequential", "willneed", "dontneed", "free", "remove",
                   "dontfork", "dofork", "mergeable", "unmergeable", "hugepage", "nohugepage",
                   "dontdump", "dodump", "populate_read", "populate_write"}

    it("every advice name is probed and applied without raising", function()
      for _, name in ipairs(names) do
        local supported = mm.advice_supported(name)
        assert.is_boolean(supported, name)
        -- some advice applies only to private memory (free), some only to
        -- shared memory (remove): a supported one works on one of the two
        local worked = false
        for _, shared in ipairs{false, true} do
          for _, range in ipairs{{}, {PAGE, PAGE}} do
            local m = assert(mm.anon(3 * PAGE, {shared = shared}))
            local ok, res, msg, code = pcall(m.advise, m, name, table.unpack(range))
            assert.is_true(ok, name .. " raised: " .. tostring(res))
            if res == true then
              worked = true
            else
              fails(name .. ": ", res, msg, code)
            end
          end
        end
        if supported then assert.is_true(worked, name .. " is supported but never worked") end
      end
    end)

    it("advice on file maps, whole and range", function()
      local p = h.tmpfile(h.bytes(4 * PAGE))
      local m = assert(mm.map(p, {mode = "rw", offset = 3}))
      for _, name in ipairs{"normal", "random", "sequential", "willneed", "dontneed"} do
        assert.is_true(m:advise(name), name)
        assert.is_true(m:advise(name, PAGE, 2 * PAGE), name)
        assert.is_true(m:advise(name, #m, 0), name)
      end
      -- dontneed on a shared file map drops pages, never data
      assert.equal(h.bytes(4 * PAGE):sub(4), m:read())
      raises("outside the map", m.advise, m, "normal", 0, #m + 1)
      raises("outside the map", m.advise, m, "normal", math.maxinteger, 1)
      raises("unknown advice 'sometimes'", m.advise, m, "sometimes")
      raises("unknown advice 'sometimes'", mm.advice_supported, "sometimes")
    end)

    it("dontneed, free and remove touch only whole pages inside the map and the range", function()
      -- the map holds file bytes [PAGE + 4, PAGE + 14): their page is mostly not the map's
      local p = h.tmpfile(rep("a", 3 * PAGE))
      local m = assert(mm.map(p, {mode = "rw", offset = PAGE + 4, len = 10}))
      if mm.advice_supported("remove") then
        assert.is_true(m:advise("remove", 0, 1))
        assert.is_true(m:advise("remove"))
      end
      assert.is_true(m:advise("dontneed", 0, 10))
      assert.is_true(h.read_file(p) == rep("a", 3 * PAGE), "a hole was punched in the file")
      local c = assert(mm.map(p, {mode = "copy", offset = PAGE + 4, len = 10}))
      c:write(0, rep("b", 10))
      assert.is_true(c:advise("dontneed"))
      assert.equal(rep("b", 10), c:read()) -- its private bytes are kept
      -- an anonymous map: bytes of the map outside the range are kept
      local a = assert(mm.anon(3 * PAGE))
      a:write(0, rep("\255", 3 * PAGE))
      assert.is_true(a:advise("dontneed", 100, 10))
      assert.equal(rep("\255", 3 * PAGE), a:read())
      assert.is_true(a:advise("dontneed", 100, 2 * PAGE)) -- holds page 1 only
      assert.equal(rep("\255", PAGE) .. rep("\0", PAGE) .. rep("\255", PAGE), a:read())
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("protect and remap", function()
    it("protect('rw') of a map of a read-only descriptor fails and changes nothing", function()
      local p = h.tmpfile("data")
      local m = assert(mm.map(p)) -- opened O_RDONLY
      local _, code = fails("protect: Permission denied", m:protect("rw"))
      assert.equal(13, code)
      assert.matches("protection r,", tostring(m))
      raises("read-only", m.write, m, 0, "x")
      assert.equal("data", m:read())
      assert.is_true(m:protect("rx"))
      assert.equal("data", m:read())
    end)

    it("protect rejects unknown protections", function()
      local m = assert(mm.anon(8))
      raises("invalid option 'w'", m.protect, m, "w")
      raises("invalid option 'copy'", m.protect, m, "copy")
      raises("bad argument", m.protect, m)
    end)

    it("remap without may_move shrinks and grows in place on anonymous maps", function()
      local m = assert(mm.anon(4 * PAGE))
      local ptr = m:ptr()
      m:write(0, "keep")
      assert.is_true(m:remap(PAGE))
      assert.equal(PAGE, #m)
      assert.equal(ptr, m:ptr())
      -- the pages just given back are free, so growing into them works in place
      local ok, msg = m:remap(2 * PAGE)
      if ok then
        assert.equal(2 * PAGE, #m)
        assert.equal(ptr, m:ptr())
        m:write(2 * PAGE - 1, "z")
      else
        assert.is_string(msg) -- someone mapped the hole meanwhile; untouched
        assert.equal(PAGE, #m)
      end
      assert.equal("keep", m:read(0, 4))
      assert.is_true(m:remap(0))
      assert.equal(0, #m)
      assert.equal("", m:read())
    end)

    it("remap with may_move may move the map, and the data moves with it", function()
      local m = assert(mm.anon(PAGE))
      m:write(0, "moved")
      assert.is_true(m:remap(64 * PAGE, {may_move = true}))
      assert.equal(64 * PAGE, #m)
      assert.equal("moved", m:read(0, 5))
      -- the kernel (or valgrind) may merge it with a neighbour: it must cover it all
      local addr, info = h.address(m:ptr()), h.mapping_at(m:ptr())
      assert.is_true(info.start <= addr and info.stop >= addr + 64 * PAGE)
      m:write(64 * PAGE - 1, "e")
      assert.equal("e", m:read(64 * PAGE - 1))
    end)

    it("a shared anonymous map grows only within the pages it was made with: past them an error, the map "
      .. "untouched (it gave SIGBUS once)", function()
        -- mremap added pages past the end of the shared memory behind the map;
        -- touching them raised SIGBUS
        local m = assert(mm.anon(2 * PAGE, {shared = true}))
        m:write(0, "kept")
        local ok, msg = m:remap(3 * PAGE, {may_move = true})
        assert.is_nil(ok)
        assert.matches("remap: a shared anonymous map cannot grow past the pages it was made with", msg, 1,
          true)
        assert.equal(2 * PAGE, #m)
        assert.equal("kept", m:read(0, 4))
        m:write(2 * PAGE - 1, "z") -- its last byte is still there
        assert.is_true(m:remap(PAGE))
        assert.equal(PAGE, #m)
        assert.equal("kept", m:read(0, 4))
        assert.is_true(m:remap(PAGE - 100)) -- within its pages
        assert.equal("kept", m:read(0, 4))
        assert.is_true(m:remap(2 * PAGE)) -- back to its size: the same memory (it was refused)
        assert.equal("z", m:read(2 * PAGE - 1))
        assert.is_nil((m:remap(2 * PAGE + 1)))
        local small = assert(mm.anon(100, {shared = true}))
        assert.is_true(small:remap(PAGE)) -- the rest of its one page (it was refused)
        small:write(PAGE - 1, "y")
        assert.equal("y", small:read(PAGE - 1))
      end)

    it("a file map grows only as far as its file (no SIGBUS)", function()
      local p = h.tmpfile("0123456789")
      local f = assert(io.open(p, "r+b"))
      local m = assert(mm.map(f, {mode = "rw"}))
      raises("remap: length 11 runs past the end of the file (offset 0, file 10 bytes)",
             m.remap, m, 11, {may_move = true})
      assert.equal(10, #m)
      -- once the file is longer the map follows it; the handle is closed by
      -- then (the map keeps its own descriptor of the file)
      assert(f:seek("end"))
      f:write("ABCDEFGHIJ")
      f:close()
      assert.is_true(m:remap(20, {may_move = true}))
      assert.equal("0123456789ABCDEFGHIJ", m:read())
      m:write(19, "j")
      assert.is_true(m:flush())
      assert.equal("0123456789ABCDEFGHIj", h.read_file(p))
      -- shrinking needs no check
      assert.is_true(m:remap(5))
      assert.equal("01234", m:read())
      local o = assert(mm.map(p, {offset = 7, len = 3}))
      raises("remap: length 14 runs past the end of the file (offset 7, file 20 bytes)",
             o.remap, o, 14, {may_move = true})
      assert.is_true(o:remap(13, {may_move = true}))
      assert.equal("789ABCDEFGHIj", o:read())
    end)

    it("remap checks its arguments", function()
      local m = assert(mm.anon(8))
      raises("remap: length must not be negative", m.remap, m, -1)
      raises("remap: unknown option 'move'", m.remap, m, 16, {move = true})
      raises("option 'may_move' must be a boolean", m.remap, m, 16, {may_move = 1})
      assert.equal(8, #m)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("a file truncated underneath", function()
    it("a file truncated by another program: a read of a lost page raises, the process lives", function()
      local p = h.tmpfile("")
      local out, status, err = h.run_lua([=[
        local mm = require "memmap3"
        local p, PAGE = ..., mm.page_size
        local function fill()
          local f = assert(io.open(p, "wb")); f:write(string.rep("a", 4 * PAGE)); f:close()
        end
        local function cut() assert(os.execute("truncate -s " .. PAGE .. " '" .. p .. "'")) end
        local function why(ok, e)
          return tostring(ok) .. ":" .. (tostring(e):match("truncated by another program") or tostring(e))
        end
        for _, mode in ipairs{"r", "rw", "copy", "copy_r"} do
          fill()
          local m = assert(mm.map(p, {mode = mode}))
          cut()
          local before = m:read(0, 1)                   -- still in the file: no fault
          local lost = why(pcall(m.read, m, 2 * PAGE, 1)) -- faults: zeros, flagged, raises
          local after = why(pcall(m.read, m, 0, 1))     -- every later use raises
          print(mode, before, lost, after, #m, m:mode(), tostring(m):match("^memmap3.Map %(") ~= nil)
          m:close()
        end
        local uses = {
          function(m) return m[2 * PAGE] end,
          function(m) return m:unpack("i4", 3 * PAGE) end,
          function(m) return m:unpack("c4", 3 * PAGE) end,
          function(m) return m:write(2 * PAGE, "x") end,
          function(m) return m:pack(2 * PAGE, "i4", 1) end,
          function(m) m[3 * PAGE] = 1 end,
        }
        for _, use in ipairs(uses) do
          fill()
          local m = assert(mm.map(p, {mode = "rw"}))
          cut()
          io.write(why(pcall(use, m)), " ")
          for _, name in ipairs{"flush", "advise", "protect", "remap", "lock"} do
            local ok, e = pcall(m[name], m, name == "advise" and "normal" or name == "protect" and "r" or
                                          name == "remap" and PAGE or nil)
            if ok or not e:find("truncated by another program") then io.write(name, " did not raise ") end
          end
          m:close()
        end
        print()
      ]=], {args = {p}})
      assert.equal(0, status, err)
      local lines = {}
      for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
      for i, mode in ipairs{"r", "rw", "copy", "copy_r"} do
        local cut = "false:truncated by another program"
        assert.equal(table.concat({mode, "a", cut, cut, 4 * PAGE, mode, "true"}, "\t"), lines[i])
      end
      assert.equal(rep("false:truncated by another program ", 6), lines[5])
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("lifetime", function()
    -- Any allocation can run a finalizer, and a finalizer can close, protect
    -- or remap the map an operation is using (in a child: it used to crash).
    it("a finalizer that closes, protects or remaps a map during pack or unpack is harmless", function()
      local out, status, err = h.run_lua([[
        local mm = require "memmap3"
        collectgarbage("incremental", 100, 100)
        local fmt, strs = string.rep("c4000", 200), {}
        for i = 1, 200 do strs[i] = string.rep("x", 4000) end
        local actions = {
          function(m) m:close() end,
          function(m) m:protect("r") end,
          function(m) m:remap(4096, {may_move = true}) end,
        }
        local inside, errors = 0, {}
        for round = 1, 150 do
          for _, op in ipairs{"unpack", "pack"} do
            local m = assert(mm.anon(1 << 20))
            local act, running = actions[round % 3 + 1], true
            setmetatable({}, {__gc = function()
              if running then inside = inside + 1 end
              local ok, e = pcall(act, m)
              if not ok then errors[e:gsub("^.-: ", "", 1)] = true end
            end})
            local ok, e
            if op == "unpack" then
              ok, e = pcall(m.unpack, m, fmt, 0)
              if ok and e ~= string.rep("\0", 4000) then error("unpack read " .. #e .. " bytes") end
            else
              ok, e = pcall(m.pack, m, 0, fmt, table.unpack(strs))
            end
            running = false
            if not ok then errors[e] = true end
          end
        end
        local list = {}
        for e in pairs(errors) do list[#list + 1] = e end
        table.sort(list)
        print(inside > 0, table.concat(list, "|"))
      ]])
      assert.equal(0, status, err)
      assert.is_truthy(out:find("^true\t"), out)
      -- what may be reported: pack after a close, a protect or a shrink;
      -- a remap inside an unpack refused
      for e in out:match("\t(.*)\n$"):gmatch("[^|]+") do
        assert.is_truthy(e:find("attempt to use a closed memmap3.Map", 1, true)
          or e:find("memmap3.Map is read-only", 1, true)
          or e:find("is outside the map", 1, true)
          or e:find("memmap3.Map is in use by unpack", 1, true), e)
      end
    end)

    it("close inside an unpack takes effect when the unpack ends", function()
      local out, status, err = h.run_lua([[
        local mm = require "memmap3"
        collectgarbage("incremental", 100, 100)
        local m = assert(mm.anon(64 * 4096))
        m:write(0, "abc")
        local seen
        for _ = 1, 100 do
          local running = true
          setmetatable({}, {__gc = function()
            if running and not seen then m:close(); seen = tostring(m) end
          end})
          local ok, a = pcall(m.unpack, m, "c3" .. string.rep(" c4096", 60), 0)
          running = false
          if seen then
            print(ok, a, seen, select(2, pcall(m.read, m, 0, 1)))
            return
          end
        end
        print("the finalizer never ran inside an unpack")
      ]])
      assert.equal(0, status, err)
      assert.equal("true\tabc\tmemmap3.Map (closed)\tattempt to use a closed memmap3.Map\n", out)
    end)

    it("remap reads its options before it takes the map", function()
      -- an option's __index that closes the map: remap then sees a closed map
      local out, status, err = h.run_lua([[
        local mm = require "memmap3"
        local m = mm.anon(4096)
        local opts = setmetatable({}, {__index = function() m:close() end})
        print(pcall(m.remap, m, 8192, opts))
        m = mm.anon(4096)
        opts = setmetatable({}, {__index = function() m:remap(100, {may_move = true}) return true end})
        print(m:remap(8192, opts), #m)
      ]])
      assert.equal(0, status, err)
      assert.equal("false\tattempt to use a closed memmap3.Map\ntrue\t8192\n", out)
      -- options made by __index are read like any others
      local p = h.tmpfile("abc")
      local m = assert(mm.map(p, setmetatable({}, {__index = function(_, k)
        if k == "mode" then return ("rw"):sub(1, 2) end
      end})))
      assert.equal("rw", m:mode())
      raises("bad mode 'ww'", mm.map, p, setmetatable({}, {__index = function(_, k)
        if k == "mode" then return ("w"):rep(2) end
      end}))
    end)

    it("close unmaps; a closed map raises on use; close is idempotent", function()
      local p = h.tmpfile(h.bytes(7 * PAGE))
      local m = assert(mm.map(p))
      assert.is_true(h.is_mapped(p))
      m:close()
      assert.is_false(h.is_mapped(p))
      m:close()
      assert.equal("memmap3.Map (closed)", tostring(m))
      local closed = "attempt to use a closed memmap3.Map"
      raises(closed, m.read, m)
      raises(closed, m.write, m, 0, "x")
      raises(closed, m.pack, m, 0, "b", 1)
      raises(closed, m.unpack, m, "b")
      raises(closed, m.flush, m)
      raises(closed, m.flush_async, m)
      raises(closed, m.advise, m, "normal")
      raises(closed, m.lock, m)
      raises(closed, m.unlock, m)
      raises(closed, m.protect, m, "r")
      raises(closed, m.remap, m, 8)
      raises(closed, m.mode, m)
      raises(closed, m.ptr, m)
      raises(closed, m.len, m)
      raises(closed, function() return #m end)
      raises(closed, function() return m[0] end)
      raises(closed, function() m[0] = 1 end)
    end)

    it("<close> unmaps at the end of the block, also on error", function()
      local p = h.tmpfile(h.bytes(3 * PAGE))
      do
        local m <close> = assert(mm.map(p))
        assert.is_true(h.is_mapped(p))
        assert.equal(0, m[0])
      end
      assert.is_false(h.is_mapped(p))
      local ok, err = pcall(function()
        local m <close> = assert(mm.map(p))
        assert(h.is_mapped(p) and m[1] == 1)
        error("boom")
      end)
      assert.is_false(ok)
      assert.matches("boom", err)
      assert.is_false(h.is_mapped(p))
    end)

    it("__gc unmaps a map nobody references", function()
      local p = h.tmpfile(h.bytes(5 * PAGE))
      local function make()
        local m = assert(mm.map(p))
        assert.is_true(h.is_mapped(p))
        return m:read(0, 3)
      end
      assert.equal("\0\1\2", make())
      collectgarbage()
      collectgarbage()
      assert.is_false(h.is_mapped(p))
    end)

    it("tostring names the mode, protection, length and address", function()
      local p = h.tmpfile(h.bytes(10))
      local m = assert(mm.map(p, {mode = "rw"}))
      local s = tostring(m)
      assert.matches("^memmap3%.Map %(rw, protection rw, 10 bytes%): ", s)
      assert.equal(h.address(m:ptr()), h.address(s:match(": (%S+)$")))
      assert.is_true(m:protect("r"))
      assert.matches("^memmap3%.Map %(rw, protection r, 10 bytes%)", tostring(m))
      assert.matches("^memmap3%.Map %(anon, protection rw, 0 bytes%)", tostring(assert(mm.anon(0))))
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("errors", function()
    it("out-of-range offsets and lengths raise, overflow included", function()
      local p = h.tmpfile(10)
      local m = assert(mm.map(p, {mode = "rw"}))
      raises("range [5, 5 + 10) is outside the map (10 bytes)", m.read, m, 5, 10)
      raises("outside the map", m.read, m, 11)
      raises("outside the map", m.read, m, 0, math.maxinteger)
      raises("outside the map", m.read, m, math.maxinteger, math.maxinteger)
      raises("outside the map", m.write, m, math.maxinteger, "x")
      raises("outside the map", m.flush, m, math.maxinteger, math.maxinteger)
      raises("outside the map", m.unpack, m, "b", math.maxinteger)
      raises("outside the map", m.pack, m, math.maxinteger, "b", 1)
      raises("out of range (offset 11)", mm.map, p, {offset = 11})
      raises("out of range", mm.map, p, {offset = math.maxinteger})
      raises("overflows the address space", mm.map, p, {offset = math.maxinteger, len = math.maxinteger})
      raises("overflows the address space", mm.map, p, {offset = 1, len = math.maxinteger})
      -- the last page of the range is not a file offset (mmap said EOVERFLOW)
      raises("overflows the address space", mm.map, p, {offset = math.maxinteger - 10, len = 5})
      raises("overflows the address space", mm.map, p, {offset = math.maxinteger - 10, len = 5,
                                                         create = true})
    end)

    it("negative offsets and lengths raise", function()
      local p = h.tmpfile(10)
      local m = assert(mm.map(p, {mode = "rw"}))
      raises("mm.map: offset must not be negative (got -1)", mm.map, p, {offset = -1})
      raises("mm.map: len must not be negative (got -2)", mm.map, p, {len = -2})
      raises("offset must not be negative", m.read, m, -1)
      raises("length must not be negative", m.read, m, 0, -1)
      raises("offset must not be negative", m.write, m, -1, "x")
      raises("offset must not be negative", m.flush, m, -1, 1)
      raises("length must not be negative", m.flush_async, m, 0, -1)
      raises("offset must not be negative", m.advise, m, "normal", -1, 1)
      raises("offset must not be negative", m.pack, m, -1, "b", 1)
      raises("offset must not be negative", m.unpack, m, "b", -1)
      raises("mm.anon: length must not be negative", mm.anon, -1)
      raises("offset must not be negative", mm.map, p, {offset = math.mininteger})
    end)

    it("writes to a read-only map raise", function()
      local m = assert(mm.map(h.tmpfile("abc")))
      raises("memmap3.Map is read-only (mode r, protection r)", m.write, m, 0, "x")
      assert.equal("abc", m:read())
    end)

    it("bad modes, options and arguments raise", function()
      local p = h.tmpfile(10)
      raises("mm.map: bad mode 'w' (expected r, rw, copy, copy_r or rx)", mm.map, p, {mode = "w"})
      raises("option 'mode' must be a string", mm.map, p, {mode = 1})
      raises("mm.map: unknown option 'bogus'", mm.map, p, {bogus = true})
      raises("mm.map: unknown option 'size'", mm.map, p, {len = 1, size = 1})
      raises("mm.map: unknown option '1'", mm.map, p, {"rw"})
      raises("mm.anon: unknown option 'mode'", mm.anon, 8, {mode = "rw"})
      raises("option 'offset' must be an integer", mm.map, p, {offset = 1.5})
      raises("option 'populate' must be a boolean", mm.map, p, {populate = 1})
      raises("option 'shared' must be a boolean", mm.anon, 8, {shared = "yes"})
      raises("table expected", mm.map, p, "rw")
      raises("path, file handle or descriptor", mm.map, true)
      raises("path, file handle or descriptor", mm.map, 1.5)
      raises("number expected", mm.anon, "big")
    end)

    it("failures of the system return fail, 'path: message', code", function()
      local missing = h.missing_path()
      local ok, msg, code = mm.map(missing)
      assert.is_nil(ok)
      assert.equal(2, code) -- ENOENT
      assert.equal(missing .. ": " .. mm.strerror(2), msg)
      ok, msg, code = mm.map(missing, {mode = "rw"})
      assert.is_nil(ok)
      assert.equal(missing .. ": " .. mm.strerror(2), msg)
      assert.equal(2, code)

      local p = h.tmpfile("x")
      local f = assert(io.open(p, "rb"))
      local m
      m, msg, code = mm.map(f, {mode = "rw"})
      f:close()
      assert.is_nil(m)
      assert.matches("^file %(fd %d+%): Permission denied$", msg)
      assert.equal(13, code) -- EACCES

      local dir = os.getenv("TMPDIR") or "/tmp"
      msg, code = fails(dir .. ": ", mm.map(dir)) -- a directory cannot be mapped
      assert.equal(dir .. ": " .. mm.strerror(code), msg)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("spec helpers", function()
    it("temporary paths are removed by cleanup", function()
      local a = h.tmpfile("a")
      local b = h.missing_path()
      h.write_file(b, 3)
      assert.equal("\0\0\0", h.read_file(b))
      assert.is_true(h.pending() >= 2)
      h.cleanup()
      assert.equal(0, h.pending())
      assert.is_nil(io.open(a))
      assert.is_nil(io.open(b))
    end)

    it("run_lua returns the child's stdout, exit status and stderr", function()
      local out, status, err = h.run_lua([[
        io.write(require("memmap3").version, " ", ...)
        io.stderr:write("on stderr")
        os.exit(3)
      ]], {args = {"it's"}})
      assert.equal(mm.version .. " it's", out)
      assert.equal(3, status)
      assert.equal("on stderr", err)
    end)
  end)
end)
