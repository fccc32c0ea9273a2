--- A game save that is the file itself: `lua5.4 examples/game_save.lua [FILE]`.
--
-- The first run creates the save; every later run (a new process) opens it,
-- shows where the player left off, and plays one more level. Nothing is
-- loaded or saved: each assignment below is already in the file.
local mm = require "memmap3"

local Class = mm.enum("Class", "u8", { "warrior", "mage", "rogue" })
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
  { "inventory", mm.array(mm.struct("Item", { { "name", "string<16>" }, { "count", "u16" } }), 8) },
})

local path = arg[1] or "game.mm3"
local save, err = mm.open(path, Save, { create = true })
if not save then
  io.stderr:write("game_save: ", err, "\n")
  os.exit(1)
end

if save.version == 0 then
  -- A new save: everything starts at zero, so fill in the character.
  save.version = 1
  save.level = 1
  save.player = { name = "Ana", class = "mage", pos = { 0, 0, 0 }, hp = 100 }
  save.inventory[1] = { name = "potion", count = 3 }
  print(("New game: %s the %s starts at level 1."):format(save.player.name, save.player.class))
else
  local p = save.player
  print(("Welcome back, %s the %s: level %d, score %d, hp %d, at (%.1f, %.1f, %.1f)."):format(
    p.name, p.class, save.level, save.score, p.hp, p.pos[1], p.pos[2], p.pos[3]))
  for _, item in ipairs(save.inventory) do
    if item.count > 0 then print(("  carrying %d x %s"):format(item.count, item.name)) end
  end
end

-- Play a level: move, fight, loot. Each line writes straight into the file.
local p = save.player
p.pos[1] = p.pos[1] + 10
p.pos[2] = p.pos[2] + 2.5
p.hp = p.hp - 7
save.score = save.score + 1000 * save.level
save.level = save.level + 1
save.inventory[2] = { name = "gold", count = save.inventory[2].count + 25 }
print(("Finished level %d: score %d."):format(save.level - 1, save.score))
mm.close(save)
