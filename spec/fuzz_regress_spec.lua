-- Files the fuzzer found crashing memmap3 (spec/fuzz/crashes, see its README):
-- each must now be opened, walked and checked without a crash, a hang or a
-- runaway allocation.
local h = require "helpers"

local dir = "spec/fuzz/crashes"

describe("fuzzer findings", function()
  local files = {}
  local p = io.popen("ls " .. dir .. "/*.mm3 2>/dev/null")
  for f in p:lines() do files[#files + 1] = f end
  p:close()

  it("are all there", function()
    assert.is_true(#files >= 6)
  end)

  for _, file in ipairs(files) do
    it(file:match "[^/]+$" .. " is refused or read cleanly", function()
      local copy = h.tmpname(".mm3")
      h.write_file(copy, h.read_file(file))
      local out, status, err = h.run_lua([[
        local mm = require "memmap3"
        local v = mm.open(..., {readonly = true})
        if v then
          pcall(mm.check, v)
          pcall(mm.totable, v)
          pcall(function() for _ in pairs(v) do end end)
          mm.close(v)
        end
        print("survived")]], {args = {copy}})
      assert.equal(0, status, err)
      assert.equal("survived\n", out)
    end)
  end
end)
