-- C hosts that embed Lua: examples/embed.c (a game save shared by a C
-- program and its script) and spec/c_host/host.c (two lua_States on one
-- file; borrowed roots that outlive collectgarbage, mm.close and lua_close).
-- Each is built against the header `memmap3 cheader` makes from
-- examples/embed_save.lua and run as a real process.
local h = require "helpers"
local mm = require "memmap3"

local CC = os.getenv("CC") or "cc"
local LUA_INCDIR = os.getenv("LUA_INCDIR") or "/usr/include/lua5.4"
local WARN = "-std=c11 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Werror"
-- Under make sanitize the build's objects are instrumented: so is the host.
local SAN = h.under_asan() and " -fsanitize=address,undefined" or ""

local function run(cmd)
  local errf = h.tmpname()
  local p = assert(io.popen(cmd .. " 2>" .. h.shell_quote(errf)))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, status, h.read_file(errf) or ""
end

local has_line = h.has_line

describe("C hosts embedding Lua", function()
  local dir, embed, host

  -- Compile a host program with the generated header and the Lua binding's
  -- objects linked in (they are not in libmemmap3.a).
  local function build(src, exe)
    local objs = {}
    local ls = assert(io.popen("ls " .. h.shell_quote(h.build) .. "/obj/lmm3*.o"))
    for o in ls:lines() do objs[#objs + 1] = h.shell_quote(o) end
    ls:close()
    local cmd = string.format("%s %s%s -O1 -g -Isrc -I%s -I%s -o %s %s %s %s -llua5.4 -lm -ldl -lpthread",
      CC, WARN, SAN, h.shell_quote(LUA_INCDIR), h.shell_quote(dir), h.shell_quote(exe), src,
      table.concat(objs, " "), h.shell_quote(h.build .. "/libmemmap3.a"))
    local _, status, err = run(cmd)
    assert(status == 0, src .. " does not build:\n" .. cmd .. "\n" .. err)
    return exe
  end

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. h.shell_quote(dir)))
    local _, status, err = run(string.format(
      "LUA_INIT= LUA_PATH=%s LUA_CPATH=%s %s bin/memmap3 cheader %s Save -o %s",
      h.shell_quote("lua/?.lua;lua/?/init.lua;;"), h.shell_quote(h.build .. "/?.so;;"), h.shell_quote(h.lua),
      "examples/embed_save.lua", h.shell_quote(dir .. "/embed_save.h")))
    assert(status == 0, err)
    embed = build("examples/embed.c", dir .. "/embed")
    host = build("spec/c_host/host.c", dir .. "/host")
  end)

  teardown(function()
    if dir then os.execute("rm -rf " .. h.shell_quote(dir)) end
  end)

  after_each(h.cleanup)

  local function sh(...)
    local parts = {}
    for i, a in ipairs({ ... }) do parts[i] = h.shell_quote(a) end
    return "env -u LUA_INIT -u LUA_INIT_5_4 " .. table.concat(parts, " ")
  end

  it("examples/embed.c: the host reads what its script changed, through the generated structs", function()
    local p = h.missing_path()
    local out, status, err = run(sh(embed, p))
    assert.equal(0, status, err)
    for _, line in ipairs {
      "host: new save for Ana the mage",
      "host: before the script: level 1, gold 0, hp 100, kills 0, 0 kinds of item",
      "script: Ana the mage reached level 2 with 200 gold (3 kills)",
      "host: after the script: level 2, gold 200, hp 93, kills 3, 1 kinds of item",
      "host: Ana stands at (2, 0, 2.5)",
      "host: item 1: 1 x potion",
      "host: quest 'dragon' at 25%",
      "host: journal: level 2: 200 gold, 93 hp",
      "host: after lua_close: level 2, gold 200, hp 93, kills 4, 1 kinds of item",
    } do
      assert(has_line(out, line), "missing: " .. line .. "\n" .. out)
    end
    -- the next run (a new process) goes on from there
    local out2, status2, err2 = run(sh(embed, p))
    assert.equal(0, status2, err2)
    assert.is_nil(out2:find("new save", 1, true))
    for _, line in ipairs {
      "host: before the script: level 2, gold 200, hp 93, kills 4, 1 kinds of item",
      "host: after the script: level 3, gold 500, hp 86, kills 7, 2 kinds of item",
      "host: item 1: 2 x potion",
      "host: item 2: 1 x lantern",
      "host: quest 'dragon' at 50%",
      "host: journal: level 2: 200 gold, 93 hp",
      "host: journal: level 3: 500 gold, 86 hp",
    } do
      assert(has_line(out2, line), "missing: " .. line .. "\n" .. out2)
    end
    -- and a plain script opens the file with the schema module's types
    local types = dofile("examples/embed_save.lua")
    local save = assert(mm.open(p, types.Save))
    assert.equal(3, save.level)
    assert.equal(8, save.player.kills:load())
    assert.equal("mage", save.player.class)
    assert.same({ { name = "potion", count = 2 }, { name = "lantern", count = 1 } },
      mm.totable(save.inventory))
    assert.is_true(mm.check(save))
    mm.close(save)
  end)

  it("examples/embed.c: a failing script is reported, and its transaction leaves nothing", function()
    local p = h.missing_path()
    local _, status, err = run(sh(embed, p))
    assert.equal(0, status, err)
    local bad = h.tmpname(".lua")
    h.write_file(bad, [[
      local mm = require "memmap3"
      mm.transaction(save, function(s) s.level = 50; s.inventory:push({ name = "ghost" }); error("boom") end)
    ]])
    local out, status2, err2 = run(sh(embed, p, bad))
    assert.equal(1, status2)
    assert.matches("boom", err2, 1, true)
    assert(has_line(out, "host: before the script: level 2, gold 200, hp 93, kills 4, 1 kinds of item"), out)
    local out3, status3, err3 = run(sh(embed, p))
    assert.equal(0, status3, err3)
    local same = "host: before the script: level 2, gold 200, hp 93, kills 4, 1 kinds of item"
    assert(has_line(out3, same), out3)
  end)

  it("two lua_States in one process share one mm3_file and see each other's writes", function()
    local out, status, err = run(sh(host, "two_states", h.missing_path()))
    assert.equal(0, status, err .. out)
    for _, step in ipairs {
      "A's writes are B's reads and back",
      "the host sees both, both see the host",
      "a rolled-back transaction in A is invisible to B and the host",
      "a write beside another thread's transaction on the shared handle stays",
      "two states in two threads: no lost update",
      "closing the states leaves the file to the host",
    } do
      assert(has_line(out, "ok: " .. step), "missing: " .. step .. "\n" .. out)
    end
  end)

  it("a borrowed root survives the script's collectgarbage(), mm.close, <close> and lua_close", function()
    local out, status, err = run(sh(host, "borrowed", h.missing_path()))
    assert.equal(0, status, err .. out)
    for _, step in ipairs {
      "mm3lua_check_view and mm3lua_check_file",
      "after the script's collectgarbage() the host still reads and writes",
      "a root pushed again sees the host's writes",
      "mm.close on a borrowed root leaves the host's file open",
      "<close> on a borrowed root leaves the host's file open",
      "lua_close leaves the host's file open; a new state sees it",
    } do
      assert(has_line(out, "ok: " .. step), "missing: " .. step .. "\n" .. out)
    end
  end)

  -- Closing a borrowed root only detaches it from the script, so the host's
  -- mm3_file would stay in a transaction the script left open (holding the
  -- lock, and rolling the host's own later writes back when it closes):
  -- detaching ends (rolls back) every transaction the script opened on it.
  it("a script closing its borrowed root inside mm.transaction leaves no transaction open", function()
    local out, status, err = run(sh(host, "txn_close", h.missing_path()))
    assert.equal(0, status, err .. out)
  end)

  -- spec/c_host/oom.c: the host's allocator fails from the k-th allocation
  -- on, for k = 1, 2, ..., during a struct assignment that runs as a
  -- transaction (an error raised after its begin kept the lock for good).
  it("memory running out in a struct assignment leaves no transaction open and the lock free", function()
    local exe = dir .. "/oom"
    local cmd = string.format("%s %s%s -O1 -g -Isrc -I%s -o %s spec/c_host/oom.c -llua5.4 -lm -ldl",
      CC, WARN, SAN, h.shell_quote(LUA_INCDIR), h.shell_quote(exe))
    local _, bstatus, berr = run(cmd)
    assert.equal(0, bstatus, "spec/c_host/oom.c does not build:\n" .. cmd .. "\n" .. berr)
    local out, status, err = run(sh(exe, h.missing_path(), h.build))
    assert.equal(0, status, err .. out)
    local failures = tonumber(out:match("^ok (%d+)"))
    assert.is_true(failures and failures > 0, out) -- some allocations did fail
  end)
end)
