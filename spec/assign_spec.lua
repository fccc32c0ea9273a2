-- Assigning a table to a container replaces its contents as one transaction:
-- when the file cannot grow part way (here: its reserved range is used up),
-- the old contents stay, whole.
local mm = require "memmap3"
local h = require "helpers"

describe("assigning a table to a container that cannot be stored whole", function()
  after_each(h.cleanup)

  local function small_file(T)
    local p = h.missing_path()
    return assert(mm.create(p, T, {reserve = 4 << 20})), p
  end

  it("a segmented list keeps its old elements", function()
    local s = small_file(mm.struct("AS", {{"l", "segmented<u64>"}}))
    s.l = {1, 2, 3}
    local big = {}
    for i = 1, 1000000 do big[i] = i end -- 8 MB: past the 4 MiB reserve
    local ok, err = pcall(function() s.l = big end)
    assert.is_false(ok)
    assert.matches("reserved address range", err)
    assert.same({1, 2, 3}, mm.totable(s.l))
    assert.is_true(mm.check(s))
  end)

  it("a growable map keeps its old entries", function()
    local s = small_file(mm.struct("AM", {{"m", "map<u64, u64>"}}))
    s.m = {[1] = 10, [2] = 20}
    local big = {}
    for i = 1, 200000 do big[i] = i end -- about 13 MB of nodes and tables
    local ok = pcall(function() s.m = big end)
    assert.is_false(ok)
    assert.same({[1] = 10, [2] = 20}, mm.totable(s.m))
    assert.is_true(mm.check(s))
  end)

  it("a string_array set and clear are undone by a failing transaction", function()
    local s = small_file(mm.struct("AA", {{"a", "string_array<4, 8>"}}))
    s.a = {"one", "two"}
    pcall(mm.transaction, s, function(v)
      v.a[1] = "changed"
      mm.clear(v.a)
      error("no")
    end)
    assert.same({"one", "two", "", ""}, mm.totable(s.a))
  end)

  it("a transaction that outgrows its first undo log block rolls back whole", function()
    -- changes to 20000 old entries take the log past its first 64 KiB block
    -- several times (changes inside space the transaction allocated need no
    -- log); 30000 inserts resize the map's table, freeing old tables inside it
    local T = mm.struct("AT", {{"m", "map<u64, u64>"}, {"l", "segmented<u32>"}})
    local s = assert(mm.create(h.missing_path(), T))
    for i = 1, 20000 do s.m[i] = i end
    s.l:push(7)
    local before = mm.totable(s)
    local ok, err = pcall(mm.transaction, s, function(v)
      for i = 1, 20000 do v.m[i] = i + 1000000 end
      for i = 20001, 50000 do v.m[i] = i; v.l:push(i) end
      assert(#v.m == 50000 and v.m[1] == 1000001)
      error("undo")
    end)
    assert.is_false(ok)
    assert.matches("undo", err)
    assert.same(before, mm.totable(s))
    assert.is_true(mm.check(s))
    for i = 20001, 40000 do s.m[i] = i end -- the heap is sound: it goes on working
    assert.equal(40000, #s.m)
    assert.is_true(mm.check(s))
  end)
end)
