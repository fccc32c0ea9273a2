--- Process A of an IPC pair: `lua5.4 examples/ipc_writer.lua [FILE] [COUNT]`.
-- Stores a message count (42 by default) that process B reads.
local mm = require "memmap3"
local Channel = require "ipc_channel"

local path = arg[1] or "ipc.mm3"
local ch, err = mm.open(path, Channel, { create = true })
if not ch then
  io.stderr:write("ipc_writer: ", err, "\n")
  os.exit(1)
end
ch.last_message = "hello from process A"
ch.messages = math.tointeger(tonumber(arg[2] or "42"))
print(("Stored %d messages."):format(ch.messages:load()))
mm.close(ch)
