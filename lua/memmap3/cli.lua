--- The `memmap3` command: look inside memmap3 files without their code.
-- @module memmap3.cli
local mm = require "memmap3"

local format, concat, rep = string.format, table.concat, string.rep
local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local pcall, math_type, math_ult, utf8_len, sort = pcall, math.type, math.ult, utf8.len, table.sort

local M = {}

local USAGE = [[
usage: memmap3 <command> [args]
  info FILE            header, schema and sizes
  dump [--json] FILE   contents (Lua-like text, or JSON)
  check FILE           verify every invariant
  cheader SCHEMA.lua NAME [-o OUT]
                       a C header whose structs match the layout of the root
                       type NAME of the schema module SCHEMA.lua
  help, --help, -h     this text
Each command takes exactly one FILE; `--` ends the options.
JSON: a byte that is not valid UTF-8 in a string becomes U+FFFD; inf, -inf
and NaN become null; a value<N> table that is not a sequence and has a
non-string key becomes a list of [key, value] pairs.
exit status: 0 success, 1 damaged or unreadable file (or other failure),
2 usage error, 3 a process died writing the file (no damage: its work is
rolled back by the next read-write open, which info, dump and check are not),
4 other processes wrote the file throughout (no verdict: try again)]]

-- ---------------------------------------------------------------------------
-- Rendering values in declaration order, guided by the type
-- ---------------------------------------------------------------------------

-- Bytes that are not valid UTF-8 become U+FFFD, one each: JSON text must be UTF-8.
local function valid_utf8(s)
  if utf8_len(s) then return s end
  local parts, i = {}, 1
  while i <= #s do
    local n, bad = utf8_len(s, i)
    if n then
      parts[#parts + 1] = s:sub(i)
      break
    end
    parts[#parts + 1] = s:sub(i, bad - 1)
    parts[#parts + 1] = "\u{FFFD}"
    i = bad + 1
  end
  return concat(parts)
end

local function json_string(s)
  return '"' .. valid_utf8(s):gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\"
    elseif c == "\n" then return "\\n" elseif c == "\t" then return "\\t" end
    return format("\\u%04x", c:byte())
  end) .. '"'
end

local function hex(s)
  return (s:gsub(".", function(c) return format("%02x", c:byte()) end))
end

-- The shortest of %.14g .. %.17g that reads back as the same number, with a
-- ".0" on whole numbers so that they read back as floats. nil for inf and NaN.
local function float_str(x)
  if x ~= x or x == math.huge or x == -math.huge then return nil end
  local s
  for digits = 14, 17 do
    s = format("%." .. digits .. "g", x)
    if tonumber(s) == x then break end
  end
  if not s:find "[^%d%-]" then s = s .. ".0" end
  return s
end

-- Lua text for inf and NaN: expressions that read back as them.
local function float_lua(x)
  return float_str(x) or (x ~= x and "0/0") or (x > 0 and "1/0" or "-1/0")
end

local function unsigned(t)
  return t and t.kind == "prim" and (t.name == "u64" or t.name == "usize")
end

local function wide(t)
  return t and t.kind == "prim" and (t.name == "u128" or t.name == "i128")
end

-- An integer's exact decimal; u64 and usize above 2^63 read as negative.
local function int_str(v, t)
  if unsigned(t) and v < 0 then return format("%u", v) end
  return format("%d", v)
end

-- Lua's %q, but a newline as \n rather than a backslash and a line break.
local function lua_string(s)
  return (format("%q", s):gsub("\\\n", "\\n"))
end

local function scalar_json(v, t)
  if v == nil then return "null" end
  if type(v) == "string" then
    if t and t.kind == "bytes" then return '"' .. hex(v) .. '"' end
    if wide(t) then return v end -- exact digits: JSON numbers have no width
    return json_string(v)
  elseif math_type(v) == "integer" then
    return int_str(v, t)
  elseif math_type(v) == "float" then
    return float_str(v) or "null"
  end
  return tostring(v)
end

local function scalar_lua(v, t)
  if v == nil then return "nil" end
  if type(v) == "string" then
    if wide(t) then return v end
    return lua_string(v)
  elseif math_type(v) == "integer" then
    return int_str(v, t)
  elseif math_type(v) == "float" then
    return float_lua(v)
  end
  return tostring(v)
end

-- A map key as a JSON object key: strings as they are, bytes in hex,
-- integers in exact decimal.
local function key_json(k, t)
  if type(k) == "string" then
    if t and t.kind == "bytes" then return '"' .. hex(k) .. '"' end
    return json_string(k)
  end
  return json_string(scalar_lua(k, t))
end

-- Map keys in order: u64 and usize unsigned. (Keys are never 128-bit.)
local function key_order(t)
  if unsigned(t) then return math_ult end
  return function(a, b) return a < b end
end


local render_any

local function render(v, t, json, indent, out)
  local pad = rep("  ", indent + 1)
  if v == nil then
    out[#out + 1] = json and "null" or "nil"
  elseif t.kind == "struct" then
    out[#out + 1] = json and "{\n" or (t.name .. " {\n")
    for i, f in ipairs(t.fields) do
      out[#out + 1] = pad .. (json and json_string(f.name) .. ": " or f.name .. " = ")
      render(v[f.name], f.type, json, indent + 1, out)
      out[#out + 1] = (i < #t.fields or not json) and ",\n" or "\n"
    end
    out[#out + 1] = rep("  ", indent) .. "}"
  elseif t.kind ~= "map" and not mm._through_cell(t) then -- arrays, sequences
    local n = t.kind == "array" and t.n or #v
    out[#out + 1] = json and "[" or "{"
    local simple = t.elem.kind ~= "struct" and t.elem.kind ~= "array"
    for i = 1, n do
      if not simple then out[#out + 1] = "\n" .. pad end
      render(v[i], t.elem, json, indent + 1, out)
      if i < n then out[#out + 1] = simple and ", " or "," end
    end
    if not simple and n > 0 then out[#out + 1] = "\n" .. rep("  ", indent) end
    out[#out + 1] = json and "]" or "}"
  elseif t.kind == "map" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    sort(keys, key_order(t.key))
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      out[#out + 1] = "\n" .. pad
      out[#out + 1] = json and key_json(k, t.key) .. ": " or "[" .. scalar_lua(k, t.key) .. "] = "
      render(v[k], t.elem, json, indent + 1, out)
      if i < #keys or not json then out[#out + 1] = "," end
    end
    if #keys > 0 then out[#out + 1] = "\n" .. rep("  ", indent) end
    out[#out + 1] = "}"
  elseif t.kind == "value" then
    out[#out + 1] = render_any(v, json, indent)
  else
    out[#out + 1] = (json and scalar_json or scalar_lua)(v, t)
  end
end

-- Keys of a value<N> table in a stable order: numbers, strings, booleans, the rest.
local RANK = { number = 1, string = 2, boolean = 3 }
local function any_key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    local ra, rb = RANK[ta] or 4, RANK[tb] or 4
    if ra ~= rb then return ra < rb end
    return ta < tb
  end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return b and not a end
  return tostring(a) < tostring(b)
end

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch "%a+" do KEYWORDS[w] = true end

--- Render any plain Lua value (a value<N> field's contents).
-- JSON: a sequence (keys 1..n) is an array, a table whose keys are all
-- strings an object, any other table a list of [key, value] pairs.
function render_any(v, json, indent)
  indent = indent or 0
  if type(v) ~= "table" then return (json and scalar_json or scalar_lua)(v, nil) end
  local n = 0
  while v[n + 1] ~= nil do n = n + 1 end
  local keys, strings = {}, true
  for k in pairs(v) do
    if not (math_type(k) == "integer" and k >= 1 and k <= n) then
      keys[#keys + 1] = k
      if type(k) ~= "string" then strings = false end
    end
  end
  sort(keys, any_key_less)
  local parts = {}
  if json and #keys == 0 then
    for i = 1, n do parts[i] = render_any(v[i], json, indent + 1) end
    return "[" .. concat(parts, ", ") .. "]"
  elseif json and strings and n == 0 then
    for i, k in ipairs(keys) do parts[i] = json_string(k) .. ": " .. render_any(v[k], json, indent + 1) end
    return "{" .. concat(parts, ", ") .. "}"
  elseif json then -- [[key, value], ...]: no key is lost or merged with another
    for i = 1, n do parts[i] = "[" .. i .. ", " .. render_any(v[i], json, indent + 1) .. "]" end
    for _, k in ipairs(keys) do
      local kv = render_any(k, json, indent + 1) .. ", " .. render_any(v[k], json, indent + 1)
      parts[#parts + 1] = "[" .. kv .. "]"
    end
    return "[" .. concat(parts, ", ") .. "]"
  end
  for i = 1, n do parts[i] = render_any(v[i], json, indent + 1) end
  for _, k in ipairs(keys) do
    local key = type(k) == "string" and k:match "^[%a_][%w_]*$" and not KEYWORDS[k] and k .. " = "
      or "[" .. render_any(k, false, indent + 1) .. "] = "
    parts[#parts + 1] = key .. render_any(v[k], json, indent + 1)
  end
  return "{" .. concat(parts, ", ") .. "}"
end
M.render_any = render_any

--- Render a plain value (from mm.totable) of type t as text or JSON.
function M.render(v, t, json)
  local out = {}
  render(v, t, json, 0, out)
  return concat(out)
end

-- ---------------------------------------------------------------------------
-- Commands: each takes (out, path, options) and returns true, or nil and a
-- message; an error it raises is reported the same way (exit status 1).
-- ---------------------------------------------------------------------------

local function open(path)
  return mm.open(path, { readonly = true })
end

local commands = {}
-- The options each command takes.
-- Each command's options: true for a flag, "value" for one followed by a
-- value. The FILE commands take exactly one FILE; cheader SCHEMA.lua [NAME].
local FILE_CMD = { npos = { 1, 1 }, file = true }
local OPTIONS = {
  info = FILE_CMD,
  dump = { ["--json"] = true, npos = { 1, 1 }, file = true },
  check = FILE_CMD,
  cheader = {
    ["-o"] = "value", npos = { 1, 2 },
    few = "cheader needs a SCHEMA.lua (and the NAME of its root type)",
    many = "cheader takes SCHEMA.lua NAME [-o OUT]",
  },
}

-- The arguments after the command: its positional ones and its options, which
-- may stand anywhere ("dump --json FILE" too); "--" ends the options. nil and
-- a usage message for an unknown option or a missing value.
local function parse_args(cmd, args)
  local spec, pos, opts, only_files = OPTIONS[cmd], {}, {}, false
  local i = 2
  while i <= #args do
    local a = args[i]
    if only_files or a == "-" or a:sub(1, 1) ~= "-" then
      pos[#pos + 1] = a
    elseif a == "--" then
      only_files = true
    elseif spec[a] == "value" then
      if not args[i + 1] then return nil, a .. " needs a file name" end
      opts[a], i = args[i + 1], i + 1
    elseif spec[a] == true then
      opts[a] = true
    else
      return nil, cmd .. ": unknown option " .. a
    end
    i = i + 1
  end
  return pos, opts
end

function commands.info(out, path)
  local v <close>, err, code = open(path)
  if not v then return nil, err, code end
  local i = mm.info(v)
  out(format("file:           %s", path))
  out(format("format version: %d", i.format_version))
  out(format("file size:      %d bytes", i.size))
  out(format("root:           %s, %d bytes at offset %d", mm.schema(v).canon, i.root_size, i.root_offset))
  out(format("fingerprint:    %s", i.fingerprint))
  if i.heap then
    out(format("heap:           %d bytes: %d in use, %d free for reuse, %d undo log%s", i.heap, i.heap_used,
      i.heap_free, i.log, i.heap_leaked > 0 and format(", %d leaked", i.heap_leaked) or ""))
  end
  out("schema:")
  for line in i.schema:gmatch "[^\n]+" do out("  " .. line) end
  return true
end

function commands.dump(out, path, opts)
  local v <close>, err, code = open(path)
  if not v then return nil, err, code end
  local t, data = mm.schema(v), mm.totable(v)
  if mm._through_cell(t) then data = data.value end
  out(M.render(data, t, opts["--json"]))
  return true
end

function commands.check(out, path)
  local ok, err, code = mm.check(path)
  if not ok then return nil, err, code end
  out(path .. ": ok")
  return true
end

-- cheader SCHEMA.lua [NAME] [-o OUT]
function commands.cheader(out, pos, opts)
  local dest = opts["-o"]
  -- The schema module may require its neighbours.
  local dir = pos[1]:match "^(.*)/[^/]*$"
  local saved = package.path
  if dir then package.path = dir .. "/?.lua;" .. package.path end
  local text, err, code = require("memmap3.cheader").from_file(pos[1], pos[2]) -- catches its errors
  package.path = saved
  if not text then return nil, err, code end -- (code "usage": a table of named types and no NAME)
  if not dest then
    out((text:gsub("\n$", "")))
    return true
  end
  -- Written aside, then renamed: make never sees half a header.
  local tmp = dest .. ".tmp"
  local f, ferr = io.open(tmp, "wb")
  local ok, werr, cok, cerr, rok, rerr = f ~= nil, ferr, true, nil, true, nil
  if f then
    ok, werr = f:write(text)
    cok, cerr = f:close()
    if ok and cok then rok, rerr = os.rename(tmp, dest) end
    if not (ok and cok and rok) then os.remove(tmp) end
  end
  if not (ok and cok and rok) then
    -- The message names the file the user gave, not the one written aside.
    local why = tostring(werr or cerr or rerr)
    if why:sub(1, #tmp + 2) == tmp .. ": " then why = why:sub(#tmp + 3) end
    return nil, dest .. ": " .. why
  end
  return true
end

-- An error message as a user should read it: without memmap3's own source
-- positions (".../memmap3/init.lua:451: "; a position in the user's schema
-- file stays) and without a second "memmap3: ".
local function clean(msg)
  msg = tostring(msg):gsub("[^%s:]*memmap3/[%w_]+%.lua:%d+: ", "")
  msg = msg:gsub("^memmap3: ", ""):gsub(": memmap3: ", ": ")
  return msg
end

--- Run the command line in args; out(line) prints, err(line) reports.
-- @return the exit status: 0 success, 1 damaged or unreadable file (or
-- another failure), 2 usage error, 3 a dead writer's unfinished work
-- (a read-write open rolls it back), 4 writes of other processes overlapped
-- every look (a busy file: no verdict)
function M.main(args, out, err)
  out = out or print
  err = err or function(s) io.stderr:write(s, "\n") end
  local function usage_error(msg)
    err("memmap3: " .. msg .. "\n" .. USAGE)
    return 2
  end
  local function failure(file, msg, code)
    msg = clean(msg)
    if file and msg:sub(1, #file + 2) ~= file .. ": " then msg = file .. ": " .. msg end
    if code == mm.ERECOVER then -- a process died writing: not damage
      err("memmap3: " .. msg .. " (this is no damage: the first read-write open rolls the dead writer's "
        .. "work back)")
      return 3
    end
    if code == mm.EWRITERS then -- busy: what it saw may be writes in progress
      err("memmap3: " .. msg .. "\n(no verdict: other processes wrote the file throughout; run it again when "
        .. "they pause)")
      return 4
    end
    err("memmap3: " .. msg)
    return 1
  end
  local cmd = args[1]
  if cmd == nil then return usage_error("no command") end
  for i = 1, #args do
    if args[i] == "--" then break end
    if args[i] == "--help" or args[i] == "-h" or (i == 1 and cmd == "help") then
      out(USAGE)
      return 0
    end
  end
  local fn = commands[cmd]
  if not fn then return usage_error("unknown command '" .. cmd .. "'") end
  local pos, opts = parse_args(cmd, args)
  if not pos then return usage_error(opts) end
  local spec = OPTIONS[cmd]
  if #pos < spec.npos[1] then return usage_error(spec.few or cmd .. " needs a FILE") end
  if #pos > spec.npos[2] then return usage_error(spec.many or cmd .. " takes one FILE, not " .. #pos) end
  local file = spec.file and pos[1] or nil -- cheader's messages name their file
  local okp, ok, msg, code = pcall(fn, out, file or pos, opts)
  if not okp then ok, msg = nil, ok end
  if code == "usage" then return usage_error(msg) end
  if not ok then return failure(file, msg, code) end
  return 0
end

return M
