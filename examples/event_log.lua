--- An event log shared by processes: a ring buffer in a file.
--
--   lua5.4 examples/event_log.lua produce FILE N [PAUSE_MS]
--       append N events (pausing PAUSE_MS milliseconds after each one)
--   lua5.4 examples/event_log.lua consume FILE
--       print the events still in the log, oldest first, and which
--       sequence numbers were overwritten before anyone read them
--   lua5.4 examples/event_log.lua follow FILE COUNT [AFTER]
--       wait for the next COUNT events (those numbered after AFTER, by
--       default after the newest one already logged) and print them as
--       they arrive; exit when all COUNT were printed or reported overwritten
--       (or with status 1 after EVENT_LOG_GIVE_UP seconds, default 60,
--       without any new event)
--
-- The log is a ring<Event, 64>: a push never fails and never grows the file,
-- it overwrites the oldest event once 64 are stored. Producers and consumers
-- are separate processes that run at the same time; nothing is sent between
-- them, they share the file's pages. Run a consumer in one terminal and a
-- producer in another:
--
--   lua5.4 examples/event_log.lua follow events.mm3 500 &
--   lua5.4 examples/event_log.lua produce events.mm3 500
--
-- Sequence numbers come from an atomic counter in the file, so they are
-- unique even with several producers; the consumer relies on them being
-- pushed in order, which holds for one producer at a time.
local mm = require "memmap3"

local CAPACITY = 64

local Level = mm.enum("Level", "u8", { "debug", "info", "warn", "error" })
local Event = mm.struct("Event", {
  { "seq", "u64" },         -- 1, 2, 3... in the order of the pushes
  { "time", "u64" },        -- Unix time, seconds
  { "level", Level },
  { "message", "string<48>" },
})
local EventLog = mm.struct("EventLog", {
  { "last_seq", "u64", atomic = true }, -- the last sequence number handed out
  { "events", mm.ring(Event, CAPACITY) },
})

local function usage()
  io.stderr:write("usage: lua5.4 examples/event_log.lua produce FILE N [PAUSE_MS]\n",
    "       lua5.4 examples/event_log.lua consume FILE\n",
    "       lua5.4 examples/event_log.lua follow FILE COUNT [AFTER]\n")
  os.exit(2)
end

local function fail(msg)
  io.stderr:write("event_log: ", msg, "\n")
  os.exit(1)
end

local function count_arg(s)
  local n = math.tointeger(tonumber(s or ""))
  if not n or n < 0 then usage() end
  return n
end

local function open(path, opts)
  local log, err = mm.open(path, EventLog, opts)
  if not log then fail(err) end
  return log
end

-- Lua has no sleep; a short one from the shell is enough for polling.
local function sleep(seconds)
  os.execute(("sleep %.3f"):format(seconds))
end

-- ---------------------------------------------------------------------------
-- Producing

-- The level and message of event seq: a pattern a reader can check.
local function level_of(seq)
  if seq % 50 == 0 then return "error" elseif seq % 10 == 0 then return "warn" end
  return "info"
end

local function message_of(seq)
  return ("event %d"):format(seq)
end

local function produce(path, n, pause_ms)
  local log <close> = open(path, { create = true })
  local events = log.events
  local first, last
  for _ = 1, n do
    local seq = log.last_seq:fetch_add(1) + 1
    -- One push writes the whole event; the ring takes the file's lock for it.
    _ = events << { seq = seq, time = os.time(), level = level_of(seq), message = message_of(seq) }
    first, last = first or seq, seq
    if pause_ms > 0 then sleep(pause_ms / 1000) end
  end
  if n == 0 then
    print(("produced no events (%d logged so far)"):format(log.last_seq:load()))
  else
    print(("produced %d events, %d..%d"):format(n, first, last))
  end
end

-- ---------------------------------------------------------------------------
-- Consuming

-- A copy of the event a view points to, or nil when the producer overwrote
-- that slot while we read it (the view stays on its slot: if the sequence
-- number changed, the slot now holds a newer event).
local function read_event(ev, after)
  local seq = ev.seq
  if seq <= after then return nil, seq end
  local copy = { seq = seq, time = ev.time, level = ev.level, message = ev.message }
  if ev.seq ~= seq then return nil, seq end
  return copy, seq
end

local function show(e)
  print(("%6d %s %-5s %s"):format(e.seq, os.date("%H:%M:%S", e.time), e.level, e.message))
end

local function show_overwritten(from, to)
  if from == to then
    print(("overwritten %d"):format(from))
  else
    print(("overwritten %d..%d (%d events)"):format(from, to, to - from + 1))
  end
end

-- One pass over the ring. The state remembers the last sequence number
-- handled (shown or reported overwritten) and the highest one ever seen.
-- Returns how many sequence numbers this pass handled.
local function poll(events, state)
  local found = {}
  for i = 1, #events do -- oldest to newest
    local ev = events[i]
    if not ev then break end
    local e, seq = read_event(ev, state.last)
    if e then found[seq] = e end
    if seq > state.highest then state.highest = seq end
  end
  -- Hand out events in order. An event missing from the pass is either
  -- overwritten (64 or more newer events exist, so it cannot be in the ring
  -- any more) or still to come (the producer is pushing it, or the ring moved
  -- under the pass): the next pass decides.
  local handled, gap_from = 0, nil
  local s = state.last + 1
  while true do
    local e = found[s]
    if e or s + CAPACITY > state.highest then
      if gap_from then show_overwritten(gap_from, s - 1) end
      gap_from = nil
      if not e then break end
      show(e)
      state.shown = state.shown + 1
    else
      gap_from = gap_from or s
      state.overwritten = state.overwritten + 1
    end
    state.last, handled = s, handled + 1
    if state.limit and s >= state.limit then break end
    s = s + 1
  end
  if gap_from then show_overwritten(gap_from, s) end
  return handled
end

local function consume(path)
  local log <close> = open(path, { readonly = true })
  local state = { last = 0, highest = 0, shown = 0, overwritten = 0 }
  poll(log.events, state)
  print(("%d events logged: %d shown, %d overwritten"):format(state.last, state.shown, state.overwritten))
end

-- Seconds without any new event before follow gives up.
local GIVE_UP = math.tointeger(tonumber(os.getenv("EVENT_LOG_GIVE_UP") or "60")) or 60

local function follow(path, count, after)
  local log <close> = open(path, { create = true })
  local events = log.events
  if not after then
    local newest = events:latest()
    after = newest and newest.seq or 0
  end
  print(("following %s: events %d..%d"):format(path, after + 1, after + count))
  io.stdout:flush() -- a parent process may wait for this line
  local state = { last = after, highest = after, shown = 0, overwritten = 0, limit = after + count }
  local idle_since = os.time()
  while state.last < state.limit do
    if poll(events, state) > 0 then
      io.stdout:flush()
      idle_since = os.time()
    else
      if os.time() - idle_since > GIVE_UP then
        fail(("no new event for %d seconds (got up to %d of %d..%d)"):format(
          GIVE_UP, state.last, after + 1, after + count))
      end
      sleep(0.005)
    end
  end
  print(("followed %d events: %d shown, %d overwritten"):format(count, state.shown, state.overwritten))
end

-- ---------------------------------------------------------------------------

local cmd, path = arg[1], arg[2]
if not path then usage() end
if cmd == "produce" then
  produce(path, count_arg(arg[3]), count_arg(arg[4] or "0"))
elseif cmd == "consume" and not arg[3] then
  consume(path)
elseif cmd == "follow" then
  follow(path, count_arg(arg[3]), arg[4] and count_arg(arg[4]))
else
  usage()
end
