--- A persistent cache that every process shares: a growable map in a file.
--
--   lua5.4 examples/cache.lua FILE set KEY VALUE [TTL]   store (TTL in seconds; none: never expires)
--   lua5.4 examples/cache.lua FILE get KEY               print the value; exit 1 on a miss
--   lua5.4 examples/cache.lua FILE del KEY               forget a key
--   lua5.4 examples/cache.lua FILE stats                 counts and the most used keys
--   lua5.4 examples/cache.lua FILE purge                 remove the expired entries
--
-- Each command is a new process; the entries another process set are simply
-- there, in the file. The map grows as entries are added (map<K, V> without
-- a capacity), hit counters are atomic, so processes running at once count
-- exactly. The environment variable CACHE_NOW (Unix seconds) replaces the
-- clock, to try expiry without waiting.
local mm = require "memmap3"

local Entry = mm.struct("Entry", {
  { "value", "string<256>" },
  { "expires", "u64" },               -- Unix time; 0: never
  { "hits", "u64", atomic = true },
})
local Cache = mm.struct("Cache", {
  { "hits", "u64", atomic = true },
  { "misses", "u64", atomic = true },
  { "entries", mm.map("string<64>", Entry) }, -- growable: no capacity
})

local TOP = 10 -- entries listed by stats

local function usage()
  io.stderr:write("usage: lua5.4 examples/cache.lua FILE set KEY VALUE [TTL]\n",
    "       lua5.4 examples/cache.lua FILE get KEY | del KEY | stats | purge\n")
  os.exit(2)
end

local function fail(msg)
  io.stderr:write("cache: ", msg, "\n")
  os.exit(1)
end

local now = os.time()
if os.getenv("CACHE_NOW") then
  now = math.tointeger(tonumber(os.getenv("CACHE_NOW"))) or fail("CACHE_NOW must be Unix seconds")
end

local function expired(e)
  return e.expires ~= 0 and e.expires <= now
end

local cache, entries -- the file's root, and its map (used like a table: it has no methods)
local commands = {}

function commands.set(key, value, ttl, extra)
  if not value or extra then usage() end
  local seconds = math.tointeger(tonumber(ttl or "0"))
  if not seconds or seconds < 0 then fail("TTL must be a number of seconds") end
  -- One assignment stores the whole entry (hits start again at 0). A key over
  -- 64 bytes or a value over 256 raises, naming which, and stores nothing.
  local ok, e = pcall(function()
    entries[key] = { value = value, expires = seconds > 0 and now + seconds or 0 }
  end)
  if not ok then fail(e:gsub("^[^:]*:%d+: ", "")) end
  print(("set %s (%s), %d entries"):format(key,
    seconds > 0 and ("expires in " .. seconds .. " s") or "never expires", #entries))
end

function commands.get(key, extra)
  if not key or extra then usage() end
  local e = entries[key] -- nil when absent (a key too long to store is absent too)
  if not e or expired(e) then
    cache.misses:fetch_add(1)
    fail(("%s: %s"):format(e and "expired" or "miss", key))
  end
  e.hits:fetch_add(1)
  cache.hits:fetch_add(1)
  print(e.value)
end

function commands.del(key, extra)
  if not key or extra then usage() end
  local had = entries[key] ~= nil -- false for a key too long to store
  if had then entries[key] = nil end
  print(("%s %s, %d entries"):format(had and "deleted" or "no such key", key, #entries))
end

local function ttl_text(e)
  if e.expires == 0 then return "never expires" end
  if expired(e) then return "expired" end
  return ("expires in %d s"):format(e.expires - now)
end

function commands.stats(extra)
  if extra then usage() end
  local list, stale = {}, 0
  for key, e in pairs(entries) do
    list[#list + 1] = { key = key, hits = e.hits:load(), ttl = ttl_text(e) }
    if expired(e) then stale = stale + 1 end
  end
  table.sort(list, function(a, b)
    if a.hits ~= b.hits then return a.hits > b.hits end
    return a.key < b.key
  end)
  local hits, misses = cache.hits:load(), cache.misses:load()
  print(("entries %d (%d expired), hits %d, misses %d, hit rate %d%%"):format(
    #entries, stale, hits, misses, hits + misses > 0 and hits * 100 // (hits + misses) or 0))
  for i = 1, math.min(#list, TOP) do
    local e = list[i]
    print(("  %-24s %6d hits  %s"):format(e.key, e.hits, e.ttl))
  end
  if #list > TOP then print(("  ... and %d more"):format(#list - TOP)) end
end

function commands.purge(extra)
  if extra then usage() end
  -- Deleting the entry pairs just returned is safe: the traversal goes on.
  local purged = 0
  for key, e in pairs(entries) do
    if expired(e) then
      entries[key] = nil
      purged = purged + 1
    end
  end
  print(("purged %d expired %s, %d left"):format(purged, purged == 1 and "entry" or "entries", #entries))
end

local path, cmd = arg[1], arg[2]
local fn = commands[cmd or ""]
if not fn then usage() end
local err
cache, err = mm.open(path, Cache, { create = true })
if not cache then fail(err) end
entries = cache.entries
fn(table.unpack(arg, 3))
mm.close(cache)
