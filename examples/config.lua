--- Configuration that survives a restart: `lua5.4 examples/config.lua [FILE] [key=value ...]`.
--
-- Run it once with settings, then again without: the values are still there.
--   lua5.4 examples/config.lua app.mm3 max_connections=200 server_name=edge-1
--   lua5.4 examples/config.lua app.mm3
local mm = require "memmap3"

local Config = mm.struct("Config", {
  { "max_connections", "u32" },
  { "timeout_ms", "u32" },
  { "server_name", "string<64>" },
})

local path = arg[1] or "config.mm3"
local cfg, err = mm.open(path, Config, { create = true })
if not cfg then
  io.stderr:write("config: ", err, "\n")
  os.exit(1)
end
if cfg.max_connections == 0 then -- a new file: defaults
  cfg.max_connections, cfg.timeout_ms, cfg.server_name = 100, 5000, "localhost"
end

for i = 2, #arg do
  local k, v = arg[i]:match "^([%w_]+)=(.*)$"
  if not k then
    io.stderr:write("config: expected key=value, got ", arg[i], "\n")
    os.exit(2)
  end
  -- Bad input raises with the field's name and leaves the old value.
  local ok, e = pcall(function() cfg[k] = math.tointeger(tonumber(v)) or v end)
  if not ok then
    io.stderr:write("config: ", e, "\n")
    os.exit(1)
  end
end

for name, value in pairs(cfg) do print(("%-16s %s"):format(name, value)) end
mm.close(cfg)
