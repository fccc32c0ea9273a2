--- A transaction of 10 field writes against the same 10 writes without one,
-- in the same run (issue #5: target within 3x, not durable).
local mm = require "memmap3"
local bench = require "benchlib"

local fields = {}
for i = 1, 10 do fields[i] = { "f" .. i, "i64" } end
local S = mm.struct("TxnBench", fields)

local path = os.tmpname()
os.remove(path)
local s = assert(mm.create(path, S))

local function plain(n)
  for i = 1, n do
    s.f1 = i; s.f2 = i; s.f3 = i; s.f4 = i; s.f5 = i
    s.f6 = i; s.f7 = i; s.f8 = i; s.f9 = i; s.f10 = i
  end
  return s.f10
end

local i = 0
local function body(v)
  v.f1 = i; v.f2 = i; v.f3 = i; v.f4 = i; v.f5 = i
  v.f6 = i; v.f7 = i; v.f8 = i; v.f9 = i; v.f10 = i
end

local function txn(n)
  for k = 1, n do
    i = k
    mm.transaction(s, body)
  end
  return s.f10
end

local ok, err = pcall(function()
  bench.verify("txn", txn, plain, 1000)
  bench.header("transaction of 10 field writes (ops = transactions or groups of 10 writes per second)")
  local t, p = bench.best({ txn, plain })
  local r = bench.report("10 writes in a transaction", t, p, { base = "10 plain writes", width = 30 })
  print(("\nsummary\n  transaction / plain time    %.2fx  target <= 3x  %s"):format(1 / r,
    1 / r <= 3 and "met" or "MISSED"))
end)
mm.close(s)
os.remove(path)
if not ok then error(err, 0) end
