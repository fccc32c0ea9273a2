--- Process A of an IPC pair: `lua5.4 examples/ipc_writer.lua [FILE] [COUNT]`.
-- Stores a message count (42 by default) that process B reads. From the
-- source tree (ipc_channel.lua is beside it):
--   LUA_PATH="lua/?.lua;lua/?/init.lua;examples/?.lua;;" LUA_CPATH="build/?.so;;" \
--     lua5.4 examples/ipc_writer.lua
local mm = require "memmap3"
local Channel = require "ipc_channel"

local path = arg[1] or "ipc.mm3"
local count = math.tointeger(tonumber(arg[2] or "42"))
if not count or count < 0 then
  io.stderr:write("usage: lua5.4 examples/ipc_writer.lua [FILE [COUNT]] (COUNT: a whole number >= 0)\n")
  os.exit(2)
end
local ch, err = mm.open(path, Channel, { create = true })
if not ch then
  io.stderr:write("ipc_writer: ", err, "\n")
  os.exit(1)
end
ch.last_message = "hello from process A"
ch.messages = count
print(("Stored %d messages."):format(ch.messages:load()))
mm.close(ch)
