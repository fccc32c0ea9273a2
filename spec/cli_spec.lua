-- The memmap3 command: info and dump read any file without its code.
local mm = require "memmap3"
local h = require "helpers"

local function sh(cmd)
  local env = string.format("LUA_INIT= LUA_PATH=%s LUA_CPATH=%s ",
    h.shell_quote("lua/?.lua;lua/?/init.lua;;"), h.shell_quote(h.build .. "/?.so;;"))
  local errf = h.tmpname()
  local p = assert(io.popen(env .. cmd .. " 2>" .. h.shell_quote(errf)))
  local out = p:read("a")
  local _, _, status = p:close()
  return out, status, h.read_file(errf) or ""
end

local function memmap3(args) return sh(h.shell_quote(h.lua) .. " bin/memmap3 " .. args) end

describe("memmap3 command", function()
  after_each(h.cleanup)

  local Item = mm.struct("Item", { { "name", "string<8>" }, { "count", "u16" } })
  local Rec = mm.struct("Rec", {
    { "id", "u64" },
    { "hits", "u32", atomic = true },
    { "tag", mm.enum("Tag", "u8", { "red", "green" }) },
    { "items", mm.array(Item, 2) },
    { "big", "u128" },
    { "ratio", "f64" },
    { "note", "string<16>" },
  })

  local function make_file()
    local p = h.missing_path()
    local r = assert(mm.create(p, Rec))
    r.id = -1 -- u64 max, printed unsigned
    r.hits = 7
    r.tag = "green"
    r.items[2] = { name = "key", count = 3 }
    r.big = "340282366920938463463374607431768211455"
    r.ratio = 0.25
    r.note = 'say "hi"\n'
    mm.close(r)
    return p
  end

  it("info shows the header, the root and the schema", function()
    local p = make_file()
    local out, status = memmap3("info " .. h.shell_quote(p))
    assert.equal(0, status)
    assert.matches("format version: 1", out, 1, true)
    assert.matches("root:           Rec, " .. Rec.size .. " bytes", out, 1, true)
    assert.matches("struct Rec{id:u64;hits:atomic<u32>;tag:Tag;", out, 1, true)
    assert.matches("enum Tag:u8{red,green}", out, 1, true)
    assert.matches("fingerprint:    %x+", out)
  end)

  it("dump prints every field in declaration order", function()
    local p = make_file()
    local out, status = memmap3("dump " .. h.shell_quote(p))
    assert.equal(0, status)
    assert.matches("id = 18446744073709551615", out, 1, true)
    assert.matches("hits = 7", out, 1, true)
    assert.matches('tag = "green"', out, 1, true)
    assert.matches('name = "key"', out, 1, true)
    assert.matches("big = 340282366920938463463374607431768211455", out, 1, true)
    assert.is_true(out:find("id =", 1, true) < out:find("note =", 1, true))
  end)

  it("dump --json is valid JSON with exact values", function()
    local p = make_file()
    local out, status = memmap3("dump --json " .. h.shell_quote(p))
    assert.equal(0, status, "dump --json failed")
    -- cjson is a test dependency; parse and check the values
    local cjson = require "cjson"
    local ok, v = pcall(cjson.decode, (out:gsub("340282366920938463463374607431768211455", "0")
      :gsub("18446744073709551615", "1")))
    assert.is_true(ok, tostring(v))
    assert.equal(1, v.id)
    assert.equal(7, v.hits)
    assert.equal("green", v.tag)
    assert.equal("key", v.items[2].name)
    assert.equal(3, v.items[2].count)
    assert.equal(0.25, v.ratio)
    assert.equal('say "hi"\n', v.note)
    assert.matches('"big": 340282366920938463463374607431768211455', out, 1, true)
  end)

  it("refuses what is not a memmap3 file, with a message and exit status 1", function()
    local p = h.tmpfile("just some text, no magic here")
    local out, status, err = memmap3("info " .. h.shell_quote(p))
    assert.equal(1, status)
    assert.equal("", out)
    assert.matches("not a memmap3 file", err, 1, true)
    local _, status2, err2 = memmap3("dump " .. h.shell_quote(h.missing_path()))
    assert.equal(1, status2)
    assert.matches("No such file", err2, 1, true)
  end)

  it("answers usage errors with exit status 2", function()
    local _, status, err = memmap3("frobnicate x")
    assert.equal(2, status)
    assert.matches("unknown command 'frobnicate'", err, 1, true)
    local _, status2 = memmap3("")
    assert.equal(2, status2)
    local out3, status3 = memmap3("help")
    assert.equal(0, status3)
    assert.matches("dump [--json] FILE", out3, 1, true)
  end)
end)
