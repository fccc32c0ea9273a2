--- Fixtures shared by every spec: temporary files that are always removed,
-- file contents, child lua5.4 processes and what /proc says about a mapping.
--
-- Temporary paths are kept in a registry until `M.cleanup()` removes them.
-- Every spec that uses them calls it after each test:
--
--     local h = require "helpers"
--     describe("...", function()
--       after_each(h.cleanup)
--       it("...", function() local p = h.tmpname() ... end)
--     end)
--
-- (busted's `after_each` is not visible from a required module, so the spec
-- registers it; a finaliser on the registry also removes leftovers when the
-- Lua state closes, in case a spec forgets.)
local io_open, io_lines, io_popen = io.open, io.lines, io.popen
local os_getenv, os_remove, os_tmpname = os.getenv, os.remove, os.tmpname
local string_rep, string_format = string.rep, string.format
local string_char, table_concat = string.char, table.concat
local tostring, tonumber, type, error, setmetatable = tostring, tonumber, type, error, setmetatable
local ipairs, assert = ipairs, assert

local M = {}

--- Build directory holding memmap3/core.so (env MM3_BUILD, default "build").
M.build = os_getenv("MM3_BUILD") or "build"
--- The interpreter for child processes (env LUA, default "lua5.4").
M.lua = os_getenv("LUA") or "lua5.4"

-- ---------------------------------------------------------------------------
-- Temporary paths

local registry = setmetatable({}, {
  __gc = function(t) for i = #t, 1, -1 do os_remove(t[i]) end end,
})

--- Register an existing path for removal by `M.cleanup()`. Returns it.
function M.remove_later(path)
  registry[#registry + 1] = path
  return path
end

--- A fresh temporary path (the file exists, empty, as os.tmpname makes it),
-- removed by the next `M.cleanup()`. `suffix` names a companion path
-- (path .. suffix) that does not exist yet and is removed as well.
function M.tmpname(suffix)
  local p = os_tmpname()
  M.remove_later(p)
  if suffix then
    p = p .. suffix
    M.remove_later(p)
  end
  return p
end

--- A temporary path that does not exist (for "missing file" and `create`).
function M.missing_path()
  return M.tmpname(".missing")
end

--- Remove every registered path; returns how many were registered.
-- Missing files are fine (a test may have removed them already).
function M.cleanup()
  local n = #registry
  for i = n, 1, -1 do
    os_remove(registry[i])
    registry[i] = nil
  end
  return n
end

--- Number of paths waiting for cleanup (lets a spec check the registry).
function M.pending()
  return #registry
end

-- ---------------------------------------------------------------------------
-- File contents

--- Write `content` to `path`: a string is written as is, an integer n writes
-- n zero bytes. Returns path.
function M.write_file(path, content)
  if type(content) == "number" then content = string_rep("\0", content) end
  local f = assert(io_open(path, "wb"))
  assert(f:write(content))
  assert(f:close())
  return path
end

--- A temporary file holding `content` (string, or a size in zero bytes).
function M.tmpfile(content)
  return M.write_file(M.tmpname(), content or "")
end

--- The whole content of `path`, or `len` bytes from 0-based `offset`.
function M.read_file(path, offset, len)
  local f = assert(io_open(path, "rb"))
  if offset then assert(f:seek("set", offset)) end
  local s = f:read(len or "a")
  f:close()
  return s or ""
end

--- Size of `path` in bytes (nil if it does not exist).
function M.file_size(path)
  local f = io_open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end

--- n bytes counting up from `start` (default 0), wrapping at 256:
-- a pattern in which every byte says where it is.
function M.bytes(n, start)
  local t = {}
  start = start or 0
  for i = 1, n do t[i] = string_char((start + i - 1) % 256) end
  return table_concat(t)
end

-- ---------------------------------------------------------------------------
-- Child processes

--- Run a shell command; returns what it printed on stdout.
function M.capture(cmd)
  local p = assert(io_popen(cmd))
  local s = p:read("a")
  p:close()
  return s
end

--- Whether the text out has a line exactly equal to line.
function M.has_line(out, line)
  for l in out:gmatch("[^\n]+") do
    if l == line then return true end
  end
  return false
end

--- Quote a string for /bin/sh.
function M.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The environment assignments (for `env`, or before a command) under which
-- a child lua5.4 finds memmap3 in this tree's lua/, spec/ and build directory,
-- from any directory (absolute paths); LUA_INIT is neutralised.
function M.child_env()
  local root = M.cwd()
  return string_format("LUA_INIT= LUA_INIT_5_4= LUA_PATH=%s LUA_CPATH=%s",
    M.shell_quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;;"),
    M.shell_quote((M.build:sub(1, 1) == "/" and "" or root .. "/") .. M.build .. "/?.so;;"))
end

-- `timeout -s KILL seconds env ENV lua5.4 script args...` with each argument quoted.
local function lua_command(script, args, seconds)
  local quoted = {}
  for i, a in ipairs(args or {}) do quoted[i] = M.shell_quote(a) end
  return string_format("timeout -s KILL %d env %s %s %s %s", seconds, M.child_env(), M.shell_quote(M.lua),
    M.shell_quote(script), table_concat(quoted, " "))
end

--- Start the Lua script at path in the background (a lua5.4 that finds
-- memmap3), killed after opts.timeout seconds (120). Returns an io.popen
-- handle: read("a") gives its stdout and stderr, close() waits for it.
function M.spawn_lua(script, args, opts)
  return assert(io_popen(lua_command(script, args, opts and opts.timeout or 120) .. " 2>&1", "r"))
end

--- Run the script `code` in one process per argument list, all at once
-- (written to dir/worker.lua); wait for all, check that each exited 0 and
-- printed something starting with "done", and return what each printed.
function M.run_together(dir, code, arglists)
  local script = dir .. "/worker.lua"
  M.write_file(script, code)
  local procs, outs = {}, {}
  for i, args in ipairs(arglists) do procs[i] = M.spawn_lua(script, args, { timeout = 300 }) end
  for i = 1, #procs do
    outs[i] = procs[i]:read("a")
    local ok, how, c = procs[i]:close()
    assert(ok, string_format("worker %d: %s %s: %s", i, tostring(how), tostring(c), outs[i]))
    assert(outs[i]:match("^done"), string_format("worker %d: %s", i, outs[i]))
  end
  return outs
end

--- Run Lua `code` in a fresh `lua5.4` process that finds memmap3 in lua/ and
-- the build directory (M.child_env).
-- opts.args: list of arguments (available as `...` and `arg`);
-- opts.timeout: seconds before it is killed (600);
-- opts.redirect: raw shell redirections appended to the command, e.g.
--   "3<>" .. h.shell_quote(path) to hand the child descriptor 3.
-- Returns stdout, status, stderr: status is the exit code, or 128 + the
-- signal number when the child was killed (as sh reports it).
function M.run_lua(code, opts)
  opts = opts or {}
  local script = os_tmpname()
  local errfile = os_tmpname()
  local f = assert(io_open(script, "wb"))
  f:write(code)
  f:close()
  local cmd = string_format("%s 2>%s %s", lua_command(script, opts.args, opts.timeout or 600),
    M.shell_quote(errfile), opts.redirect or "")
  local p = assert(io_popen(cmd, "r"))
  local out = p:read("a")
  local _, how, code_or_sig = p:close()
  local err = M.read_file(errfile)
  os_remove(script)
  os_remove(errfile)
  local status = how == "signal" and 128 + code_or_sig or code_or_sig
  return out, status, err
end

-- ---------------------------------------------------------------------------
-- What the kernel says about our mappings

--- The address a light userdata (m:ptr()) points to, as an integer.
function M.address(p)
  local hex = tostring(p):match("0x(%x+)") or tostring(p):match(": (%x+)$")
  if not hex then error("no address in " .. tostring(p)) end
  return tonumber(hex, 16)
end

--- The /proc/self/smaps entry of the mapping that contains address `addr`
-- (an integer or a light userdata), or nil if nothing is mapped there:
-- { start, stop, perms, path, rss_kb, locked_kb, size_kb, flags = {nr = true, ...} }.
function M.mapping_at(addr)
  if type(addr) ~= "number" then addr = M.address(addr) end
  local cur
  for line in io_lines("/proc/self/smaps") do
    local s, e, perms, rest = line:match("^(%x+)%-(%x+) (%S+) %S+ %S+ %S+%s*(.*)$")
    if s then
      if cur then return cur end
      s, e = tonumber(s, 16), tonumber(e, 16)
      if s <= addr and addr < e then
        cur = {start = s, stop = e, perms = perms, path = rest, flags = {}}
      end
    elseif cur then
      local key, kb = line:match("^(%w+):%s+(%d+) kB")
      if key == "Rss" then cur.rss_kb = tonumber(kb)
      elseif key == "Locked" then cur.locked_kb = tonumber(kb)
      elseif key == "Size" then cur.size_kb = tonumber(kb)
      end
      local flags = line:match("^VmFlags:%s*(.*)$")
      if flags then
        for fl in flags:gmatch("%S+") do cur.flags[fl] = true end
      end
    end
  end
  return cur
end

--- True if /proc/self/maps lists a mapping of the file `path`.
function M.is_mapped(path)
  for line in io_lines("/proc/self/maps") do
    local p = line:match("^%S+ %S+ %S+ %S+ %S+%s+(.+)$")
    if p == path then return true end
  end
  return false
end

--- A field of /proc/self/status in kB (e.g. "VmLck"), as an integer.
function M.status_kb(field)
  for line in io_lines("/proc/self/status") do
    local kb = line:match("^" .. field .. ":%s+(%d+) kB")
    if kb then return tonumber(kb) end
  end
  return nil
end

--- True when AddressSanitizer is preloaded (make sanitize), which turns
-- some system calls (mlock, munlock) into no-ops.
function M.under_asan()
  return (os_getenv("LD_PRELOAD") or ""):find("libasan", 1, true) ~= nil
end

--- Contents of a small /proc or /sys file, or nil.
function M.read_sys(path)
  local f = io_open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- ---------------------------------------------------------------------------
-- Shared by the specs (one copy of what each used to define for itself)

--- A fresh temporary directory /tmp/mm3<tag>.XXXXXX; remove it with M.rmrf.
function M.tmpdir(tag)
  local p = assert(io_popen("mktemp -d /tmp/mm3" .. (tag or "spec") .. ".XXXXXX"))
  local d = p:read("l")
  p:close()
  assert(d and d ~= "", "mktemp -d failed")
  return d
end

--- Remove a directory made by M.tmpdir (and only such a directory).
function M.rmrf(d)
  if d and d:match("^/tmp/mm3") then os.execute("rm -rf " .. M.shell_quote(d)) end
end

--- The current directory.
function M.cwd()
  local p = assert(io_popen("pwd"))
  local d = p:read("l")
  p:close()
  return d
end

--- Call fn(...) and check that it raises an error whose message contains
-- every phrase (plain text; one string or a list). Returns the message.
function M.raises(phrases, fn, ...)
  local args = table.pack(...)
  local ok, err = pcall(fn, table.unpack(args, 1, args.n))
  assert(not ok, "expected an error, got success")
  err = tostring(err)
  if type(phrases) == "string" then phrases = {phrases} end
  for _, p in ipairs(phrases) do
    assert(err:find(p, 1, true), string_format("error %q does not contain %q", err, p))
  end
  return err
end

return M
