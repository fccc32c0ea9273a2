--- Analytics counters that many processes bump at once:
-- `lua5.4 examples/analytics.lua [FILE] [visits] [new_visitors] [signups]`.
--
-- Atomic fields are lock-free and correct across processes, so any number of
-- web workers can run this against one file.
local mm = require "memmap3"

local Stats = mm.struct("Stats", {
  { "page_views", "u64", atomic = true },
  { "unique_visitors", "u64", atomic = true },
  { "signups", "u64", atomic = true },
  { "peak_concurrent", "u32", atomic = true },
})

local path = arg[1] or "stats.mm3"
local visits = math.tointeger(tonumber(arg[2] or "100"))
local visitors = math.tointeger(tonumber(arg[3] or "10"))
local signups = math.tointeger(tonumber(arg[4] or "1"))
-- (visitors also feed peak_concurrent, a u32: checked before anything is
-- counted, so a bad argument changes nothing)
if not (visits and visitors and signups) or visits < 0 or visitors < 0 or signups < 0
  or visitors > 0xFFFFFFFF then
  io.stderr:write("usage: lua5.4 examples/analytics.lua [FILE [VISITS [VISITORS [SIGNUPS]]]]",
    " (counts: whole numbers >= 0; visitors at most 4294967295)\n")
  os.exit(2)
end
local s, err = mm.open(path, Stats, { create = true })
if not s then
  io.stderr:write("analytics: ", err, "\n")
  os.exit(1)
end

for _ = 1, visits do s.page_views:fetch_add(1) end
s.unique_visitors:fetch_add(visitors)
s.signups:fetch_add(signups)
s.peak_concurrent:fetch_max(visitors)

local views, uniques = s.page_views:load(), s.unique_visitors:load()
-- Conversion rate in basis points (1/100 of a percent), integer arithmetic.
local bps = uniques > 0 and s.signups:load() * 10000 // uniques or 0
print(("page views %d, unique visitors %d, signups %d, conversion %d.%02d%%, peak %d"):format(
  views, uniques, s.signups:load(), bps // 100, bps % 100, s.peak_concurrent:load()))
mm.close(s)
