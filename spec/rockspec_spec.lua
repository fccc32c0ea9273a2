--- rockspec/memmap3-scm-1.rockspec: it lists what the tree holds, and it installs.
-- The "#luarocks" test builds with `luarocks make` into a temporary tree (offline)
-- and loads the result in a fresh lua5.4; skip it with --exclude-tags=luarocks.

local ROCKSPEC = "rockspec/memmap3-scm-1.rockspec"

local function sh_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Run a shell command; return its output (stdout and stderr), and whether it succeeded.
local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

local function lines(s)
  local t = {}
  for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

-- The repository root: this file's folder's parent, as an absolute path.
local ROOT
do
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  local dir = src:match("^(.*)/spec/[^/]*$") or "."
  local out, ok = run("cd " .. sh_quote(dir) .. " && pwd")
  assert(ok, out)
  ROOT = out:gsub("\n$", "")
end

local function ls(pattern) -- sorted, relative to ROOT
  local out = run("cd " .. sh_quote(ROOT) .. " && ls -1 " .. pattern)
  local t = {}
  for _, l in ipairs(lines(out)) do
    if not l:find("No such file", 1, true) then t[#t + 1] = l end
  end
  table.sort(t)
  return t
end

local function load_rockspec()
  local env = {}
  local chunk = assert(loadfile(ROOT .. "/" .. ROCKSPEC, "t", env))
  chunk()
  return env
end

describe("rockspec", function()
  local rs = load_rockspec()

  it("is a 3.0 builtin rockspec for memmap3 scm-1, tested with busted", function()
    assert.are.equal("3.0", rs.rockspec_format)
    assert.are.equal("memmap3", rs.package)
    assert.are.equal("scm-1", rs.version)
    assert.are.equal("builtin", rs.build.type)
    assert.are.same({type = "busted"}, rs.test)
    assert.are.same({"lua >= 5.4"}, rs.dependencies)
  end)

  it("builds memmap3.core from every src/*.c and nothing else", function()
    local core = rs.build.modules["memmap3.core"]
    assert.is_table(core)
    local listed = {}
    for i, f in ipairs(core.sources) do listed[i] = f end
    table.sort(listed)
    local on_disk = ls("src/*.c")
    assert.is_true(#on_disk > 0)
    assert.are.same(on_disk, listed)
    assert.are.same({"src"}, core.incdirs)
    assert.are.same({"_GNU_SOURCE"}, core.defines)
    assert.are.same({"pthread"}, core.libraries)
  end)

  it("installs every lua/memmap3/*.lua as a module", function()
    local files = ls("lua/memmap3/*.lua")
    assert.is_true(#files > 0)
    local expected = {}
    for _, f in ipairs(files) do
      local name = f:match("^lua/memmap3/(.-)%.lua$")
      expected[name == "init" and "memmap3" or "memmap3." .. name] = f
    end
    local lua_modules = {}
    for name, file in pairs(rs.build.modules) do
      if type(file) == "string" then lua_modules[name] = file end
    end
    assert.are.same(expected, lua_modules)
  end)
end)

describe("luarocks make #luarocks", function()
  local function git_status()
    local out, ok = run("git -C " .. sh_quote(ROOT) .. " status --porcelain")
    return ok and out or nil
  end

  -- What luarocks' builtin backend leaves in the source tree: one .o next to
  -- each C source and memmap3/core.so at the root (both ignored by git).
  local function artifacts()
    local t = {ROOT .. "/memmap3/core.so"}
    for _, src in ipairs(load_rockspec().build.modules["memmap3.core"].sources) do
      t[#t + 1] = ROOT .. "/" .. src:gsub("%.c$", ".o")
    end
    return t
  end

  local function exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
  end

  it("installs into a fresh tree, offline, and the installed module works", function()
    local tree = assert(run("mktemp -d"):match("^(/[^\n]+)"), "mktemp -d failed")
    local before = git_status()
    local preexisting = {}
    for _, a in ipairs(artifacts()) do preexisting[a] = exists(a) end
    local _, had_dir = run("test -d " .. sh_quote(ROOT .. "/memmap3"))
    finally(function()
      for a, was in pairs(preexisting) do
        if not was then os.remove(a) end
      end
      if not had_dir then os.remove(ROOT .. "/memmap3") end -- only if now empty
      run("rm -rf " .. sh_quote(tree))
    end)

    -- --deps-mode=none: never ask a server; the only dependency is Lua itself.
    local out, ok = run("cd " .. sh_quote(ROOT) .. " && luarocks --lua-version=5.4 make --deps-mode=none"
                        .. " --tree=" .. sh_quote(tree) .. " " .. ROCKSPEC)
    assert(ok, "luarocks make failed:\n" .. out)

    -- A fresh interpreter that sees only the tree and the system paths, run from
    -- inside the tree so that "./?.so" cannot pick up a build in the repository.
    local lpath = tree .. "/share/lua/5.4/?.lua;" .. tree .. "/share/lua/5.4/?/init.lua;;"
    local cpath = tree .. "/lib/lua/5.4/?.so;;"
    local script = tree .. "/check.lua"
    local f = assert(io.open(script, "w"))
    f:write([[
local mm = require "memmap3"
local m = assert(mm.anon(4096))
m:write(0, "memmap3")
assert(m:read(0, 7) == "memmap3" and #m == 4096)
m:close()
print(package.searchpath("memmap3", package.path))
print(package.searchpath("memmap3.core", package.cpath))
print("ok")
]])
    f:close()
    out, ok = run("cd " .. sh_quote(tree) .. " && env -u LUA_INIT -u LUA_INIT_5_4 LUA_PATH_5_4="
                  .. sh_quote(lpath) .. " LUA_CPATH_5_4=" .. sh_quote(cpath) .. " LUA_PATH="
                  .. sh_quote(lpath) .. " LUA_CPATH=" .. sh_quote(cpath) .. " lua5.4 check.lua")
    assert(ok, "the installed module failed:\n" .. out)
    local l = lines(out)
    assert.are.equal(tree .. "/share/lua/5.4/memmap3/init.lua", l[1])
    assert.are.equal(tree .. "/lib/lua/5.4/memmap3/core.so", l[2])
    assert.are.equal("ok", l[3])

    -- The working tree is as it was: nothing tracked or untracked changed, and
    -- the build's leftovers are gone once cleaned up.
    for a, was in pairs(preexisting) do
      if not was then os.remove(a) end
      assert.are.equal(was, exists(a))
    end
    if before then assert.are.equal(before, git_status()) end
  end)
end)
