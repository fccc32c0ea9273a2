--- Process B of an IPC pair: `lua5.4 examples/ipc_reader.lua [FILE]`.
-- Opens the file process A wrote and prints its message count. From the
-- source tree (ipc_channel.lua is beside it):
--   LUA_PATH="lua/?.lua;lua/?/init.lua;examples/?.lua;;" LUA_CPATH="build/?.so;;" \
--     lua5.4 examples/ipc_reader.lua
local mm = require "memmap3"
local Channel = require "ipc_channel"

local path = arg[1] or "ipc.mm3"
local ch, err = mm.open(path, Channel)
if not ch then
  io.stderr:write("ipc_reader: ", err, "\n")
  os.exit(1)
end
print(("Messages: %d"):format(ch.messages:load()))
print(("Last: %s"):format(ch.last_message))
mm.close(ch)
