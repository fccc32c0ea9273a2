-- Fixed-capacity sequences (SPEC §2, §4, §5): vec<T, N> (push, pop, insert,
-- remove, clear, #, index get/set, ipairs, <<), ring<T, N> (push overwrites
-- the oldest, iterates oldest -> newest, latest(k)) and string_array<N, LEN>
-- (get/set/clear/iterate, count). Errors name the container and change
-- nothing; containers nested in structs, in arrays of structs and as file
-- roots persist into a fresh lua5.4 process; read-only files refuse writes;
-- real processes push into one vec and one ring at once.
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

local run_together = h.run_together

local Item = mm.struct("VItem", {{"id", "u32"}, {"name", "string<8>"}, {"hp", "i16"}})
local Hero = mm.struct("VHero", {
  {"id", "u32"}, {"inv", "vec<u16, 4>"}, {"recent", "ring<u64, 3>"}, {"tags", "string_array<3, 5>"},
})
local Save = mm.struct("VSave", {
  {"version", "u32"},
  {"inv", "vec<u16, 64>"},
  {"small", "vec<u8, 3>"},
  {"items", mm.vec(Item, 3)},
  {"big", "vec<u128, 2>"},
  {"recent", "ring<u64, 4>"},
  {"events", mm.ring(Item, 2)},
  {"tags", "string_array<4, 6>"},
  {"heroes", mm.array(Hero, 3)},
  {"grid", "vec<u8, 2>[2]"},
})

describe("fixed sequences", function()
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

  -- -------------------------------------------------------------------------
  describe("vec<T, N>", function()
    it("push appends, # counts, v[i] reads; past the end (and 0, negative) reads nil", function()
      local v = s.inv
      assert.equal(0, #v)
      assert.is_nil(v[1])
      v:push(10)
      v:push(20)
      v:push(65535)
      assert.equal(3, #v)
      assert.equal(10, v[1])
      assert.equal(20, v[2])
      assert.equal(65535, v[3])
      assert.is_nil(v[4])
      assert.is_nil(v[0])
      assert.is_nil(v[-1])
      assert.same({10, 20, 65535}, mm.totable(v))
    end)

    it("<< appends and returns the vec, so it chains", function()
      local v = s.inv
      local r = v << 1 << 2 << 3
      assert.is_true(rawequal(v, r))
      assert.same({1, 2, 3}, mm.totable(v))
      local _ = s.inv << 4
      assert.same({1, 2, 3, 4}, mm.totable(v))
    end)

    it("a full vec raises 'vec 'NAME' is full (capacity N)' for push, << and insert, and changes nothing",
      function()
        local v = s.small
        v:push(1)
        v:push(2)
        v:push(3)
        raises("vec 'small' is full (capacity 3)", v.push, v, 4)
        raises("vec 'small' is full (capacity 3)", function() return v << 4 end)
        raises("vec 'small' is full (capacity 3)", v.insert, v, 1, 4)
        assert.same({1, 2, 3}, mm.totable(v))
        for i = 1, 64 do s.inv:push(i) end
        raises("vec 'inv' is full (capacity 64)", s.inv.push, s.inv, 65)
        assert.equal(64, #s.inv)
        assert.equal(64, s.inv[64])
      end)

    it("pop removes and returns the last element; an empty vec pops nil", function()
      local v = s.inv
      local _ = v << 1 << 2 << 3
      assert.equal(3, v:pop())
      assert.equal(2, #v)
      assert.is_nil(v[3])
      assert.equal(2, v:pop())
      assert.equal(1, v:pop())
      assert.equal(0, #v)
      assert.is_nil(v:pop())
      assert.equal(0, #v)
      v:push(7) -- a popped slot is reused
      assert.same({7}, mm.totable(v))
    end)

    it("insert(i, x) shifts later elements up; i may be 1..#v + 1", function()
      local v = s.inv
      v:insert(1, 30)  -- into an empty vec
      v:insert(1, 10)  -- at the front
      v:insert(2, 20)  -- in the middle
      v:insert(4, 40)  -- at the end (#v + 1)
      assert.same({10, 20, 30, 40}, mm.totable(v))
      raises({"vec 'inv'", "insert position 6 is out of range (1..5)"}, v.insert, v, 6, 1)
      raises({"vec 'inv'", "out of range"}, v.insert, v, 0, 1)
      raises({"vec 'inv'", "out of range"}, v.insert, v, -1, 1)
      raises("value expected", v.insert, v, 1)
      raises({"vec 'inv' element", "70000 is out of range"}, v.insert, v, 1, 70000)
      assert.same({10, 20, 30, 40}, mm.totable(v))
    end)

    it("remove(i) shifts later elements down and returns the removed one; remove() takes the last", function()
      local v = s.inv
      local _ = v << 10 << 20 << 30 << 40 << 50
      assert.equal(20, v:remove(2))
      assert.same({10, 30, 40, 50}, mm.totable(v))
      assert.equal(10, v:remove(1))
      assert.same({30, 40, 50}, mm.totable(v))
      assert.equal(50, v:remove())
      assert.same({30, 40}, mm.totable(v))
      raises({"vec 'inv'", "remove position 3 is out of range (1..2)"}, v.remove, v, 3)
      raises({"vec 'inv'", "out of range"}, v.remove, v, 0)
      assert.same({30, 40}, mm.totable(v))
      assert.equal(40, v:remove(2))
      assert.equal(30, v:remove(1))
      assert.is_nil(v:remove()) -- empty: nil, as table.remove
      raises({"vec 'inv'", "out of range"}, v.remove, v, 1)
      assert.equal(0, #v)
    end)

    it("v[i] = x overwrites 1..#v; writing past the end raises naming the vec and appends nothing", function()
      local v = s.inv
      local _ = v << 1 << 2
      v[1] = 100
      v[2] = 200
      assert.same({100, 200}, mm.totable(v))
      raises({"vec 'inv'", "index 3 is out of range (1..2)"}, function() v[3] = 3 end)
      raises({"vec 'inv'", "out of range"}, function() v[0] = 3 end)
      raises({"vec 'inv'", "out of range"}, function() v.x = 3 end)
      assert.same({100, 200}, mm.totable(v))
    end)

    it("an element of the wrong type raises naming the vec and changes nothing", function()
      local v = s.small
      local _ = v << 5
      for _, bad in ipairs{256, -1, 1.5, "7", true, {}} do
        raises("vec 'small' element", v.push, v, bad)
        raises("vec 'small' element", function() return v << bad end)
        raises("vec 'small' element", function() v[1] = bad end)
      end
      raises({"vec 'small' element", "256 is out of range"}, v.push, v, 256)
      raises({"vec 'small' element", "expected an integer, got string"}, v.push, v, "7")
      raises("value expected", v.push, v)
      assert.same({5}, mm.totable(v))
    end)

    it("clear() and mm.clear empty it; it fills up again", function()
      local v = s.small
      local _ = v << 1 << 2 << 3
      v:clear()
      assert.equal(0, #v)
      assert.is_nil(v[1])
      local _ = v << 4 << 5 << 6
      assert.same({4, 5, 6}, mm.totable(v))
      mm.clear(v)
      assert.equal(0, #v)
      local _ = v << 7
      assert.same({7}, mm.totable(v))
    end)

    it("ipairs and pairs visit 1..#v in order", function()
      local v = s.inv
      for i = 1, 10 do v:push(i * 3) end
      local seen = {}
      for i, x in ipairs(v) do seen[#seen + 1] = {i, x} end
      assert.equal(10, #seen)
      for i = 1, 10 do assert.same({i, i * 3}, seen[i]) end
      local n = 0
      for i, x in pairs(v) do
        n = n + 1
        assert.equal(n, i)
        assert.equal(i * 3, x)
      end
      assert.equal(10, n)
    end)

    it("mm.totable is a plain, independent copy", function()
      local v = s.inv
      local _ = v << 1 << 2
      local t = mm.totable(v)
      assert.equal("table", type(t))
      assert.is_nil(getmetatable(t))
      t[1] = 99
      t[3] = 3
      assert.same({1, 2}, mm.totable(v))
    end)

    it("has methods; an unknown name raises naming the vec", function()
      local v = s.inv
      for _, m in ipairs{"push", "pop", "insert", "remove", "clear"} do
        assert.equal("function", type(v[m]))
      end
      raises("vec 'inv' has no method 'nope'", function() return v.nope end)
    end)

    it("v[1.0] reads element 1, as t[1.0] does for a table (v[1.0] = x already writes it)", function()
      local v = s.inv
      local _ = v << 5
      v[1.0] = 6 -- writing with a float key that is an integer works
      assert.equal(6, v[1])
      assert.equal(6, v[1.0])
      local r = s.recent
      r:push(8)
      assert.equal(8, r[1.0])
    end)

    it("16-byte elements (u128) keep their full value", function()
      local v = s.big
      v:push("340282366920938463463374607431768211455")
      v:push(1)
      assert.equal("340282366920938463463374607431768211455", v[1])
      assert.equal(1, v[2])
      raises("vec 'big' is full (capacity 2)", v.push, v, 2)
    end)

    it("vec of structs: push tables; elements are views that write through; pop returns a table", function()
      local v = s.items
      v:push({id = 1, name = "sword", hp = -5})
      local _ = v << {id = 2, name = "axe"}
      local e = v[1]
      assert.equal("sword", e.name)
      e.name = "blade"
      e.hp = 7
      assert.equal("blade", v[1].name)
      assert.equal(7, v[1].hp)
      v[2] = {id = 3, name = "bow"}
      assert.equal(3, v[2].id)
      assert.same({{id = 1, name = "blade", hp = 7}, {id = 3, name = "bow", hp = 0}}, mm.totable(v))
      local popped = v:pop()
      assert.same({id = 3, name = "bow", hp = 0}, popped)
      assert.is_nil(getmetatable(popped))
      assert.equal(1, #v)
    end)

    it("vec of structs: a bad field raises naming the vec and changes nothing", function()
      local v = s.items
      v:push({id = 1, name = "ok"})
      raises("vec 'items' element", v.push, v, {id = 2, name = "much too long"})
      raises({"vec 'items' element", "no field 'nope'"}, v.push, v, {id = 2, nope = 1})
      raises("vec 'items' element", function() v[1] = {id = 9, hp = 40000} end)
      raises("vec 'items' element", v.insert, v, 1, {id = -1})
      assert.same({{id = 1, name = "ok", hp = 0}}, mm.totable(v))
    end)

    it("a table assigned to a vec field sets it; too many elements or a bad one raise and change nothing",
      function()
        s.inv = {1, 2, 3}
        assert.same({1, 2, 3}, mm.totable(s.inv))
        s.inv = {4}
        assert.same({4}, mm.totable(s.inv))
        s.inv = {}
        assert.equal(0, #s.inv)
        s.small = {7, 8, 9}
        raises({"field 'small'", "4 elements do not fit (capacity 3)"}, function() s.small = {1, 2, 3, 4} end)
        raises({"field 'small'", "out of range"}, function() s.small = {1, 2, 300} end)
        raises({"field 'small'", "expected an integer"}, function() s.small = {1, "x"} end)
        raises({"field 'small'", "expected a table"}, function() s.small = 5 end)
        -- keys that are not positions 1..#t would be dropped: refused, nothing emptied
        raises({"field 'small'", "key x is not a position 1..0", "takes a sequence"},
          function() s.small = {x = 1} end)
        raises({"field 'small'", "key 0 is not a position 1..2"}, function() s.small = {[0] = 5, 1, 2} end)
        raises({"field 'small'", "key 2.5"}, function() s.small = {1, [2.5] = 2} end)
        assert.same({7, 8, 9}, mm.totable(s.small))
        s.items = {{id = 1, name = "a"}, {id = 2}}
        assert.equal("a", s.items[1].name)
        raises("field 'items'", function() s.items = {{id = 5}, {id = 6, name = "way too long"}} end)
        assert.same({{id = 1, name = "a", hp = 0}, {id = 2, name = "", hp = 0}}, mm.totable(s.items))
      end)

    it("in a struct, in an array of structs and in an array: persist into a fresh process", function()
      local _ = s.inv << 1 << 2 << 3
      s.items:push({id = 7, name = "gem"})
      local _ = s.heroes[2].inv << 11 << 12
      s.heroes[3].inv:push(13)
      local _ = s.grid[2] << 5 << 6
      -- a chain stops at the push that does not fit; the ones before it stay
      raises("vec 'inv' is full (capacity 4)", function() return s.heroes[2].inv << 1 << 2 << 3 end)
      mm.close(s)
      s = nil
      local out = fresh([[
        local mm = require "memmap3"
        local s = assert(mm.open(...))
        local function list(v) return table.concat(mm.totable(v), ",") end
        io.write(list(s.inv), "|", s.items[1].name, s.items[1].id, "|", list(s.heroes[2].inv), "|",
          list(s.heroes[3].inv), "|", #s.heroes[1].inv, "|", list(s.grid[2]), "|", #s.grid[1])
        s.heroes[2].inv:pop()
        s.inv:remove(1)
      ]], path())
      assert.equal("1,2,3|gem7|11,12,1,2|13|0|5,6|0", out)
      s = assert(mm.open(path(), Save))
      assert.same({2, 3}, mm.totable(s.inv))
      assert.same({11, 12, 1}, mm.totable(s.heroes[2].inv))
    end)

    it("a full vec in an array of vecs names it (field and index), not just 'element'", function()
      local _ = s.grid[2] << 1 << 2
      local err = raises("is full (capacity 2)", s.grid[2].push, s.grid[2], 3)
      assert.is_truthy(err:find("grid", 1, true), err)
    end)

    it("a vec can be a file's root, reopened without the schema in a fresh process", function()
      local p = path("root.mm3")
      local v = assert(mm.create(p, "vec<i64, 8>"))
      local _ = v << math.mininteger << -1 << math.maxinteger
      raises("vec 'root'", v.push, v, 1.5)
      mm.close(v)
      local out = fresh([[
        local mm = require "memmap3"
        local v = assert(mm.open(...))
        io.write(#v, " ", v[1], " ", v[2], " ", v[3], " ", tostring(v[4]))
        for i = 4, 8 do v:push(i) end
        local ok, err = pcall(v.push, v, 9)
        io.write(" ", tostring(ok), " ", err)
      ]], p)
      assert.equal(("3 %d -1 %d nil false vec 'root' is full (capacity 8)"):format(
        math.mininteger, math.maxinteger), out)
      v = assert(mm.open(p, "vec<i64, 8>"))
      assert.equal(8, #v)
      assert.equal(8, v[8])
      mm.close(v)
    end)

    it("on a read-only file reads work and every write raises and changes nothing", function()
      local _ = s.inv << 1 << 2
      s.items:push({id = 1})
      mm.close(s)
      s = assert(mm.open(path(), Save, {readonly = true}))
      local v = s.inv
      assert.same({1, 2}, mm.totable(v))
      raises({"read-only", path()}, v.push, v, 3) -- naming the file
      raises("read-only", function() return v << 3 end)
      raises("read-only", v.pop, v)
      raises("read-only", v.insert, v, 1, 3)
      raises("read-only", v.remove, v, 1)
      raises("read-only", v.clear, v)
      raises("read-only", mm.clear, v)
      raises("read-only", function() v[1] = 9 end)
      raises("read-only", function() s.inv = {5} end)
      raises("read-only", function() s.items[1].id = 5 end)
      assert.same({1, 2}, mm.totable(v))
      assert.equal(1, s.items[1].id)
    end)

    it("raises once its file is closed", function()
      local v = s.inv
      v:push(1)
      mm.close(s)
      s = nil
      raises("closed memmap3 file", function() v:push(2) end)
      raises("closed memmap3 file", function() return v << 2 end)
      raises("closed memmap3 file", function() return #v end)
      raises("closed memmap3 file", function() return v[1] end)
      raises("closed memmap3 file", mm.totable, v)
    end)

    it("4 processes pushing at once into one vec<u64, 64>: each value once, then it is full", function()
      local W = [[
        local path, me = arg[1], tonumber(arg[2])
        local mm = require "memmap3"
        local s = assert(mm.open(path))
        s.ready:fetch_add(1)
        local t0 = os.time()
        while s.ready:load() < 4 do
          if os.time() - t0 > 30 then error("barrier timeout") end
        end
        for i = 1, 16 do s.v:push(me * 1000 + i) end
        io.write("done")
      ]]
      local Shared = mm.struct("VShared", {{"ready", "u32", atomic = true}, {"v", "vec<u64, 64>"}})
      local p = path("shared.mm3")
      local sh = assert(mm.create(p, Shared))
      local outs = run_together(dir, W, {{p, 1}, {p, 2}, {p, 3}, {p, 4}})
      for _, o in ipairs(outs) do assert.equal("done", o) end
      assert.equal(64, #sh.v)
      local seen, last = {}, {}
      for _, x in ipairs(sh.v) do
        assert.is_nil(seen[x], "value " .. x .. " twice")
        seen[x] = true
        local who, i = x // 1000, x % 1000
        assert.is_true(who >= 1 and who <= 4 and i >= 1 and i <= 16, "bad value " .. x)
        assert.is_true(i > (last[who] or 0), "a process's pushes out of order")
        last[who] = i
      end
      for who = 1, 4 do
        for i = 1, 16 do assert.is_true(seen[who * 1000 + i], "lost " .. (who * 1000 + i)) end
      end
      raises("is full (capacity 64)", sh.v.push, sh.v, 1)
      mm.close(sh)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("ring<T, N>", function()
    it("push and << add; # is min(pushes, N); iteration goes oldest -> newest", function()
      local r = s.recent
      assert.equal(0, #r)
      assert.is_nil(r[1])
      r:push(1)
      local ret = r << 2 << 3
      assert.is_true(rawequal(r, ret))
      assert.equal(3, #r)
      assert.same({1, 2, 3}, mm.totable(r))
      local _ = r << 4
      assert.equal(4, #r)
      assert.same({1, 2, 3, 4}, mm.totable(r))
    end)

    it("when full, a push overwrites the oldest", function()
      local r = s.recent
      for i = 1, 11 do r:push(i * 10) end
      assert.equal(4, #r)
      assert.same({80, 90, 100, 110}, mm.totable(r))
      assert.equal(80, r[1])
      assert.equal(110, r[4])
      assert.is_nil(r[5])
      assert.is_nil(r[0])
      local seen = {}
      for i, x in ipairs(r) do seen[i] = x end
      assert.same({80, 90, 100, 110}, seen)
      local n = 0
      for i, x in pairs(r) do
        n = n + 1
        assert.equal(n, i)
        assert.equal(seen[i], x)
      end
      assert.equal(4, n)
    end)

    it("latest(k) is the k-th newest (latest() the newest); nil past what it holds", function()
      local r = s.recent
      assert.is_nil(r:latest())
      local _ = r << 1 << 2
      assert.equal(2, r:latest())
      assert.equal(2, r:latest(1))
      assert.equal(1, r:latest(2))
      assert.is_nil(r:latest(3))
      assert.equal(1, select("#", r:latest(3))) -- nil itself, as t[k] gives
      assert.equal(1, select("#", r:latest(0)))
      assert.is_nil(r:latest(-1))
      for i = 3, 9 do r:push(i) end
      assert.equal(9, r:latest())
      assert.equal(6, r:latest(4))
      assert.is_nil(r:latest(5))
      assert.is_nil(r:latest(0))
    end)

    it("r[i] = x overwrites the i-th oldest; past the end raises", function()
      local r = s.recent
      for i = 1, 6 do r:push(i) end -- holds 3, 4, 5, 6
      r[1] = 30
      r[4] = 60
      assert.same({30, 4, 5, 60}, mm.totable(r))
      raises({"ring 'recent'", "out of range"}, function() r[5] = 1 end)
      r:push(7) -- overwrites the oldest, the one just set
      assert.same({4, 5, 60, 7}, mm.totable(r))
    end)

    it("only pushes: pop, insert and remove are not methods of a ring", function()
      local r = s.recent
      r:push(1)
      raises("ring 'recent' has no method 'pop'", function() return r.pop end)
      raises("ring 'recent' has no method 'insert'", function() return r.insert end)
      raises("ring 'recent' has no method 'remove'", function() return r.remove end)
      -- a vec's methods called on a ring say the same, and change nothing
      raises("ring 'recent' has no method 'insert'", s.inv.insert, r, 1, 2)
      raises("ring 'recent' has no method 'remove'", s.inv.remove, r, 1)
      raises("ring 'recent' has no method 'pop'", s.inv.pop, r)
      assert.equal("function", type(r.latest))
      assert.same({1}, mm.totable(r))
    end)

    it("clear() and mm.clear empty it", function()
      local r = s.recent
      for i = 1, 6 do r:push(i) end
      r:clear()
      assert.equal(0, #r)
      assert.is_nil(r:latest())
      local _ = r << 9
      assert.same({9}, mm.totable(r))
      mm.clear(r)
      assert.equal(0, #r)
    end)

    it("an element of the wrong type raises naming the ring and changes nothing", function()
      local r = s.recent
      local _ = r << 1 << 2
      raises({"ring 'recent' element", "expected an integer"}, r.push, r, "x")
      raises("ring 'recent' element", function() return r << 2.5 end)
      raises("ring 'recent' element", function() r[1] = {} end)
      assert.same({1, 2}, mm.totable(r))
    end)

    it("ring of structs: elements are views that write through", function()
      local r = s.events
      local _ = r << {id = 1, name = "a"} << {id = 2, name = "b"} << {id = 3, name = "c"}
      assert.same({{id = 2, name = "b", hp = 0}, {id = 3, name = "c", hp = 0}}, mm.totable(r))
      r:latest().hp = 5
      assert.equal(5, r[2].hp)
      raises("ring 'events' element", r.push, r, {id = 4, bogus = 1})
      assert.equal(3, r:latest().id)
    end)

    it("a table assigned to a ring field keeps its newest N; a bad element changes nothing", function()
      s.recent = {1, 2, 3}
      assert.same({1, 2, 3}, mm.totable(s.recent))
      s.recent = {1, 2, 3, 4, 5, 6}
      assert.same({3, 4, 5, 6}, mm.totable(s.recent))
      raises("field 'recent'", function() s.recent = {1, "x"} end)
      raises("field 'recent'", function() s.recent = "x" end)
      assert.same({3, 4, 5, 6}, mm.totable(s.recent))
    end)

    it("in a struct, in an array of structs, and as a file root: persist into a fresh process", function()
      for i = 1, 6 do s.recent:push(i) end
      local _ = s.heroes[3].recent << 7 << 8
      mm.close(s)
      s = nil
      local p = path("root.mm3")
      local r = assert(mm.create(p, "ring<u64, 3>"))
      for i = 1, 5 do r:push(-i) end
      mm.close(r)
      local out = fresh([[
        local mm = require "memmap3"
        local s = assert(mm.open(arg[1]))
        local r = assert(mm.open(arg[2]))
        local function list(v) return table.concat(mm.totable(v), ",") end
        io.write(list(s.recent), "|", list(s.heroes[3].recent),
          "|", #s.heroes[1].recent, "|", table.concat(mm.totable(r), ","), "|", r:latest())
        r:push(100)
      ]], path(), p)
      assert.equal("3,4,5,6|7,8|0|-3,-4,-5|-5", out)
      r = assert(mm.open(p))
      assert.same({-4, -5, 100}, mm.totable(r))
      mm.close(r)
    end)

    it("on a read-only file reads work and every write raises and changes nothing", function()
      local _ = s.recent << 1 << 2
      mm.close(s)
      s = assert(mm.open(path(), Save, {readonly = true}))
      local r = s.recent
      assert.equal(2, r:latest())
      raises("read-only", r.push, r, 3)
      raises("read-only", function() return r << 3 end)
      raises("read-only", r.clear, r)
      raises("read-only", function() r[1] = 3 end)
      raises("read-only", function() s.recent = {} end)
      assert.same({1, 2}, mm.totable(r))
    end)

    it("3 processes push into one ring<u64, 64> while a 4th reads it: the ring keeps 64 pushed values, "
      .. "distinct, and each producer's newest", function()
      local N = 20000
      local W = [[
        local path, role, me, N = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
        local mm = require "memmap3"
        local s = assert(mm.open(path))
        s.ready:fetch_add(1)
        local t0 = os.time()
        while s.ready:load() < 4 do
          if os.time() - t0 > 30 then error("barrier timeout") end
        end
        local r = s.ring
        if role == "producer" then
          for i = 1, N do r:push(me << 32 | i) end
          s.finished:fetch_add(1)
          io.write("done")
          return
        end
        -- the reader: every value it sees must be one that was pushed
        local reads, bad = 0, 0
        repeat
          local fin = s.finished:load()
          local n = #r
          if n > 64 then bad = bad + 1 end
          for i = 1, n do
            local x = r[i]
            if x ~= nil then
              reads = reads + 1
              local who, seq = x >> 32, x & 0xffffffff
              if who < 1 or who > 3 or seq < 1 or seq > N then bad = bad + 1 end
            end
          end
        until fin == 3
        io.write("done ", reads, " ", bad)
      ]]
      local Shared = mm.struct("VRingShared", {
        {"ready", "u32", atomic = true}, {"finished", "u32", atomic = true}, {"ring", "ring<u64, 64>"},
      })
      local p = path("ring.mm3")
      local sh = assert(mm.create(p, Shared))
      local outs = run_together(dir, W, {
        {p, "producer", 1, N}, {p, "producer", 2, N}, {p, "reader", 0, N}, {p, "producer", 3, N},
      })
      local reads, bad = outs[3]:match("^done (%d+) (%d+)$")
      assert.is_truthy(reads, outs[3])
      assert.equal("0", bad)
      assert.is_true(tonumber(reads) > 0)
      local r = sh.ring
      assert.equal(64, #r)
      local seen, per = {}, {{}, {}, {}}
      for _, x in ipairs(r) do
        assert.is_nil(seen[x], "value twice in the ring")
        seen[x] = true
        local who, seq = x >> 32, x & 0xffffffff
        assert.is_true(who >= 1 and who <= 3 and seq >= 1 and seq <= N, "not a pushed value: " .. x)
        local list = per[who]
        if #list > 0 then assert.is_true(seq > list[#list], "a producer's values out of order") end
        list[#list + 1] = seq
      end
      -- The ring holds the last 64 pushes: a producer found in it appears with
      -- its own last k pushes, N - k + 1 .. N, none skipped.
      local total = 0
      for who = 1, 3 do
        local list = per[who]
        total = total + #list
        for j, seq in ipairs(list) do assert.equal(N - #list + j, seq) end
      end
      assert.equal(64, total)
      assert.equal(N, r:latest() & 0xffffffff)
      mm.close(sh)
    end)
  end)

  -- -------------------------------------------------------------------------
  describe("string_array<N, LEN>", function()
    it("#sa is N; unset strings read \"\"; count() counts the non-empty ones", function()
      local sa = s.tags
      assert.equal(4, #sa)
      assert.equal(0, sa:count())
      for i = 1, 4 do assert.equal("", sa[i]) end
      assert.is_nil(sa[5])
      assert.is_nil(sa[0])
      sa[2] = "hello"
      sa[4] = "é"
      assert.equal("hello", sa[2])
      assert.equal("é", sa[4])
      assert.equal(2, sa:count())
      assert.equal(4, #sa)
      sa[2] = ""
      assert.equal(1, sa:count())
    end)

    it("ipairs and pairs visit all N strings in order", function()
      local sa = s.tags
      sa[1] = "a"
      sa[3] = "c"
      local seen = {}
      for i, x in ipairs(sa) do seen[i] = x end
      assert.same({"a", "", "c", ""}, seen)
      local n = 0
      for i, x in pairs(sa) do
        n = n + 1
        assert.equal(n, i)
        assert.equal(seen[i], x)
      end
      assert.equal(4, n)
      assert.same({"a", "", "c", ""}, mm.totable(sa))
    end)

    it("strings up to LEN bytes fit; longer, bad UTF-8 or NUL raise naming it and change nothing", function()
      local sa = s.tags
      sa[1] = "sixsix"
      sa[2] = "éé" .. "xy" -- 6 bytes
      assert.equal("sixsix", sa[1])
      assert.equal("ééxy", sa[2])
      raises({"string_array 'tags' element", "longer than its capacity (6 bytes)"},
        function() sa[1] = "sevenee" end)
      raises({"string_array 'tags' element", "UTF-8"}, function() sa[1] = "\xff" end)
      raises({"string_array 'tags' element", "NUL"}, function() sa[1] = "a\0b" end)
      raises({"string_array 'tags' element", "expected a string"}, function() sa[1] = 5 end)
      assert.equal("sixsix", sa[1])
      sa[1] = "ab" -- a shorter string leaves no tail behind
      assert.equal("ab", sa[1])
    end)

    it("writing outside 1..N raises naming it", function()
      local sa = s.tags
      raises({"string_array 'tags'", "index 5 is out of range (1..4)"}, function() sa[5] = "x" end)
      raises({"string_array 'tags'", "out of range"}, function() sa[0] = "x" end)
      raises({"string_array 'tags'", "out of range"}, function() sa.name = "x" end)
      assert.equal(0, sa:count())
    end)

    it("has a fixed length: no push, no <<", function()
      local sa = s.tags
      raises("string_array 'tags' has no method 'push'", function() return sa.push end)
      raises("fixed length", function() return sa << "x" end)
      assert.equal(0, sa:count())
    end)

    it("clear() and mm.clear empty every string", function()
      local sa = s.tags
      for i = 1, 4 do sa[i] = "s" .. i end
      assert.equal(4, sa:count())
      sa:clear()
      assert.equal(0, sa:count())
      assert.same({"", "", "", ""}, mm.totable(sa))
      sa[3] = "x"
      mm.clear(sa)
      assert.equal(0, sa:count())
      assert.equal(4, #sa)
    end)

    it("a table assigned to it sets every string (missing ones: \"\"); a bad one changes nothing", function()
      s.tags = {"a", "b", "c"}
      assert.same({"a", "b", "c", ""}, mm.totable(s.tags))
      s.tags = {"z"}
      assert.same({"z", "", "", ""}, mm.totable(s.tags))
      raises({"field 'tags'", "5 elements do not fit (capacity 4)"},
        function() s.tags = {"1", "2", "3", "4", "5"} end)
      raises("field 'tags'", function() s.tags = {"ok", "far too long"} end)
      raises("field 'tags'", function() s.tags = {"ok", 7} end)
      assert.same({"z", "", "", ""}, mm.totable(s.tags))
    end)

    it("in a struct, in an array of structs, and as a file root: persist into a fresh process", function()
      s.tags[4] = "last"
      s.heroes[2].tags[1] = "tank"
      s.heroes[2].tags[3] = "slow"
      mm.close(s)
      s = nil
      local p = path("root.mm3")
      local sa = assert(mm.create(p, "string_array<3, 4>"))
      sa[2] = "mid"
      raises("string_array 'root' element", function() sa[1] = "12345" end)
      mm.close(sa)
      local out = fresh([[
        local mm = require "memmap3"
        local s = assert(mm.open(arg[1]))
        local r = assert(mm.open(arg[2]))
        io.write(s.tags[4], "|", s.tags:count(), "|", table.concat(mm.totable(s.heroes[2].tags), ","), "|",
          s.heroes[1].tags:count(), "|", #r, "|", r[2], "|", r:count())
        r[3] = "end"
      ]], path(), p)
      assert.equal("last|1|tank,,slow|0|3|mid|1", out)
      sa = assert(mm.open(p))
      assert.same({"", "mid", "end"}, mm.totable(sa))
      mm.close(sa)
    end)

    it("on a read-only file reads work and every write raises and changes nothing", function()
      s.tags[1] = "x"
      mm.close(s)
      s = assert(mm.open(path(), Save, {readonly = true}))
      local sa = s.tags
      assert.equal("x", sa[1])
      assert.equal(1, sa:count())
      raises("read-only", function() sa[1] = "y" end)
      raises("read-only", sa.clear, sa)
      raises("read-only", mm.clear, sa)
      raises("read-only", function() s.tags = {"y"} end)
      assert.equal("x", sa[1])
    end)
  end)

  describe("elements that hold containers", function()
    -- An element is encoded before it is stored; the fixed containers it
    -- names inside are assigned once it is in the file, in the same
    -- transaction: all of it is stored, or nothing.
    local E = mm.struct("VElemC", {{"id", "u32"}, {"tags", "vec<u8, 4>"}, {"seen", "map<u8, u16, 3>"},
      {"last", "ring<u8, 2>"}})
    local Box = mm.struct("VElemBox", {{"v", mm.vec(E, 4)}, {"r", mm.ring(E, 2)}, {"log", mm.segmented(E)}})
    local function e(id, tags, seen, last)
      return {id = id, tags = tags or {}, seen = seen or {}, last = last or {}}
    end

    it("are stored whole by push, <<, insert and v[i] = ..., and reopen in a fresh process", function()
      local b = assert(mm.create(path("ec.mm3"), Box))
      b.v:push({id = 1, tags = {1, 2}, seen = {[7] = 70}})
      local _ = b.v << {id = 2, tags = {3}} << {id = 3, last = {1, 2, 3}}
      b.v:insert(1, {id = 0, tags = {9, 9, 9, 9}, seen = {[1] = 1, [2] = 2, [3] = 3}})
      b.v[4] = {id = 30, tags = {4}}
      local _ = b.log << {id = 5, tags = {5, 5}, seen = {[5] = 50}}
      b.log:push({id = 6})
      b.log[2] = {id = 60, last = {6}}
      mm.close(b)
      local want = {v = {e(0, {9, 9, 9, 9}, {[1] = 1, [2] = 2, [3] = 3}), e(1, {1, 2}, {[7] = 70}), e(2, {3}),
        e(30, {4})}, r = {}, log = {e(5, {5, 5}, {[5] = 50}), e(60, nil, nil, {6})}}
      local out = fresh([[
        local mm = require "memmap3"
        local b = assert(mm.open(arg[1], {readonly = true}))
        local t = mm.totable(b)
        mm.close(b)
        local function dump(x)
          if type(x) ~= "table" then return tostring(x) end
          local keys = {}
          for k in pairs(x) do keys[#keys + 1] = k end
          table.sort(keys, function(p, q) return tostring(p) < tostring(q) end)
          local parts = {}
          for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. dump(x[k]) end
          return "{" .. table.concat(parts, ",") .. "}"
        end
        io.write(dump(t))
      ]], path("ec.mm3"))
      b = assert(mm.open(path("ec.mm3")))
      assert.same(want, mm.totable(b))
      assert.matches("v={1={id=0,last={},seen={1=1,2=2,3=3},tags={1=9,2=9,3=9,4=9}}", out, 1, true)
      mm.close(b)
    end)

    it("a ring keeps the newest, each with what was inside it", function()
      local b = assert(mm.create(path("er.mm3"), Box))
      local _ = b.r << e(1, {1}) << e(2, {2, 2}) << e(3, {3, 3, 3}, {[3] = 3})
      assert.same({e(2, {2, 2}), e(3, {3, 3, 3}, {[3] = 3})}, mm.totable(b.r))
      b.r = {e(4, {4}), e(5, nil, {[5] = 5}), e(6, {6, 6}, nil, {6})}
      assert.same({e(5, nil, {[5] = 5}), e(6, {6, 6}, nil, {6})}, mm.totable(b.r))
      mm.close(b)
    end)

    it("whole-list assignment stores each element with its containers", function()
      local b = assert(mm.create(path("ea.mm3"), Box))
      b.v = {e(1, {1}), e(2, {2, 2}, {[2] = 2})}
      b.log = {e(3, {3, 3, 3}), e(4, nil, nil, {4, 4})}
      assert.same({e(1, {1}), e(2, {2, 2}, {[2] = 2})}, mm.totable(b.v))
      assert.same({e(3, {3, 3, 3}), e(4, nil, nil, {4, 4})}, mm.totable(b.log))
      mm.close(b)
    end)

    it("a view of the element type stores what is inside it too", function()
      local O = mm.struct("VElemO", {{"a", "u32"}, {"inner", E}})
      local B2 = mm.struct("VElemB2", {{"p", E}, {"v", mm.vec(E, 4)}, {"log", mm.segmented(E)}, {"o", O},
        {"ol", mm.segmented(O)}})
      local b = assert(mm.create(path("ev.mm3"), B2))
      b.p = e(7, {1, 2, 3}, {[1] = 10})
      b.v = {b.p}
      b.log = {b.p, b.p}
      b.o = {inner = b.p}
      b.ol:push({a = 1, inner = b.p})
      local _ = b.v << b.p
      b.v[1] = b.p
      local want = e(7, {1, 2, 3}, {[1] = 10})
      assert.same({want, want}, mm.totable(b.v))
      assert.same({want, want}, mm.totable(b.log))
      assert.same({a = 0, inner = want}, mm.totable(b.o))
      assert.same({{a = 1, inner = want}}, mm.totable(b.ol))
      mm.close(b)
    end)

    it("a whole sequence stored at once names the element that failed (scalars, structs, their maps)",
      function()
        local SE = mm.struct("VSeqE", {{"a", "u8"}, {"m", "map<u64,u64,4>"}})
        local S = mm.struct("VSeqS", {{"v", "vec<u8,4>"}, {"l", mm.vec(SE, 4)}, {"g", "segmented<u8>"}})
        local q = assert(mm.create(path("seq.mm3"), S))
        q.l = {{a = 7}}
        local before = mm.totable(q)
        raises("VSeqS field 'v' element 2: 300 is out of range for u8 (0..255)",
          function() q.v = {1, 300} end)
        raises("VSeqS field 'g' element 3: expected an integer, got string", function() q.g = {1, 2, "x"} end)
        raises("VSeqS field 'l' element 2 field 'a': 999 is out of range for u8",
          function() q.l = {{a = 1}, {a = 999}} end)
        raises("VSeqS field 'l' element 2 field 'm' value of key 1: expected an integer, got string",
          function() q.l = {{a = 1}, {m = {[1] = "x"}}} end)
        assert.same(before, mm.totable(q))
        q.l = {{a = 1, m = {[1] = 2}}, {a = 2}}
        assert.equal(2, q.l[1].m[1])
      end)

    it("a container inside that does not fit raises naming it, and nothing is stored", function()
      local b = assert(mm.create(path("ef.mm3"), Box))
      b.v:push(e(1, {1}))
      b.log:push(e(1, {1}))
      local before = mm.totable(b)
      local five = {1, 2, 3, 4, 5}
      raises({"vec 'v' element field 'tags'", "5 elements do not fit (capacity 4)"},
        function() b.v:push(e(2, five)) end)
      raises("5 elements do not fit", function() return b.v << e(2, five) end)
      raises("5 elements do not fit", function() b.v:insert(1, e(2, five)) end)
      raises("5 elements do not fit", function() b.v[1] = e(2, five) end)
      raises("do not fit", function() b.v[1] = e(2, nil, {[1] = 1, [2] = 2, [3] = 3, [4] = 4}) end)
      raises("5 elements do not fit", function() b.log:push(e(2, five)) end)
      raises("5 elements do not fit", function() b.r:push(e(2, five)) end)
      raises("field 'v' element 2 field 'tags': 5 elements do not fit",
        function() b.v = {e(2), e(3, five)} end)
      -- a ring's element that later ones push out is checked all the same
      raises("5 elements do not fit", function() b.r = {e(2, five), e(3), e(4)} end)
      raises("expected a table", function() b.r = {{id = 2, tags = "x"}, e(3), e(4)} end)
      -- the error names the line that stored the element, and the innermost field
      local ok, err = pcall(function() b.v:push(e(2, five)) end)
      assert.is_false(ok)
      assert.matches("vec_spec%.lua:%d+: vec 'v' element field 'tags'", err)
      local Mid = mm.struct("VElemMid", {{"p", "vec<u8, 2>"}, {"q", "vec<u8, 2>"}})
      local Out = mm.struct("VElemOut", {{"a", Mid}, {"t", "vec<u8, 2>"}})
      local nest = assert(mm.create(path("en.mm3"), mm.vec(Out, 2)))
      raises("vec 'root' element field 'a' field 'p': 3 elements do not fit",
        function() nest:push({a = {p = {1, 2, 3}}}) end)
      raises("vec 'root' element field 'a' field 'p': 3 elements do not fit",
        function() nest:push({a = {p = {1, 2, 3}, q = {}}}) end)
      nest:push({})
      raises("vec 'root' element 1 field 'a' field 'q': 3 elements do not fit",
        function() nest[1] = {a = {q = {1, 2, 3}}} end)
      nest:clear()
      -- an error value that is not a string comes back as it was
      local k = setmetatable({}, {__tostring = function() error(42) end})
      ok, err = pcall(function() nest:push({t = {[k] = 1}}) end)
      assert.is_false(ok)
      assert.equal(42, err)
      assert.equal(0, #nest)
      mm.close(nest)
      raises("5 elements do not fit", function() b.log = {e(2), e(3, five)} end)
      raises("expected a table", function() b.v:push({id = 2, tags = 7}) end)
      assert.same(before, mm.totable(b))
      -- and inside a transaction that then fails, neither
      assert.has_error(function()
        mm.transaction(b, function()
          b.v:push(e(9, {9}))
          assert(#b.v == #before.v + 1, "the push inside is seen")
          error("give up")
        end)
      end, "give up")
      assert.same(before, mm.totable(b))
      mm.close(b)
    end)
  end)
end)
