--- The script examples/embed.c runs against its game save. The host opened
-- the file and handed its root to this script as the global `save` (a
-- borrowed handle: the script can never close the host's file). Everything
-- assigned here is in the file at once; the host reads it back through the
-- C header `memmap3 cheader` made from examples/embed_save.lua.
-- luacheck: read globals save
local mm = require "memmap3"

-- Play one level, as one transaction: all of it reaches the file or none.
mm.transaction(save, function(s)
  s.level = s.level + 1
  s.gold = s.gold + 100 * s.level
  s.player.hp = s.player.hp - 7
  s.player.pos = { s.level, 0, 2.5 }

  local found = false
  for _, item in ipairs(s.inventory) do
    if item.name == "potion" then
      item.count = item.count + 1
      found = true
    end
  end
  if not found then s.inventory:push({ name = "potion", count = 1 }) end
  if s.level == 3 then s.inventory:push({ name = "lantern", count = 1 }) end

  s.quests.dragon = math.min(100, (s.quests.dragon or 0) + 25)
  s.journal:push(string.format("level %d: %d gold, %d hp", s.level, s.gold, s.player.hp))
end)

-- Atomic fields work across threads and processes, outside transactions too.
save.player.kills:fetch_add(3)

print(string.format("script: %s the %s reached level %d with %d gold (%d kills)", save.player.name,
  save.player.class, save.level, save.gold, save.player.kills:load()))

-- Views are garbage like any Lua value; collecting them never closes the
-- host's file.
collectgarbage()
