--- `make demo`: the game save end to end, across separate processes.
-- `lua5.4 examples/demo.lua [FILE]`: with FILE the save is kept there (a save
-- already there is played on); without, it goes to a temporary file, removed
-- at the end. It runs examples/game_save.lua and bin/memmap3 beside it.
local keep = arg[1]
local path = keep or os.tmpname()
if not keep then os.remove(path) end -- the save must not exist yet

local lua = arg[-1] or "lua5.4"
local here = (arg[0] or ""):match("^(.*)/[^/]*$") or "." -- examples/
local function q(s) return "'" .. s:gsub("'", [['\'']]) .. "'" end -- for the shell
local function run(script)
  local cmd = ("%s %s %s"):format(q(lua), q(here .. "/" .. script), q(path))
  print("$ lua5.4 examples/" .. script .. " " .. (keep or "save.mm3"))
  local ok = os.execute(cmd)
  if not ok then error("demo step failed: " .. cmd) end
end

local ok, err = pcall(function()
  run("game_save.lua") -- process 1 creates the save and plays
  run("game_save.lua") -- process 2 reopens it: the progress is there
  run("game_save.lua") -- process 3 again
  print("$ memmap3 dump " .. (keep or "save.mm3"))
  assert(os.execute(("%s %s dump %s"):format(q(lua), q(here .. "/../bin/memmap3"), q(path))))
end)
if not keep then os.remove(path) end
if not ok then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
