-- The examples do what their comments promise, each run as a real process.
local h = require "helpers"
local mm = require "memmap3"

-- The shell command that runs an example in a fresh lua5.4 (env: a table of
-- extra environment variables).
local function command(script, args, env)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = h.shell_quote(a) end
  local vars = {}
  for k, v in pairs(env or {}) do vars[#vars + 1] = k .. "=" .. h.shell_quote(v) .. " " end
  table.sort(vars)
  return string.format("LUA_INIT= LUA_PATH=%s LUA_CPATH=%s %s%s examples/%s %s",
    h.shell_quote("lua/?.lua;lua/?/init.lua;examples/?.lua;;"), h.shell_quote(h.build .. "/?.so;;"),
    table.concat(vars), h.shell_quote(h.lua), script, table.concat(quoted, " "))
end

-- Run an example to its end: stdout, exit status, stderr.
local function run_env(env, script, ...)
  local errf = h.tmpname()
  local p = assert(io.popen(command(script, { ... }, env) .. " 2>" .. h.shell_quote(errf)))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, status, h.read_file(errf) or ""
end

local function run(script, ...)
  return run_env(nil, script, ...)
end

-- event_log.lua's output, line by line: {seq, level, message} for an event,
-- {from, to} for overwritten sequence numbers, in the order printed.
local function log_lines(out)
  local lines = {}
  for line in out:gmatch("[^\n]+") do
    local seq, level, msg = line:match("^%s*(%d+) %d%d:%d%d:%d%d (%a+)%s+(.*)$")
    local from, to = line:match("^overwritten (%d+)%.%.(%d+) ")
    from = from or line:match("^overwritten (%d+)$")
    if seq then
      lines[#lines + 1] = { seq = tonumber(seq), level = level, message = msg }
    elseif from then
      lines[#lines + 1] = { from = tonumber(from), to = tonumber(to or from) }
    end
  end
  return lines
end

-- Check that the lines account for every sequence number first..last exactly
-- once, in increasing order, and that each event shown is the one the
-- producer wrote (no half-written event). Returns how many were shown.
local function check_sequence(lines, first, last)
  local expect, shown = first, 0
  for _, l in ipairs(lines) do
    if l.seq then
      assert.equal(expect, l.seq)
      assert.equal("event " .. l.seq, l.message)
      assert.equal(l.seq % 50 == 0 and "error" or l.seq % 10 == 0 and "warn" or "info", l.level)
      expect, shown = expect + 1, shown + 1
    else
      assert.equal(expect, l.from)
      assert.is_true(l.to >= l.from)
      expect = l.to + 1
    end
  end
  assert.equal(last + 1, expect)
  return shown
end

-- Start `follow` in the background and wait until it is watching the file;
-- returns a function that waits for the consumer's end: output, status.
-- (If events never reach it, it gives up after 15 s instead of 60.)
local function start_follower(...)
  local p = assert(io.popen(command("event_log.lua", { "follow", ... }, { EVENT_LOG_GIVE_UP = "15" })))
  local first = p:read("l")
  assert.matches("^following ", first)
  return function()
    local rest = p:read("a")
    local _, _, status = p:close()
    return first .. "\n" .. rest, status
  end
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
    assert.matches("Journal (1 entry):\n  level 1: hp 93, score 1000 (25 gold)\n", out1, 1, true)
    local out2 = run("game_save.lua", p)
    assert.matches("Welcome back, Ana the mage: level 2, score 1000, hp 93", out2, 1, true)
    assert.matches("  carrying 3 x potion\n  carrying 25 x gold\n", out2, 1, true)
    assert.matches("level 2: hp 101, score 3000 (drank a potion, 25 gold, found a rope)", out2, 1, true)
    local out3 = run("game_save.lua", p)
    assert.matches("level 3, score 3000", out3, 1, true)
    -- The inventory is a vec: the potion drunk on level 2 and the rope found there.
    assert.matches("  carrying 2 x potion\n  carrying 50 x gold\n  carrying 1 x rope\n", out3, 1, true)
    assert.matches("Journal (3 entries):\n" ..
      "  level 1: hp 93, score 1000 (25 gold)\n" ..
      "  level 2: hp 101, score 3000 (drank a potion, 25 gold, found a rope)\n" ..
      "  level 3: hp 94, score 6000 (25 gold, found a lantern)\n", out3, 1, true)
    -- A fourth run shows only the last three entries of the journal.
    local out4 = run("game_save.lua", p)
    assert.matches("Journal (4 entries):\n  level 2:", out4, 1, true)
    assert.not_matches("level 1:", out4, 1, true)
    -- The file describes itself: open it without the game's schema.
    local save = assert(mm.open(p, { readonly = true }))
    assert.equal(5, save.level)
    assert.equal(4, #save.journal)
    assert.same({ level = 4, hp = 102, score = 10000, note = "drank a potion, 25 gold" },
      mm.totable(save.journal[4]))
    assert.same({ { name = "potion", count = 1 }, { name = "gold", count = 100 },
      { name = "rope", count = 1 }, { name = "lantern", count = 1 } }, mm.totable(save.inventory))
    mm.close(save)
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
    local _, status, err = run("analytics.lua", p, "abc") -- a usage error, not a traceback
    assert.equal(2, status)
    assert.matches("^usage: ", err)
  end)

  describe("event_log.lua", function()
    it("keeps the last 64 events and says which were overwritten", function()
      local p = h.tmpname()
      local out, status = run("event_log.lua", "produce", p, "100")
      assert.equal(0, status)
      assert.matches("produced 100 events, 1..100", out, 1, true)
      out, status = run("event_log.lua", "consume", p) -- another process
      assert.equal(0, status)
      local lines = log_lines(out)
      assert.same({ from = 1, to = 36 }, lines[1])
      assert.equal(37, lines[2].seq)
      assert.equal(100, lines[#lines].seq)
      assert.equal(64, check_sequence(lines, 1, 100))
      assert.matches("100 events logged: 64 shown, 36 overwritten", out, 1, true)
      out = run("event_log.lua", "produce", p, "5") -- numbering goes on
      assert.matches("produced 5 events, 101..105", out, 1, true)
      assert.equal(64, check_sequence(log_lines(run("event_log.lua", "consume", p)), 1, 105))
    end)

    it("a consumer following a producer that runs at the same time", function()
      local p = h.tmpname()
      assert.equal(0, select(2, run("event_log.lua", "produce", p, "0"))) -- an empty log
      -- As fast as it can: the producer may lap the consumer, which then
      -- reports what it missed; the last 64 events can never be missed.
      local finish = start_follower(p, "3000", "0")
      local out, status = run("event_log.lua", "produce", p, "3000")
      assert.equal(0, status)
      assert.matches("produced 3000 events, 1..3000", out, 1, true)
      local followed
      followed, status = finish()
      assert.equal(0, status)
      local shown = check_sequence(log_lines(followed), 1, 3000)
      assert.is_true(shown >= 64)
      assert.matches("followed 3000 events: " .. shown .. " shown, " .. 3000 - shown .. " overwritten",
        followed, 1, true)
      -- Paced: every event is there, in order, whatever the consumer missed.
      finish = start_follower(p, "100", "3000")
      assert.equal(0, select(2, run("event_log.lua", "produce", p, "100", "2")))
      followed, status = finish()
      assert.equal(0, status)
      check_sequence(log_lines(followed), 3001, 3100)
    end)

    it("follow starts after the newest event by default", function()
      local p = h.tmpname()
      run("event_log.lua", "produce", p, "10")
      local finish = start_follower(p, "5")
      run("event_log.lua", "produce", p, "5")
      local out, status = finish()
      assert.equal(0, status)
      assert.matches("events 11..15", out, 1, true)
      assert.equal(5, check_sequence(log_lines(out), 11, 15))
    end)
  end)

  describe("cache.lua", function()
    it("one process sets, another gets", function()
      local p = h.tmpname()
      local out, status = run("cache.lua", p, "set", "greeting", "hello, world")
      assert.equal(0, status)
      assert.matches("set greeting (never expires), 1 entries", out, 1, true)
      out, status = run("cache.lua", p, "get", "greeting")
      assert.equal(0, status)
      assert.equal("hello, world\n", out)
      local err
      out, status, err = run("cache.lua", p, "get", "nobody")
      assert.equal(1, status)
      assert.equal("", out)
      assert.matches("miss: nobody", err, 1, true)
      -- hits are counted in the file, by every process
      run("cache.lua", p, "get", "greeting")
      out = run("cache.lua", p, "stats")
      assert.matches("entries 1 (0 expired), hits 2, misses 1, hit rate 66%", out, 1, true)
      assert.matches("greeting%s+2 hits%s+never expires", out)
      -- too long for string<64> or string<256>: refused, nothing stored
      status, err = select(2, run("cache.lua", p, "set", string.rep("k", 65), "v"))
      assert.equal(1, status)
      assert.matches("longer than its capacity (64 bytes)", err, 1, true)
      status, err = select(2, run("cache.lua", p, "set", "greeting", string.rep("v", 257)))
      assert.equal(1, status)
      assert.matches("longer than its capacity (256 bytes)", err, 1, true)
      assert.equal("hello, world\n", (run("cache.lua", p, "get", "greeting")))
      out, status, err = run("cache.lua", p, "del", string.rep("k", 65)) -- too long to be there
      assert.equal(0, status, err)
      assert.matches("no such key", out, 1, true)
      out = run("cache.lua", p, "del", "greeting")
      assert.matches("deleted greeting, 0 entries", out, 1, true)
      assert.equal(1, select(2, run("cache.lua", p, "get", "greeting")))
    end)

    it("entries expire, and purge removes them while iterating", function()
      local p = h.tmpname()
      local now = os.time()
      local later = { CACHE_NOW = tostring(now + 120) }
      for i = 1, 20 do -- half of them expire after a minute
        assert.equal(0, select(2, run("cache.lua", p, "set", "k" .. i, "v" .. i, i % 2 == 0 and "60" or nil)))
      end
      assert.equal("v2\n", (run("cache.lua", p, "get", "k2")))
      local _, status, err = run_env(later, "cache.lua", p, "get", "k2")
      assert.equal(1, status)
      assert.matches("expired: k2", err, 1, true)
      local out = run_env(later, "cache.lua", p, "stats")
      assert.matches("entries 20 (10 expired)", out, 1, true)
      assert.matches("... and 10 more", out, 1, true)
      out, status = run_env(later, "cache.lua", p, "purge")
      assert.equal(0, status)
      assert.matches("purged 10 expired entries, 10 left", out, 1, true)
      out = run("cache.lua", p, "stats")
      assert.matches("entries 10 (0 expired)", out, 1, true)
      for i = 1, 20 do
        out, status = run("cache.lua", p, "get", "k" .. i)
        if i % 2 == 0 then
          assert.equal(1, status)
        else
          assert.equal(0, status)
          assert.equal("v" .. i .. "\n", out)
        end
      end
      assert.matches("purged 0 expired entries, 10 left", (run_env(later, "cache.lua", p, "purge")), 1, true)
    end)

    it("several processes set at the same time", function()
      local p = h.tmpname()
      local procs = {}
      for i = 1, 8 do
        procs[i] = assert(io.popen(command("cache.lua", { p, "set", "key" .. i, "value " .. i })))
      end
      for i = 1, 8 do procs[i]:read("a"); assert.is_true(procs[i]:close()) end
      assert.matches("entries 8 ", (run("cache.lua", p, "stats")), 1, true)
      for i = 1, 8 do assert.equal("value " .. i .. "\n", (run("cache.lua", p, "get", "key" .. i))) end
    end)
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
