-- The examples do what their comments promise, each run as a real process.
local h = require "helpers"

local function run(script, ...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = h.shell_quote(a) end
  local env = string.format("LUA_INIT= LUA_PATH=%s LUA_CPATH=%s ",
    h.shell_quote("lua/?.lua;lua/?/init.lua;examples/?.lua;;"), h.shell_quote(h.build .. "/?.so;;"))
  local errf = h.tmpname()
  local p = assert(io.popen(env .. h.shell_quote(h.lua) .. " examples/" .. script .. " " ..
    table.concat(args, " ") .. " 2>" .. h.shell_quote(errf)))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, status, h.read_file(errf) or ""
end

describe("examples", function()
  after_each(h.cleanup)

  it("config.lua keeps its settings across restarts and refuses bad values", function()
    local p = h.tmpname()
    local _, status = run("config.lua", p, "max_connections=200", "server_name=edge-1")
    assert.equal(0, status)
    local out
    out, status = run("config.lua", p) -- a new process: the values are in the file
    assert.equal(0, status)
    assert.matches("max_connections%s+200", out)
    assert.matches("timeout_ms%s+5000", out)
    assert.matches("server_name%s+edge%-1", out)
    local _, bad, err = run("config.lua", p, "max_connections=-1")
    assert.equal(1, bad)
    assert.matches("max_connections", err, 1, true)
    out = run("config.lua", p)
    assert.matches("max_connections%s+200", out) -- the failed write changed nothing
  end)

  it("game_save.lua continues where the previous process stopped", function()
    local p = h.tmpname()
    local out1 = run("game_save.lua", p)
    assert.matches("New game: Ana the mage", out1, 1, true)
    local out2 = run("game_save.lua", p)
    assert.matches("Welcome back, Ana the mage: level 2, score 1000, hp 93", out2, 1, true)
    assert.matches("25 x gold", out2, 1, true)
    local out3 = run("game_save.lua", p)
    assert.matches("level 3, score 3000", out3, 1, true)
  end)

  it("analytics.lua counts exactly with several processes at once", function()
    local p = h.tmpname()
    local procs = {}
    for i = 1, 4 do
      procs[i] = assert(io.popen(string.format(
        "LUA_INIT= LUA_PATH=%s LUA_CPATH=%s %s examples/analytics.lua %s 2000 10 1",
        h.shell_quote("lua/?.lua;lua/?/init.lua;;"), h.shell_quote(h.build .. "/?.so;;"),
        h.shell_quote(h.lua), h.shell_quote(p))))
    end
    for i = 1, 4 do procs[i]:read("a"); procs[i]:close() end
    local out = run("analytics.lua", p, "0", "0", "0")
    assert.matches("page views 8000, unique visitors 40, signups 4, conversion 10.00%%, peak 10", out)
  end)

  it("the IPC pair: B prints the count A stored", function()
    local p = h.tmpname()
    local out, status = run("ipc_writer.lua", p)
    assert.equal(0, status)
    assert.matches("Stored 42 messages.", out, 1, true)
    out, status = run("ipc_reader.lua", p)
    assert.equal(0, status)
    assert.matches("Messages: 42", out, 1, true)
    local _, missing, err = run("ipc_reader.lua", h.missing_path())
    assert.equal(1, missing)
    assert.matches("No such file", err, 1, true)
  end)

  it("cat.lua prints a file through a map", function()
    local p = h.tmpfile("line one\nline two\n")
    local out, status = run("cat.lua", p)
    assert.equal(0, status)
    assert.equal("line one\nline two\n", out)
  end)
end)
