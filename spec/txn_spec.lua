--- mm.transaction and mm.lock through the Lua API (SPEC §5): what a
-- transaction makes visible, what an error inside one undoes, savepoints,
-- results and errors passed through, argument errors, atomic fields, and a
-- writer killed inside a transaction (a real process, SIGKILL).
local mm = require "memmap3"
local h = require "helpers"

local Pos = mm.struct("Pos", { { "x", "f64" }, { "y", "f64" } })
local Save = mm.struct("TxnSave", {
  { "level", "i64" },
  { "gold", "u32" },
  { "name", "string<24>" },
  { "pos", Pos },
  { "slots", "i16[4]" },
  { "hits", "u64", atomic = true },
  { "inv", mm.vec("u32", 8) },
  { "log", mm.segmented("i64") },
  { "scores", mm.map("string<8>", "i32") },
  { "note", "value" },
})

-- The state every test starts from, as mm.totable sees it (atomic aside).
local function fill(s)
  s.level, s.gold, s.name = 1, 10, "ana"
  s.pos = { x = 1.5, y = -2 }
  s.slots = { 1, 2, 3, 4 }
  local _ = s.inv << 7 << 8
  _ = s.log << 100
  s.scores["bo"] = 5
  s.note = { "a", b = true }
end

local function snapshot(s)
  local t = mm.totable(s)
  t.hits = nil
  return t
end

-- Changes every kind of thing the struct holds.
local function change_all(s)
  s.level = 2
  s.gold = 20
  s.name = "carla"
  s.pos.x = 9.25
  s.slots[3] = -3
  s.inv:push(9)
  s.inv[1] = 70
  s.log:push(200)
  s.log[1] = 101
  s.scores["cy"] = 6
  s.scores["bo"] = nil
  s.note = { 1, 2, 3 }
end

-- In a fresh process: open the file at p, run body (Lua statements on v,
-- the root) inside mm.transaction (or mm[scope]: "lock"), then kill -9
-- itself before it ends.
local function killed_in_transaction(p, body, scope)
  local out, status = h.run_lua([[
    local mm = require "memmap3"
    local s = assert(mm.open(...))
    local pid = assert(io.open("/proc/self/stat")):read("n")
    mm.]] .. (scope or "transaction") .. [[(s, function(v)
  ]] .. body .. [[
      io.stdout:write("inside\n")
      io.stdout:flush()
      os.execute("kill -9 " .. pid)
      error("alive after kill -9")
    end)
  ]], { args = { p } })
  assert.equal("inside\n", out)
  assert.equal(128 + 9, status)
end

-- The file at p (open as s) gets a writer killed inside mm.transaction (or
-- mm[scope]) after changing fields, a list, a map and a long string: the
-- next open finds the file as it was, sound. Closes s, leaves it reopened.
local function killed_changes_nothing(s, p, scope)
  local before = snapshot(s)
  mm.close(s)
  killed_in_transaction(p, [[
    v.level = 1000
    v.inv:push(1)
    v.scores["zz"] = 9
    v.note = string.rep("x", 5000)
  ]], scope)
  s = assert(mm.open(p, Save))
  assert.same(before, snapshot(s))
  assert.is_true(mm.check(s))
  mm.close(s)
end

describe("mm.transaction", function()
  after_each(h.cleanup)

  local function new_save()
    local p = h.missing_path()
    local s = assert(mm.create(p, Save))
    fill(s)
    return s, p
  end

  it("makes every write fn makes visible, and returns what fn returns", function()
    local s, p = new_save()
    local a, b, c, n = mm.transaction(s, function(v)
      assert.equal(s, v)
      change_all(v)
      return "done", nil, 3
    end)
    assert.same({ "done", nil, 3 }, { a, b, c })
    assert.is_nil(n)
    local expect = snapshot(s)
    assert.equal(2, expect.level)
    assert.same({ 70, 8, 9 }, expect.inv)
    assert.same({ 101, 200 }, expect.log)
    assert.same({ cy = 6 }, expect.scores)
    mm.close(s)
    -- the same in a fresh process
    local out, status, err = h.run_lua([[
      local mm = require "memmap3"
      local s = assert(mm.open(...))
      print(s.level, s.gold, s.name, s.pos.x, s.slots[3], #s.inv, s.inv[1], #s.log, s.scores["cy"],
        s.scores["bo"], #s.note)
    ]], { args = { p } })
    assert.equal(0, status, err)
    assert.equal("2\t20\tcarla\t9.25\t-3\t3\t70\t2\t6\tnil\t3\n", out)
  end)

  it("an error inside fn undoes every write (fields, nested, arrays, containers, values) and is raised again",
    function()
      local s = new_save()
      local before = snapshot(s)
      local ok, err = pcall(mm.transaction, s, function(v)
        change_all(v)
        error("stop here")
      end)
      assert.is_false(ok)
      assert.matches("stop here", err)
      assert.same(before, snapshot(s))
      assert.is_true(mm.check(s))
      -- and the file works normally afterwards
      s.level = 5
      s.inv:push(1)
      assert.equal(5, s.level)
      assert.equal(3, #s.inv)
      mm.close(s)
    end)

  it("raises the very error object fn raised (tables too), undoing its writes", function()
    local s = new_save()
    local obj = { code = 42 }
    local ok, err = pcall(mm.transaction, s, function(v)
      v.level = 99
      error(obj)
    end)
    assert.is_false(ok)
    assert.equal(obj, err)
    assert.equal(1, s.level)
    mm.close(s)
  end)

  it("a failed write inside fn (out of range) rolls back the writes before it", function()
    local s = new_save()
    local ok, err = pcall(mm.transaction, s, function(v)
      v.level = 3
      v.inv:push(1)
      v.gold = -1 -- u32: raises
    end)
    assert.is_false(ok)
    assert.matches("gold", err)
    assert.equal(1, s.level)
    assert.equal(2, #s.inv)
    assert.equal(10, s.gold)
    mm.close(s)
  end)

  -- Writes that missed the fast lookups (field names longer than Lua's
  -- short strings, float indexes) were stored without the undo log: the
  -- string field and the two elements here. (A long-named i64 takes the
  -- inline integer store, which always logged: it is here as its neighbour.)
  it("undoes writes to fields with long names and to elements at float indexes", function()
    local long = ("n"):rep(50)
    local T = mm.struct("TxnLong", { { long, "i64" }, { long .. "s", "string<32>" }, { "a", "i32[4]" },
      { "n", "string<16>[2]" } })
    local s = assert(mm.create(h.missing_path(), T))
    s[long], s[long .. "s"], s.a[1], s.n[1] = 1, "old", 1, "old"
    local ok, err = pcall(mm.transaction, s, function(v)
      v[long], v[long .. "s"] = 2, "new"
      v.a[1.0], v.n[1.0] = 2, "new"
      error("abort")
    end)
    assert.is_false(ok)
    assert.matches("abort", err)
    assert.same({ 1, "old", 1, "old" }, { s[long], s[long .. "s"], s.a[1], s.n[1] })
    mm.close(s)
  end)

  it("nested transactions are savepoints: a caught inner error undoes only the inner writes", function()
    local s = new_save()
    mm.transaction(s, function(v)
      v.level = 2
      local ok = pcall(mm.transaction, v, function(w)
        w.gold = 30
        w.inv:push(5)
        error("inner")
      end)
      assert.is_false(ok)
      assert.equal(10, v.gold) -- inner undone at once
      assert.equal(2, #v.inv)
      mm.transaction(v, function(w) w.name = "inner ok" end)
    end)
    assert.equal(2, s.level)
    assert.equal(10, s.gold)
    assert.equal("inner ok", s.name)
    assert.equal(2, #s.inv)
    mm.close(s)
  end)

  it("nesting is flattened: an outer error undoes a committed inner transaction too", function()
    local s = new_save()
    pcall(mm.transaction, s, function(v)
      mm.transaction(v, function(w) w.level = 7; w.log:push(1) end)
      assert.equal(7, v.level)
      error("outer")
    end)
    assert.equal(1, s.level)
    assert.equal(1, #s.log)
    mm.close(s)
  end)

  it("atomic fields are not rolled back (they are shared live)", function()
    local s = new_save()
    s.hits:store(1)
    pcall(mm.transaction, s, function(v)
      v.hits:fetch_add(5)
      v.level = 50
      error("x")
    end)
    assert.equal(6, s.hits:load())
    assert.equal(1, s.level)
    mm.close(s)
  end)

  it("takes any view of the file: a nested struct or a container", function()
    local s = new_save()
    mm.transaction(s.pos, function(p) p.y = 4 end)
    pcall(mm.transaction, s.inv, function(inv) inv:push(1); s.level = 8; error("x") end)
    assert.equal(4, s.pos.y)
    assert.equal(2, #s.inv)
    assert.equal(1, s.level)
    mm.close(s)
  end)

  it("refuses what is not a view or not a function, a read-only file and a closed one, naming the problem",
    function()
      local s, p = new_save()
      h.raises("mm.transaction: expected a memmap3 view, got number", mm.transaction, 5, function() end)
      h.raises("mm.transaction: expected a memmap3 view, got table", mm.transaction, {}, function() end)
      h.raises("mm.transaction: expected a function", mm.transaction, s, "fn")
      mm.close(s)
      h.raises("closed", mm.transaction, s, function() end)
      local r = assert(mm.open(p, { readonly = true }))
      h.raises("read-only", mm.transaction, r, function() end)
      mm.close(r)
    end)

  it("with {durable = true} commits the same way (msync and fdatasync before returning)", function()
    local _, p = new_save()
    local s = assert(mm.open(p, Save, { durable = true }))
    mm.transaction(s, function(v) v.level = 77; v.scores["dd"] = 1 end)
    pcall(mm.transaction, s, function(v) v.level = 78; error("x") end)
    assert.equal(77, s.level)
    mm.close(s)
    s = assert(mm.open(p, Save))
    assert.equal(77, s.level)
    assert.equal(1, s.scores["dd"])
    mm.close(s)
  end)

  it("a writer killed (SIGKILL) inside a transaction leaves none of it: the next open rolls it back",
    function()
      local s, p = new_save()
      killed_changes_nothing(s, p)
    end)

  it("a million map inserts and field writes fit in one transaction (the undo log keeps only the first "
    .. "change of what existed before it)", function()
    -- the log held about 270 bytes per insert: this failed after some 950,000
    local T = mm.struct("BigTxn", { { "n", "u64" }, { "m", mm.map("string<12>", "u64") } })
    local s = assert(mm.create(h.missing_path(), T))
    s.m["old"] = 7
    mm.transaction(s, function(v)
      local m = v.m
      for i = 1, 1000000 do
        m["k" .. i] = i
        v.n = i
      end
    end)
    assert.equal(1000001, #s.m)
    assert.equal(1000000, s.m["k1000000"])
    assert.equal(7, s.m["old"])
    assert.equal(1000000, s.n)
    assert.is_true(mm.check(s))
  end)

  it("an error at the end of a big transaction undoes all of it: old entries changed, new ones, deletes",
    function()
      local T = mm.struct("BigUndo",
        { { "n", "u64" }, { "m", mm.map("u64", "u64") }, { "l", mm.segmented("u32") } })
      local s = assert(mm.create(h.missing_path(), T))
      for i = 1, 5000 do
        s.m[i] = i
        local _ = s.l << i
      end
      s.n = 5
      local before, heap = mm.totable(s), mm.info(s)
      local ok, err = pcall(mm.transaction, s, function(v)
        local m, l = v.m, v.l
        for i = 1, 5000 do m[i] = i + 1000000 end
        for i = 5001, 200000 do
          m[i] = i
          local _ = l << i
        end
        for i = 1, 2500 do m[i] = nil end
        for i = 1, 5000 do l[i] = 0 end
        v.n = 99
        error("undo it")
      end)
      assert.is_false(ok)
      assert.matches("undo it", err)
      assert.same(before, mm.totable(s))
      assert.is_true(mm.check(s))
      -- every block it allocated is free for reuse, those below the undo
      -- log's grown block too: nothing leaked
      local after = mm.info(s)
      assert.equal(heap.heap_used, after.heap_used)
      assert.equal(0, after.heap_leaked)
      -- (the list's segments and the map's arenas below the log)
      assert.is_true(after.heap_free > 1024 * 1024)
      assert.is_true(after.log > heap.log) -- (it grew)
      for i = 5001, 100000 do s.m[i] = i end -- and reused: the file needs no more room
      assert.equal(after.size, mm.info(s).size)
    end)

  it("a writer killed in a transaction while another process has the file open: that process's first "
    .. "check or totable rolls it back and sees the data as it was, never damage", function()
    for _, first in ipairs{"totable", "check"} do
      local T = mm.struct("KilledWhileOpen" .. first, { { "n", "u64" }, { "m", mm.map("u64", "u64") } })
      local p = h.missing_path()
      local s = assert(mm.create(p, T))
      for i = 1, 1000 do s.m[i] = i end
      s.n = 5
      local before = mm.totable(s.m)
      killed_in_transaction(p, [[
        mm.clear(v.m)
        for i = 1, 10 do v.m[i] = -i end
        v.n = 1000
      ]])
      -- s stays open throughout: nobody opened the file alone, so nothing
      -- rolled the dead writer's work back yet; the first lock does
      if first == "check" then assert.is_true(mm.check(s)) end
      assert.same(before, mm.totable(s.m))
      assert.is_true(mm.check(s))
      assert.equal(5, s.n)
      assert.equal(1000, #s.m)
      mm.close(s)
    end
  end)

  it("pairs inside a transaction walks a map in mid-resize whole, without logging the resize", function()
    local T = mm.struct("PairsResize", { { "m", mm.map("u64", "u64") } })
    local s = assert(mm.create(h.missing_path(), T))
    local N = 32769 -- the insert that found 32768 entries in 65536 buckets began doubling them
    for i = 1, N do s.m[i] = i * 2 end
    local before = mm.info(s)
    local seen, n, bad = {}, 0, 0
    mm.transaction(s, function(v)
      for k, x in pairs(v.m) do
        n = n + 1
        if seen[k] or x ~= k * 2 then bad = bad + 1 end
        seen[k] = true
      end
    end)
    assert.equal(N, n)
    assert.equal(0, bad)
    -- finishing that resize inside the transaction would have logged every
    -- chain it moved (about 2 MB): the undo log did not grow
    assert.equal(before.log, mm.info(s).log)
    assert.is_true(mm.check(s))
  end)

  it("mm.totable inside a transaction copies a map in mid-resize whole, without logging the resize",
    function()
    local T = mm.struct("TotableResize", { { "m", mm.map("u64", "u64") } })
    local s = assert(mm.create(h.missing_path(), T))
    local N = 32769 -- the insert that found 32768 entries in 65536 buckets began doubling them
    for i = 1, N do s.m[i] = i * 2 end
    local before = mm.info(s)
    local copy = mm.transaction(s, function(v) return mm.totable(v.m) end)
    local n, bad = 0, 0
    for k, x in pairs(copy) do
      n = n + 1
      if x ~= k * 2 then bad = bad + 1 end
    end
    assert.equal(N, n)
    assert.equal(0, bad)
    assert.equal(before.log, mm.info(s).log) -- (finishing the resize would have logged about 2 MB)
    assert.is_true(mm.check(s))
    -- outside a transaction, the same copy still finishes the resize as it walks
    assert.equal(N, #s.m)
  end)

  it("a writer killed (SIGKILL) deep in a big transaction leaves none of it", function()
    local T = mm.struct("BigKill", { { "n", "u64" }, { "m", mm.map("u64", "u64") } })
    local p = h.missing_path()
    local s = assert(mm.create(p, T))
    for i = 1, 1000 do s.m[i] = i end
    s.n = 5
    local before, heap = mm.totable(s), mm.info(s)
    mm.close(s)
    killed_in_transaction(p, [[
      local m = v.m
      for i = 1, 1000 do m[i] = i + 1000000 end
      for i = 1001, 300000 do m[i] = i end
      for i = 1, 500 do m[i] = nil end
      v.n = 1000
    ]])
    s = assert(mm.open(p, T))
    assert.same(before, mm.totable(s))
    assert.is_true(mm.check(s))
    -- what the dead writer allocated, and the log blocks it replaced, are
    -- free for reuse (or past the heap's top): nothing leaked
    local after = mm.info(s)
    assert.equal(heap.heap_used, after.heap_used)
    assert.equal(0, after.heap_leaked)
    mm.close(s)
  end)

  it("a second open of the file in the same thread cannot write through its own handle during a transaction "
    .. "(it would commit the log): it raises, and the rollback stays whole", function()
      local s, p = new_save()
      local other = assert(mm.open(p, Save))
      local before = snapshot(s)
      local ok, err = pcall(mm.transaction, s, function(v)
        v.level = 2
        v.scores["a1"] = 1
        other.scores["b1"] = 2 -- raises
      end)
      assert.is_false(ok)
      assert.matches("map 'scores'.*transaction open through another open", err)
      h.raises("transaction open through another open", function()
        mm.transaction(s, function() mm.transaction(other, function() end) end)
      end)
      h.raises("transaction open through another open", function()
        mm.transaction(s, function() other.inv:push(1) end)
      end)
      assert.same(before, snapshot(s))
      -- outside the transaction both handles write as usual, and see each other
      other.scores["b2"] = 3
      mm.transaction(other, function(o) o.level = 9 end)
      assert.equal(3, s.scores["b2"])
      assert.equal(9, s.level)
      assert.is_true(mm.check(s))
      mm.close(other)
      mm.close(s)
    end)

  it("with 300 other files open the second open of a file is still refused during a transaction", function()
    local others = {} -- small reservations: 300 x 64 GiB of address space is more than valgrind allows
    finally(function() for _, o in ipairs(others) do mm.close(o) end end)
    for i = 1, 300 do others[i] = assert(mm.create(h.missing_path(), "u8", { reserve = 1 << 20 })) end
    local s, p = new_save()
    local other = assert(mm.open(p, Save))
    pcall(mm.transaction, s, function(v)
      local _ = v.inv << 1 << 2
      h.raises("transaction open through another open", function() local _ = other.inv << 3 end)
      assert.equal(4, #v.inv) -- the transaction's own pushes are not rolled back by the other handle
      error("undo")
    end)
    assert.same({ 7, 8 }, mm.totable(s.inv))
    -- reading through the other handle during a transaction works (a resize under way included)
    for k = 1, 130 do s.scores["k" .. k] = k end -- the 129th started doubling 256 buckets: still moving
    mm.transaction(s, function(v)
      v.scores["new"] = 1
      local n = 0
      for _ in pairs(other.scores) do n = n + 1 end
      assert.equal(132, n) -- bo, k1..k130, new
    end)
    mm.close(other)
    mm.close(s)
  end)

  it("after an error inside fn the lock is free: another process writes at once", function()
    local s, p = new_save()
    pcall(mm.transaction, s, function(v) v.inv:push(3); error("x") end)
    local _, status, err = h.run_lua([[
      local mm = require "memmap3"
      local s = assert(mm.open(...))
      s.scores["other"] = 1
      s.log:push(5)
    ]], { args = { p } })
    assert.equal(0, status, err)
    assert.equal(1, s.scores["other"])
    assert.equal(2, #s.log)
    mm.close(s)
  end)
end)

describe("mm.lock", function()
  after_each(h.cleanup)

  it("runs fn(v) holding the lock, returns its results; an error keeps what fn wrote and is raised again",
    function()
      local p = h.missing_path()
      local s = assert(mm.create(p, Save))
      fill(s)
      local a, b = mm.lock(s, function(v) v.level = 4; return "r1", "r2" end)
      assert.same({ "r1", "r2" }, { a, b })
      local ok, err = pcall(mm.lock, s, function(v)
        v.gold = 44
        v.inv:push(3)
        error("kept")
      end)
      assert.is_false(ok)
      assert.matches("kept", err)
      assert.equal(4, s.level)
      assert.equal(44, s.gold)
      assert.equal(3, #s.inv)
      h.raises("mm.lock: expected a function", mm.lock, s, nil)
      mm.close(s)
    end)

  it("a writer killed (SIGKILL) inside mm.lock leaves none of what fn wrote: the next open rolls it back",
    function()
      local p = h.missing_path()
      local s = assert(mm.create(p, Save))
      fill(s)
      killed_changes_nothing(s, p, "lock")
    end)
end)
