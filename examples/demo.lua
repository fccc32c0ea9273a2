--- `make demo`: the game save end to end, across separate processes.
local path = os.tmpname()
os.remove(path) -- the save must not exist yet

local lua = arg[-1] or "lua5.4"
local function run(script, ...)
  local cmd = ("%s %s %s"):format(lua, script, table.concat({ path, ... }, " "))
  print("$ lua5.4 " .. script .. " save.mm3")
  local ok = os.execute(cmd)
  if not ok then error("demo step failed: " .. cmd) end
end

local ok, err = pcall(function()
  run("examples/game_save.lua") -- process 1 creates the save and plays
  run("examples/game_save.lua") -- process 2 reopens it: the progress is there
  run("examples/game_save.lua") -- process 3 again
  print("$ memmap3 dump save.mm3")
  assert(os.execute(("%s bin/memmap3 dump %s"):format(lua, path)))
end)
os.remove(path)
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
