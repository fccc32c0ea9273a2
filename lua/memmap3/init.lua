--- memmap3: files as live, typed, persistent data.
-- @module memmap3
local core = require "memmap3.core"

local M = {}

-- Raw mappings (SPEC §1) come straight from the C module.
M.map = core.map
M.anon = core.anon
M.advice_supported = core.advice_supported
M.strerror = core.strerror
M.version = core.version
M.page_size = core.page_size
M._core = core

return M
