-- Crash torture (SPEC §5): tools/torture.lua kills writers with SIGKILL at
-- random instants; after each kill every acknowledged operation must be in
-- the file and the operation in flight all or nothing (see the tool's header
-- for the workload and how it decides). 50 kills run by default; 1000 with
-- `busted --exclude-tags=none --tags=slow spec/torture_spec.lua`. A third test proves that the
-- verifier can fail: with TORTURE_SABOTAGE=1 the workers run transaction
-- bodies outside any transaction, and the driver must report violations.
local h = require "helpers"
local tmpdir, rmrf = h.tmpdir, h.rmrf

local sh = h.shell_quote

local capture = h.capture

-- Runs the driver (under timeout, which kills its whole process group, the
-- workers included, if it hangs); returns its figures, exit status and output.
local function torture(kills, seed, dir, timeout, env)
  local cmd = ("%s MM3_BUILD=%s timeout -s KILL %d %s tools/torture.lua %d %d %s 2>&1"):format(
    env or "", sh(h.build), timeout, sh(h.lua), kills, seed, sh(dir))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, how, code = p:close()
  local status = how == "signal" and 128 + code or code
  local k, m, v = out:match("kills (%d+), operations verified (%d+), violations (%d+)%s*$")
  return {kills = tonumber(k), ops = tonumber(m), violations = tonumber(v), status = status, out = out}
end

local function run(kills, timeout)
  local dir = tmpdir()
  finally(function() rmrf(dir) end)
  local seed = os.time()
  local t0 = os.time()
  local r = torture(kills, seed, dir, timeout)
  local tail = r.out:sub(-3000)
  assert.is_truthy(r.kills, ("no summary line (seed %d, status %d):\n%s"):format(seed, r.status, tail))
  assert.are.equal(0, r.violations, ("seed %d:\n%s"):format(seed, tail))
  assert.are.equal(0, r.status, ("seed %d:\n%s"):format(seed, tail))
  assert.is_true(r.kills >= kills, tail)
  assert.is_true(r.ops > kills, tail)
  -- nothing left behind by the driver (its data files, acknowledgements)
  assert.are.equal("", capture("ls -A " .. sh(dir)))
  print(("\n    seed %d: %s (%d s)"):format(seed, r.out:match("([^\n]*)\n?$"), os.time() - t0))
end

describe("crash torture", function()
  after_each(h.cleanup)

  it("50 kills -9 at random instants: every acknowledged operation survives, every operation is "
    .. "all or nothing", function()
    run(50, 110)
  end)

  it("#slow 1000 kills -9 at random instants: every acknowledged operation survives, all or nothing",
    function()
    run(1000, 3600)
  end)

  it("the verifier reports a transaction left half done (workers sabotaged to write outside transactions)",
    function()
    local dir = tmpdir()
    finally(function() rmrf(dir) end)
    local r = torture(10, 1, dir, 100, "TORTURE_SABOTAGE=1")
    assert.is_truthy(r.kills, r.out)
    assert.is_true(r.violations > 0, r.out)
    assert.are.equal(1, r.status, r.out)
    assert.is_truthy(r.out:find("neither absent nor complete", 1, true), r.out)
  end)
end)
