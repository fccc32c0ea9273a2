--- Process B of an IPC pair: `lua5.4 examples/ipc_reader.lua [FILE]`.
-- Opens the file process A wrote and prints its message count.
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
