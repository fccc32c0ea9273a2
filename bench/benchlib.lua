--- Timing helpers shared by the benchmarks (bench/*_bench.lua).
--
-- A workload is a function `fn(n)` that performs `n` operations and returns a
-- checksum of what it did, so the two sides of a comparison can be checked to
-- have done the same work. Times are CPU times (os.clock: user + system), and
-- every ratio is measured against its baseline in the same run.
-- @module benchlib
local clock = os.clock
local floor, max, min = math.floor, math.max, math.min
local format = string.format
local rep = string.rep
local write = io.write

local M = {}

--- Seconds a measurement aims for; `calibrate` sizes iterations to reach it.
M.target = tonumber(os.getenv("MM3_BENCH_TARGET")) or 0.3
--- Shortest run `calibrate` trusts to extrapolate from.
M.min_probe = 0.02

--- CPU seconds taken by `fn(n)`, and what it returned.
function M.time(fn, n)
  collectgarbage("collect")
  local t0 = clock()
  local sum = fn(n)
  return clock() - t0, sum
end

--- The number of iterations for which `fn` takes about `target` seconds.
-- Grows a probe run until it is long enough to time, then extrapolates.
function M.calibrate(fn, target)
  target = target or M.target
  local n = 1000
  while true do
    local t = M.time(fn, n)
    if t >= M.min_probe then
      return max(1, floor(n * target / t))
    end
    n = n * (t > 0 and min(100, max(2, floor(M.min_probe * 2 / t))) or 10)
  end
end

--- Time `fn(iterations)` (calibrated to `M.target` when iterations is nil).
-- Returns a result table {ops = operations per second, seconds =, iterations =, sum =}.
function M.measure(fn, iterations)
  iterations = iterations or M.calibrate(fn)
  local t, sum = M.time(fn, iterations)
  if t <= 0 then t = 1e-9 end -- below the clock's resolution; only with tiny explicit counts
  return {ops = iterations / t, seconds = t, iterations = iterations, sum = sum}
end

--- "12.3 M/s", "456 k/s", "78.9 /s".
function M.rate(ops)
  if ops >= 1e9 then return format("%.2f G/s", ops / 1e9) end
  if ops >= 1e6 then return format("%.1f M/s", ops / 1e6) end
  if ops >= 1e3 then return format("%.1f k/s", ops / 1e3) end
  return format("%.1f /s", ops)
end

local function ops_of(r)
  return type(r) == "table" and r.ops or r
end

--- Print a section title.
function M.header(title)
  write("\n", title, "\n", rep("-", #title), "\n")
end

--- Print one row, "name: ours_label X M/s, base_label Y M/s, ratio Z.Zx", and return the ratio.
-- `ours` and `baseline` are `measure` results or plain operations per second.
-- `labels` is {ours = "memmap3", base = "baseline", width = name column width,
-- base_width = baseline label column width}; widths only align the table.
function M.report(name, ours, baseline, labels)
  labels = labels or {}
  local a, b = ops_of(ours), ops_of(baseline)
  local ratio = a / b
  local base = labels.base or "baseline"
  write(format("%-" .. (labels.width or 28) .. "s %s %10s, %-" .. (labels.base_width or #base)
               .. "s %10s, ratio %6.2fx\n", name .. ":", labels.ours or "memmap3", M.rate(a),
               base, M.rate(b), ratio))
  return ratio
end

--- Best of `reps` measurements of each function, interleaved (a, b, a, b...),
-- so that load from other processes on a small machine hurts both sides alike.
-- Returns one `measure` result per function, in order.
function M.best(fns, reps)
  reps = reps or 5
  local n, best = {}, {}
  for i, fn in ipairs(fns) do n[i] = M.calibrate(fn, M.target / reps * 2) end
  for _ = 1, reps do
    for i, fn in ipairs(fns) do
      local r = M.measure(fn, n[i])
      if not best[i] or r.ops > best[i].ops then best[i] = r end
    end
  end
  return table.unpack(best)
end

--- Run both sides with the same `n` and raise unless they return the same checksum:
-- a ratio between two workloads that do different work means nothing.
function M.verify(name, ours, baseline, n)
  n = n or 10000
  local a, b = ours(n), baseline(n)
  if a ~= b then
    error(format("%s: the two sides disagree (checksum %s vs %s)", name, tostring(a), tostring(b)), 2)
  end
  return a
end

return M
