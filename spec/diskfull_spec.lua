-- A full disk (SPEC §5): growth reserves disk blocks first, so a full disk is
-- an error ("no space left on device"), never a crash (SIGBUS) and never lost
-- data. Each test mounts a size-limited tmpfs of its own (needs root: it is
-- skipped with a message otherwise), does the writing in a child lua5.4
-- process, so that a SIGBUS shows as a signal exit status, and always
-- unmounts, also when it fails.
local mm = require "memmap3"
local h = require "helpers"

local sh = h.shell_quote

local capture = h.capture

local function is_root()
  return capture("id -u 2>/dev/null"):match("^%s*(%d+)") == "0"
end

-- Mounts a tmpfs of `size` on a fresh directory; returns it, or nil and why.
local function mount_tmpfs(size)
  local dir = capture("mktemp -d /tmp/mm3full.XXXXXX"):match("^(%S+)")
  assert(dir and dir:match("^/tmp/mm3full%."), "mktemp -d failed")
  local ok = os.execute(("mount -t tmpfs -o size=%s tmpfs %s 2>/dev/null"):format(size, sh(dir)))
  if not ok then
    os.execute("rmdir " .. sh(dir))
    return nil, "mount -t tmpfs failed (no CAP_SYS_ADMIN?)"
  end
  return dir
end

local function unmount(dir)
  collectgarbage()
  collectgarbage() -- views of files on it, left by a failed test
  if not os.execute("umount " .. sh(dir) .. " 2>/dev/null") then
    os.execute("umount -l " .. sh(dir) .. " 2>/dev/null")
  end
  os.execute("rmdir " .. sh(dir) .. " 2>/dev/null")
end

-- Runs the test body with a mounted tmpfs, or marks the test pending.
local function with_tmpfs(size, body)
  return function()
    if not is_root() then
      pending("skipped: mounting a size-limited tmpfs needs root (run the specs as root to test a full disk)")
      return
    end
    local dir, why = mount_tmpfs(size)
    if not dir then
      pending("skipped: " .. why)
      return
    end
    finally(function() unmount(dir) end)
    body(dir)
  end
end

-- Runs code in a child; it must exit 0 (a SIGBUS would be status 135).
local function child(code, ...)
  local out, status, err = h.run_lua(code, {args = {...}})
  assert.are.equal(0, status, ("child exited with status %d%s\nstdout: %s\nstderr: %s"):format(
    status, status > 128 and (" (signal " .. (status - 128) .. ")") or "", out, err))
  return out
end

local function field(out, name)
  return out:match("\n?" .. name .. "=([^\n]*)")
end

local SCHEMA = [[
  local mm = require "memmap3"
  local Root = mm.struct("FullRoot", {
    {"n", "i64"}, {"name", "string<32>"}, {"seg", mm.segmented("i64")},
    {"m", mm.map("u64", "i64")}, {"blob", "value"}, {"small", mm.vec("i64", 16)},
  })
]]
local Root = mm.struct("FullRoot", {
  {"n", "i64"}, {"name", "string<32>"}, {"seg", mm.segmented("i64")},
  {"m", mm.map("u64", "i64")}, {"blob", "value"}, {"small", mm.vec("i64", 16)},
})

-- What "before" wrote, checked in the parent after every child.
local function write_before(path)
  local r = assert(mm.create(path, Root))
  r.n = 42
  r.name = "before"
  for i = 1, 100 do r.m[i] = i * i end
  for i = 1, 1000 do r.seg:push(i) end
  r.blob = ("b"):rep(1000)
  for i = 1, 8 do r.small:push(-i) end
  mm.close(r)
end

local function check_before(path, extra_seg)
  local r = assert(mm.open(path, Root))
  assert.are.equal(42, r.n)
  assert.are.equal("before", r.name)
  for i = 1, 100 do
    if r.m[i] ~= i * i then error(("m[%d] is %s, expected %d"):format(i, tostring(r.m[i]), i * i)) end
  end
  assert.are.equal(1000 + (extra_seg or 0), #r.seg)
  for i = 1, #r.seg do
    if r.seg[i] ~= i then error(("seg[%d] is %s"):format(i, tostring(r.seg[i]))) end
  end
  assert.are.equal(("b"):rep(1000), r.blob)
  assert.are.equal(8, #r.small)
  for i = 1, 8 do assert.are.equal(-i, r.small[i]) end
  mm.close(r)
end

describe("a full disk", function()
  after_each(h.cleanup)

  it("growth by pushes, a big value and map inserts fails with 'no space left on device'; "
    .. "the process lives on and everything written before is intact after reopening",
    with_tmpfs("2m", function(dir)
    local path = dir .. "/data.mm3"
    write_before(path)
    local out = child(SCHEMA .. [[
      local path = ...
      local r = assert(mm.open(path, Root))
      -- 1. segmented pushes until the disk is full
      local pushed, err = 0, nil
      for i = 1001, 50000000 do
        local ok, e = pcall(r.seg.push, r.seg, i)
        if not ok then err = e break end
        pushed = pushed + 1
      end
      print("pushed=" .. pushed)
      print("seg_err=" .. tostring(err))
      print("len_after=" .. #r.seg)
      -- 2. a value bigger than the disk
      local ok, e = pcall(function() r.blob = ("v"):rep(4 * 1024 * 1024) end)
      print("blob_ok=" .. tostring(ok))
      print("blob_err=" .. tostring(e))
      print("blob_kept=" .. tostring(r.blob == ("b"):rep(1000)))
      -- 3. map inserts until full (the file has no room left for new nodes)
      local inserted, merr = 0, nil
      for k = 1001, 50000000 do
        local ok2, e2 = pcall(function() r.m[k] = k end)
        if not ok2 then merr = e2 break end
        inserted = inserted + 1
      end
      print("inserted=" .. inserted)
      print("map_err=" .. tostring(merr))
      -- 4. a transaction that fails for lack of space is rolled back
      local tok, terr = pcall(mm.transaction, r, function()
        r.n = 999
        r.name = "in the transaction"
        r.small:push(123)
        r.blob = ("t"):rep(3 * 1024 * 1024)
      end)
      print("txn_ok=" .. tostring(tok))
      print("txn_err=" .. tostring(terr))
      print("txn_undone=" .. tostring(r.n == 42 and r.name == "before" and #r.small == 8))
      -- 5. the process still works: writes that need no new space succeed
      r.seg[1] = 1
      for k = 1001, 1000 + inserted do r.m[k] = nil end
      print("alive=yes")
      mm.close(r)
    ]], path)
    local pushed = tonumber(field(out, "pushed"))
    assert.is_truthy(pushed and pushed > 0, out)
    assert.is_truthy(field(out, "seg_err"):lower():find("no space left on device", 1, true), out)
    assert.are.equal(tostring(1000 + pushed), field(out, "len_after"), out)
    assert.are.equal("false", field(out, "blob_ok"), out)
    assert.is_truthy(field(out, "blob_err"):lower():find("no space left on device", 1, true), out)
    assert.are.equal("true", field(out, "blob_kept"), out)
    local merr = field(out, "map_err")
    assert.is_truthy(merr:lower():find("no space left on device", 1, true), out)
    assert.are.equal("false", field(out, "txn_ok"), out)
    assert.is_truthy(field(out, "txn_err"):lower():find("no space left on device", 1, true), out)
    assert.are.equal("true", field(out, "txn_undone"), out)
    assert.are.equal("yes", field(out, "alive"), out)
    print(("\n    2 MiB tmpfs: %d pushes, then %q; %s map inserts, then the same error")
      :format(pushed, field(out, "seg_err"), field(out, "inserted")))
    -- reopened (by this process, as the first opener): all of it is there
    check_before(path, pushed)
    local r = assert(mm.open(path, Root))
    assert.are.equal(100, #r.m) -- the inserts made at the end were removed again
    mm.close(r)
  end))

  it("once space is freed, growth works again and the data written before is intact", with_tmpfs("4m",
    function(dir)
    local path = dir .. "/data.mm3"
    write_before(path)
    -- a filler takes the rest of the disk
    local filler = dir .. "/filler"
    os.execute(("dd if=/dev/zero of=%s bs=64k count=64 2>/dev/null"):format(sh(filler)))
    local out = child(SCHEMA .. [[
      local path = ...
      local r = assert(mm.open(path, Root))
      local ok, err = pcall(function() r.blob = ("x"):rep(1536 * 1024) end)
      print("first_ok=" .. tostring(ok))
      print("first_err=" .. tostring(err))
      os.remove((path:gsub("data%.mm3$", "filler")))
      local ok2, err2 = pcall(function() r.blob = ("x"):rep(1536 * 1024) end)
      print("second_ok=" .. tostring(ok2))
      print("second_err=" .. tostring(err2))
      r.blob = ("b"):rep(1000)
      mm.close(r)
    ]], path)
    assert.are.equal("false", field(out, "first_ok"), out)
    assert.is_truthy(field(out, "first_err"):lower():find("no space left on device", 1, true), out)
    assert.are.equal("true", field(out, "second_ok"), out)
    check_before(path)
  end))

  it("mm.create on a full disk returns nil, 'no space left on device', code and leaves no file behind",
    with_tmpfs("256k", function(dir)
    local filler = dir .. "/filler"
    os.execute(("dd if=/dev/zero of=%s bs=4k count=1000 2>/dev/null"):format(sh(filler)))
    local out = child(SCHEMA .. [[
      local path = ...
      local Big = mm.struct("FullBig", {{"a", "u8[65536]"}})
      local r, msg, code = mm.create(path, Big)
      print("r=" .. tostring(r))
      print("msg=" .. tostring(msg))
      print("code=" .. tostring(code))
    ]], dir .. "/new.mm3")
    assert.are.equal("nil", field(out, "r"), out)
    assert.is_truthy(field(out, "msg"):lower():find("no space left on device", 1, true), out)
    assert.is_truthy(tonumber(field(out, "code")), out)
    local left = capture("ls -A " .. sh(dir))
    assert.are.equal("filler\n", left)
  end))

  it("a file that another process grows until the disk is full: a reader that opened it earlier "
    .. "keeps reading what was written", with_tmpfs("2m", function(dir)
    local path = dir .. "/data.mm3"
    write_before(path)
    local r = assert(mm.open(path, Root)) -- this process keeps it open meanwhile
    local out = child(SCHEMA .. [[
      local path = ...
      local w = assert(mm.open(path, Root))
      local n = 0
      while pcall(w.seg.push, w.seg, 1001 + n) do n = n + 1 end
      print("pushed=" .. n)
      mm.close(w)
    ]], path)
    local pushed = tonumber(field(out, "pushed"))
    assert.is_truthy(pushed and pushed > 0, out)
    assert.are.equal(1000 + pushed, #r.seg)
    for i = 1, #r.seg, 97 do assert.are.equal(i, r.seg[i]) end
    assert.are.equal(1000 + pushed, r.seg[#r.seg])
    mm.close(r)
    check_before(path, pushed)
  end))
end)
