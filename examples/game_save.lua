--- A game save that is the file itself: `lua5.4 examples/game_save.lua [FILE]`.
--
-- The first run creates the save; every later run (a new process) opens it,
-- shows where the player left off, and plays one more level. Nothing is
-- loaded or saved: each assignment below is already in the file.
--
-- The inventory is a vec<Item, 16> (a fixed-capacity vector kept inline in
-- the save: push, remove, index) and the journal is a segmented<LogEntry>
-- (a list that grows without limit; existing entries never move), with one
-- entry per level played.
local mm = require "memmap3"

local BAG = 16 -- kinds of item the inventory holds

local Class = mm.enum("Class", "u8", { "warrior", "mage", "rogue" })
local Item = mm.struct("Item", { { "name", "string<16>" }, { "count", "u16" } })
local LogEntry = mm.struct("LogEntry", {
  { "level", "u16" },
  { "hp", "i32" },
  { "score", "u64" },
  { "note", "string<40>" },
})
local Save = mm.struct("Save", {
  { "version", "u32" },
  { "level", "u16" },
  { "score", "u64" },
  { "player", mm.struct("Player", {
    { "name", "string<32>" },
    { "class", Class },
    { "pos", "f32[3]" },
    { "hp", "i32" },
  }) },
  { "inventory", mm.vec(Item, BAG) },
  { "journal", mm.segmented(LogEntry) },
})

local SHOW_JOURNAL = 3 -- entries printed after each level
-- What lies around on some levels, besides the gold found on every level.
local FINDS = { [2] = "rope", [3] = "lantern", [5] = "old key", [8] = "map" }

local path = arg[1] or "game.mm3"
local save, err = mm.open(path, Save, { create = true })
if not save then
  io.stderr:write("game_save: ", err, "\n")
  os.exit(1)
end

-- The index of the item called name in the inventory, or nil.
local function find(name)
  for i, item in ipairs(save.inventory) do
    if item.name == name then return i end
  end
  return nil
end

-- Add n of an item: a new slot (push) or a bigger count. The vector holds 16
-- kinds of item (pushing a 17th would raise "vec 'inventory' is full
-- (capacity 16)" and change nothing), so a full bag leaves the item behind.
local function gain(name, n)
  local i = find(name)
  if i then
    save.inventory[i].count = save.inventory[i].count + n
    return true
  end
  if #save.inventory >= BAG then return false end
  save.inventory:push({ name = name, count = n })
  return true
end

-- Use one of an item; its slot is removed when the last one is used.
local function use(name)
  local i = find(name)
  if not i then return false end
  local item = save.inventory[i]
  if item.count > 1 then
    item.count = item.count - 1
  else
    save.inventory:remove(i)
  end
  return true
end

if save.version == 0 then
  -- A new save: everything starts at zero, so fill in the character.
  save.version = 1
  save.level = 1
  save.player = { name = "Ana", class = "mage", pos = { 0, 0, 0 }, hp = 100 }
  local _ = save.inventory << { name = "potion", count = 3 }
  print(("New game: %s the %s starts at level 1."):format(save.player.name, save.player.class))
else
  local p = save.player
  print(("Welcome back, %s the %s: level %d, score %d, hp %d, at (%.1f, %.1f, %.1f)."):format(
    p.name, p.class, save.level, save.score, p.hp, p.pos[1], p.pos[2], p.pos[3]))
  for _, item in ipairs(save.inventory) do
    print(("  carrying %d x %s"):format(item.count, item.name))
  end
end

-- Play a level: move, fight, loot. Each line writes straight into the file.
local level = save.level
local p = save.player
p.pos[1] = p.pos[1] + 10
p.pos[2] = p.pos[2] + 2.5
p.hp = p.hp - 7
local notes = {}
if p.hp < 90 and use("potion") then
  p.hp = p.hp + 15
  notes[#notes + 1] = "drank a potion"
end
gain("gold", 25)
notes[#notes + 1] = "25 gold"
if FINDS[level] then
  notes[#notes + 1] = gain(FINDS[level], 1) and ("found a " .. FINDS[level]) or "bag full"
end
save.score = save.score + 1000 * level
save.level = level + 1
local _ = save.journal << { level = level, hp = p.hp, score = save.score, note = table.concat(notes, ", ") }
print(("Finished level %d: score %d."):format(level, save.score))

-- The journal: only the last few entries, however long the game has been.
local n = #save.journal
print(("Journal (%d %s):"):format(n, n == 1 and "entry" or "entries"))
for i = math.max(1, n - SHOW_JOURNAL + 1), n do
  local e = save.journal[i]
  print(("  level %d: hp %d, score %d (%s)"):format(e.level, e.hp, e.score, e.note))
end
mm.close(save)
