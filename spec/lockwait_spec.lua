-- A waiter for the file's lock never sleeps on while the lock is free
-- (SPEC §5: the lock survives holders that died; here, waiters that died).
-- A robust mutex without priority inheritance wakes one waiter at an
-- unlock; if that one is killed before it takes the lock, an untimed wait
-- left the others asleep for ever (2 rounds in 100 of spec/lockwait.sh).
-- memmap3's waits look again every 100 ms. About a minute: on demand,
-- `busted --exclude-tags=none --tags=slow spec/lockwait_spec.lua`.
local h = require "helpers"

describe("the file's lock", function()
  it("#slow a waiter gets the lock once it is free, whatever the waiters killed around it did", function()
    local cmd = ("%s LUA=%s bash spec/lockwait.sh 25 2>&1"):format(h.child_env(), h.shell_quote(h.lua))
    local out = h.capture(cmd)
    assert.matches("\n?0 of 25 rounds left B asleep with the lock free\n?$", out)
  end)
end)
