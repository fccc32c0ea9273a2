--- cat through a read-only map: `lua5.4 examples/cat.lua FILE`.
--
-- The file is mapped, not read: its pages come straight from the page cache, and
-- each chunk is copied once, into the Lua string that io.write sends on.
local mm = require "memmap3"

local CHUNK = 64 * 1024

local path = arg[1]
if not path or arg[2] then
  io.stderr:write("usage: lua5.4 examples/cat.lua FILE\n")
  os.exit(2)
end

-- A missing or unreadable file is a failure of the environment: mm.map returns
-- fail, "path: message", code rather than raising.
local m, err = mm.map(path, {mode = "r"})
if not m then
  io.stderr:write("cat.lua: ", err, "\n")
  os.exit(1)
end

m:advise("sequential") -- a hint only; its result does not matter
local len = #m -- 0 for an empty file, which maps and prints nothing
local ok, werr = true, nil
for off = 0, len - 1, CHUNK do
  ok, werr = io.write(m:read(off, math.min(CHUNK, len - off)))
  if not ok then break end
end
m:close()
if ok then ok, werr = io.stdout:flush() end -- the last chunk may still sit in stdout's buffer
if not ok then
  io.stderr:write("cat.lua: write error: ", tostring(werr), "\n")
  os.exit(1)
end
