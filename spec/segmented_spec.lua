-- Segmented lists (SPEC §2, §4, §5): segmented<T> grows without limit and
-- never moves an element: push, pop, index get/set, #, ipairs, truncate,
-- clear, <<, mm.totable, assignment from a table. Errors name the list and
-- change nothing; lists in structs, in arrays of structs and as file roots
-- persist into a fresh lua5.4 process; freed space is reused; growth made by
-- one process is seen by another that opened the file earlier. (Four
-- processes appending at once are in hashmap_spec.lua, "across processes".)
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

-- The address a view shows (its tostring ends with it).
local function address(v) return tostring(v):match("(0x%x+)$") end

local Entry = mm.struct("SEntry", {{"id", "u64"}, {"name", "string<12>"}, {"score", "f32"}})
local Team = mm.struct("STeam", {{"id", "u8"}, {"log", mm.segmented(Entry)}, {"ids", "segmented<i32>"}})
local Save = mm.struct("SSave", {
  {"version", "u32"},
  {"nums", "segmented<u64>"},
  {"log", mm.segmented(Entry)},
  {"teams", mm.array(Team, 3)},
  {"wide", "segmented<u128>"},
})

describe("segmented<T>", function()
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

  it("push appends, # counts, l[i] reads; past the end (and 0) reads nil", function()
    local l = s.nums
    assert.equal(0, #l)
    assert.is_nil(l[1])
    l:push(5)
    l:push(-1)
    assert.equal(2, #l)
    assert.equal(5, l[1])
    assert.equal(-1, l[2])
    assert.is_nil(l[3])
    assert.is_nil(l[0])
    assert.is_nil(l[-1])
  end)

  it("an element another open grew the file to, past this open's reserve, raises; it never reads as nil",
    function()
      local S = mm.struct("SRes", { { "g", "segmented<u64>" } })
      local big = assert(mm.create(path("res.mm3"), S))
      local small = assert(mm.open(path("res.mm3"), S, { reserve = 1 << 20 }))
      for i = 1, 200000 do local _ = big.g << i end -- the file grows to about 4 MiB
      assert.equal(200000, #small.g)
      raises("segmented 'g': file outgrew its reserved address range", function() return small.g[199999] end)
      raises("file outgrew its reserved address range", function() for _ in ipairs(small.g) do end end)
      assert.equal(199999, big.g[199999])
      assert.is_nil(small.g[200001]) -- past the end: nil, as a table
      -- mm.check through the small open says why it cannot check, and calls
      -- nothing damaged; through the big one the file checks clean
      local ok, why = mm.check(small)
      assert.is_nil(ok)
      assert.matches("^the file %(%d+ bytes%) is bigger than this open's reserved address range "
        .. "%(1048576 bytes%): open it with a bigger reserve to check it$", why)
      assert.is_true(mm.check(big))
      mm.close(small)
      mm.close(big)
      assert.is_true(mm.check(path("res.mm3")))
    end)

  it("<< appends and returns the list, so it chains", function()
    local l = s.nums
    local r = l << 1 << 2 << 3
    assert.is_true(rawequal(l, r))
    assert.same({1, 2, 3}, mm.totable(l))
  end)

  it("l[i] = x overwrites 1..#l; writing past the end raises naming the list and appends nothing", function()
    local l = s.nums
    local _ = l << 1 << 2
    l[2] = 20
    assert.same({1, 20}, mm.totable(l))
    raises({"segmented 'nums'", "index 3 is out of range (1..2)"}, function() l[3] = 3 end)
    raises({"segmented 'nums'", "out of range"}, function() l[0] = 3 end)
    raises({"segmented 'nums'", "out of range"}, function() l.x = 3 end)
    assert.same({1, 20}, mm.totable(l))
  end)

  it("pop removes and returns the last element; an empty list pops nil", function()
    local l = s.nums
    local _ = l << 1 << 2
    assert.equal(2, l:pop())
    assert.equal(1, #l)
    assert.is_nil(l[2])
    assert.equal(1, l:pop())
    assert.is_nil(l:pop())
    assert.equal(0, #l)
    l:push(3)
    assert.same({3}, mm.totable(l))
  end)

  it("truncate(n) keeps the first n; n outside 0..#l raises and changes nothing", function()
    local l = s.nums
    for i = 1, 10 do l:push(i) end
    l:truncate(10)
    assert.equal(10, #l)
    l:truncate(4)
    assert.same({1, 2, 3, 4}, mm.totable(l))
    assert.is_nil(l[5])
    raises({"segmented 'nums'", "truncate to 5 is out of range (0..4)"}, l.truncate, l, 5)
    raises({"segmented 'nums'", "out of range"}, l.truncate, l, -1)
    assert.same({1, 2, 3, 4}, mm.totable(l))
    l:push(50) -- the slot after the cut holds the new element, not the old 5
    assert.same({1, 2, 3, 4, 50}, mm.totable(l))
    l:truncate(0)
    assert.equal(0, #l)
  end)

  it("clear() and mm.clear empty it", function()
    local l = s.nums
    for i = 1, 1000 do l:push(i) end
    l:clear()
    assert.equal(0, #l)
    assert.is_nil(l[1])
    local _ = l << 7
    assert.same({7}, mm.totable(l))
    mm.clear(l)
    assert.equal(0, #l)
  end)

  it("has push, pop, truncate and clear; no insert or remove", function()
    local l = s.nums
    for _, m in ipairs{"push", "pop", "truncate", "clear"} do assert.equal("function", type(l[m])) end
    raises("segmented 'nums' has no method 'insert'", function() return l.insert end)
    raises("segmented 'nums' has no method 'remove'", function() return l.remove end)
  end)

  it("ipairs and pairs visit 1..#l in order; mm.totable is a plain copy", function()
    local l = s.nums
    for i = 1, 3000 do l:push(i * 2) end -- several segments
    local n = 0
    for i, x in ipairs(l) do
      n = n + 1
      if i ~= n or x ~= i * 2 then error(("element %d is %s"):format(i, tostring(x))) end
    end
    assert.equal(3000, n)
    n = 0
    for i, x in pairs(l) do
      n = n + 1
      if i ~= n or x ~= i * 2 then error(("pairs: element %d is %s"):format(i, tostring(x))) end
    end
    assert.equal(3000, n)
    local t = mm.totable(l)
    assert.equal(3000, #t)
    assert.equal(6000, t[3000])
    assert.is_nil(getmetatable(t))
    t[1] = 0
    assert.equal(2, l[1])
  end)

  it("an element of the wrong type raises naming the list and changes nothing", function()
    local l = s.nums
    l:push(1)
    for _, bad in ipairs{1.5, "1", true, {}} do
      raises("segmented 'nums' element", l.push, l, bad)
      raises("segmented 'nums' element", function() return l << bad end)
      raises("segmented 'nums' element", function() l[1] = bad end)
    end
    raises("value expected", l.push, l)
    assert.same({1}, mm.totable(l))
    local w = s.wide
    w:push("340282366920938463463374607431768211455")
    raises("segmented 'wide' element", w.push, w, "340282366920938463463374607431768211456")
    assert.same({"340282366920938463463374607431768211455"}, mm.totable(w))
  end)

  it("of structs: push tables; elements are views that write through; pop returns a plain table", function()
    local l = s.log
    l:push({id = 1, name = "one", score = 0.5})
    local _ = l << {id = 2, name = "two"}
    local e = l[1]
    e.score = 1.5
    e.name = "uno"
    assert.same({id = 1, name = "uno", score = 1.5}, mm.totable(l[1]))
    l[2] = {id = 22}
    assert.same({id = 22, name = "", score = 0}, mm.totable(l[2]))
    raises({"segmented 'log' element", "no field 'nope'"}, l.push, l, {nope = 1})
    raises("segmented 'log' element", function() l[1] = {name = "thirteen char"} end)
    assert.equal(2, #l)
    assert.equal("uno", l[1].name)
    local popped = l:pop()
    assert.same({id = 22, name = "", score = 0}, popped)
    assert.is_nil(getmetatable(popped))
  end)

  it("grows without limit: 300000 elements over many segments, all in place", function()
    local l = s.nums
    local before = h.file_size(path())
    for i = 1, 300000 do l:push(i * 3) end
    assert.equal(300000, #l)
    for i = 1, 300000 do
      if l[i] ~= i * 3 then error(("element %d is %s"):format(i, tostring(l[i]))) end
    end
    assert.is_true(h.file_size(path()) >= before + 300000 * 8)
    assert.is_nil(l[300001])
  end)

  it("existing elements never move: a view taken early still writes its element after much growth", function()
    local l = s.log
    l:push({id = 1, name = "first"})
    local where
    do
      where = address(l[1])
      assert.is_truthy(where)
    end
    collectgarbage() -- the view goes, so that the next l[1] is a new one
    collectgarbage()
    do
      local held = l[1]
      for i = 2, 100000 do l:push({id = i}) end
      held.name = "still here"
      assert.equal("still here", l[1].name)
      assert.equal(100000, #l)
    end
    collectgarbage()
    collectgarbage()
    assert.equal(where, address(l[1]))
    assert.equal("still here", l[1].name)
  end)

  it("popping, truncating or clearing and pushing as many again does not grow the file", function()
    local l = s.log
    for i = 1, 50000 do l:push({id = i}) end
    local full = h.file_size(path())
    for round = 1, 3 do
      for _ = 1, 10000 do l:pop() end
      l:truncate(20000)
      for i = 20001, 50000 do l:push({id = i * round}) end
      assert.equal(50000, #l)
      assert.equal(50000 * round, l[50000].id)
      assert.equal(full, h.file_size(path()), "round " .. round)
    end
    l:clear()
    for i = 1, 50000 do l:push({id = i}) end
    assert.equal(full, h.file_size(path()))
    s.log = {}
    for i = 1, 50000 do l:push({id = i}) end
    assert.equal(full, h.file_size(path()))
  end)

  it("a table assigned to it replaces its elements; a bad element or a non-table changes nothing", function()
    s.nums = {1, 2, 3}
    assert.same({1, 2, 3}, mm.totable(s.nums))
    s.nums = {4}
    assert.same({4}, mm.totable(s.nums))
    raises("field 'nums'", function() s.nums = {5, 6, "x"} end)
    raises({"field 'nums'", "expected a table"}, function() s.nums = 5 end)
    assert.same({4}, mm.totable(s.nums))
    s.log = {{id = 1, name = "a"}, {id = 2}}
    assert.equal("a", s.log[1].name)
    raises("field 'log'", function() s.log = {{id = 3}, {bad = 1}} end)
    assert.same({{id = 1, name = "a", score = 0}, {id = 2, name = "", score = 0}}, mm.totable(s.log))
    local big = {}
    for i = 1, 5000 do big[i] = i end
    s.nums = big
    assert.equal(5000, #s.nums)
    assert.equal(5000, s.nums[5000])
    s.nums = {}
    assert.equal(0, #s.nums)
  end)

  it("in a struct, in an array of structs, and as a file root: persist into a fresh process", function()
    for i = 1, 2000 do s.nums:push(i) end
    s.log:push({id = 9, name = "nine"})
    for t = 1, 3 do
      s.teams[t].id = t
      for i = 1, 700 * t do s.teams[t].ids:push(-i * t) end
      s.teams[t].log:push({id = t})
    end
    mm.close(s)
    s = nil
    local root = path("root.mm3")
    local r = assert(mm.create(root, "segmented<f64>"))
    for i = 1, 5000 do r:push(i / 2) end
    raises("segmented 'root' element", r.push, r, "x")
    mm.close(r)
    local out = fresh([[
      local mm = require "memmap3"
      local s = assert(mm.open(arg[1]))
      local r = assert(mm.open(arg[2]))
      local parts = {#s.nums, s.nums[2000], s.log[1].name}
      for t = 1, 3 do
        local team = s.teams[t]
        parts[#parts + 1] = ("%d:%d:%d:%d"):format(team.id, #team.ids, team.ids[#team.ids], team.log[1].id)
      end
      parts[#parts + 1] = #r
      parts[#parts + 1] = r[5000]
      io.write(table.concat(parts, " "))
      r:push(-1)
      s.teams[2].ids:truncate(1)
    ]], path(), root)
    assert.equal("2000 2000 nine 1:700:-700:1 2:1400:-2800:2 3:2100:-6300:3 5000 2500.0", out)
    s = assert(mm.open(path(), Save))
    assert.same({-2}, mm.totable(s.teams[2].ids))
    assert.equal(2100, #s.teams[3].ids)
    r = assert(mm.open(root))
    assert.equal(5001, #r)
    assert.equal(-1, r[5001])
    mm.close(r)
  end)

  it("a table assigned to a struct sets its segmented fields from the table too", function()
    s.teams[1] = {id = 7, ids = {1, 2}}
    assert.equal(7, s.teams[1].id)
    assert.same({1, 2}, mm.totable(s.teams[1].ids))
  end)

  it("on a read-only file reads work and every write raises and changes nothing", function()
    local _ = s.nums << 1 << 2
    s.log:push({id = 1})
    mm.close(s)
    s = assert(mm.open(path(), Save, {readonly = true}))
    local l = s.nums
    assert.same({1, 2}, mm.totable(l))
    raises("read-only", l.push, l, 3)
    raises("read-only", function() return l << 3 end)
    raises("read-only", l.pop, l)
    raises("read-only", l.truncate, l, 0)
    raises("read-only", l.clear, l)
    raises("read-only", mm.clear, l)
    raises("read-only", function() l[1] = 5 end)
    raises("read-only", function() s.nums = {} end)
    raises("read-only", function() s.log[1].id = 5 end)
    assert.same({1, 2}, mm.totable(l))
    assert.equal(1, s.log[1].id)
  end)

  it("growth made by another process is seen here at the next access; earlier views still work", function()
    local l = s.log
    l:push({id = 1, name = "mine"})
    local mine = l[1]
    local size0 = h.file_size(path())
    local out = fresh([[
      local mm = require "memmap3"
      local s = assert(mm.open(...))
      for i = 2, 400000 do s.log:push({id = i, score = i / 4}) end
      io.write(#s.log)
    ]], path())
    assert.equal("400000", out)
    assert.is_true(h.file_size(path()) >= size0 + 8 * 1024 * 1024, "the file grew by many MiB")
    -- before any access here: mm.info says the size the file has now (it said
    -- the size this process had last seen)
    assert.equal(h.file_size(path()), mm.info(s).size)
    assert.equal(400000, #l)
    assert.equal(400000, l[400000].id)
    assert.equal(100000.0, l[400000].score)
    assert.equal(200000, l[200000].id)
    assert.equal(h.file_size(path()), mm.info(s).size)
    mine.name = "after" -- the view taken before the growth
    l:push({id = 400001})
    local out2 = fresh([[
      local mm = require "memmap3"
      local s = assert(mm.open(...))
      io.write(s.log[1].name, " ", #s.log, " ", s.log[400001].id)
    ]], path())
    assert.equal("after 400001 400001", out2)
  end)
end)
