--- The schema of the game save that examples/embed.c (a C host) and
-- examples/embed_script.lua (the script it runs) share. It returns its
-- types by name, for scripts and for `memmap3 cheader`:
--
--   memmap3 cheader examples/embed_save.lua Save -o build/gen/embed_save.h
--
-- writes the C header whose structs (Save, Player, Item...) match this
-- layout, so the host reads `((Save *)mm3_file_root(f))->level` directly.
local mm = require "memmap3"

local Class = mm.enum("Class", "u8", { "warrior", "mage", "rogue" })
local Item = mm.struct("Item", { { "name", "string<16>" }, { "count", "u16" } })
local Player = mm.struct("Player", {
  { "name", "string<32>" },
  { "class", Class },
  { "hp", "i32" },
  { "pos", "f32[3]" },
  { "kills", "u64", atomic = true },  -- C: mm3_atomic_fetch(&p->kills, 8, ...)
})
local Save = mm.struct("Save", {
  { "version", "u32" },
  { "level", "u16" },
  { "gold", "i64" },
  { "player", Player },
  { "inventory", mm.vec(Item, 8) },                -- C: Save_vec_Item_8
  { "quests", mm.map("string<16>", "u16", 8) },    -- quest -> progress (%)
  { "journal", mm.ring("string<48>", 4) },         -- the last 4 entries
})

return { Save = Save, Player = Player, Item = Item, Class = Class }
