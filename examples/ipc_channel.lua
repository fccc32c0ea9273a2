--- The schema both processes of the IPC example share.
local mm = require "memmap3"
return mm.struct("Channel", {
  { "messages", "u64", atomic = true },
  { "last_message", "string<128>" },
})
