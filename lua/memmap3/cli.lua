--- The `memmap3` command: look inside memmap3 files without their code.
-- @module memmap3.cli
local mm = require "memmap3"

local format, concat, rep = string.format, table.concat, string.rep
local type, ipairs, tostring, math_type = type, ipairs, tostring, math.type

local M = {}

local USAGE = [[
usage: memmap3 <command> [args]
  info FILE            header, schema and sizes
  dump [--json] FILE   contents (Lua-like text, or JSON)
  check FILE           verify every invariant; exit status 1 on damage
  cheader SCHEMA.lua NAME [-o OUT]
                       a C header whose structs match the layout of the root
                       type NAME of the schema module SCHEMA.lua
  help                 this text]]

-- ---------------------------------------------------------------------------
-- Rendering values in declaration order, guided by the type
-- ---------------------------------------------------------------------------

local function json_string(s)
  return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
    local b = c:byte()
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\"
    elseif c == "\n" then return "\\n" elseif c == "\t" then return "\\t"
    elseif b < 32 or b == 127 then return format("\\u%04x", b) end
    return c -- UTF-8 bytes pass through (strings are valid UTF-8)
  end) .. '"'
end

local function scalar_json(v, t)
  if type(v) == "string" then
    if t and t.kind == "bytes" then
      return '"' .. v:gsub(".", function(c) return format("%02x", c:byte()) end) .. '"'
    end
    if t and t.kind == "prim" and (t.name == "u128" or t.name == "i128") then return v end
    return json_string(v)
  elseif type(v) == "number" then
    if math_type(v) == "integer" then
      if t and t.name == "u64" and v < 0 then return format("%u", v) end -- u64 above 2^63
      return tostring(v)
    end
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    return format("%.17g", v)
  end
  return tostring(v)
end

local function scalar_lua(v, t)
  if type(v) == "string" then
    if t and t.kind == "prim" and (t.name == "u128" or t.name == "i128") then return v end
    return format("%q", v)
  end
  if math_type(v) == "integer" and t and t.name == "u64" and v < 0 then return format("%u", v) end
  return tostring(v)
end

local function render(v, t, json, indent, out)
  local pad = rep("  ", indent + 1)
  if t.kind == "struct" then
    out[#out + 1] = json and "{\n" or (t.name .. " {\n")
    for i, f in ipairs(t.fields) do
      out[#out + 1] = pad .. (json and json_string(f.name) .. ": " or f.name .. " = ")
      render(v[f.name], f.type, json, indent + 1, out)
      out[#out + 1] = (i < #t.fields or not json) and ",\n" or "\n"
    end
    out[#out + 1] = rep("  ", indent) .. "}"
  elseif t.kind == "array" then
    out[#out + 1] = json and "[" or "{"
    local simple = t.elem.kind ~= "struct" and t.elem.kind ~= "array"
    for i = 1, t.n do
      if not simple then out[#out + 1] = "\n" .. pad end
      render(v[i], t.elem, json, indent + 1, out)
      if i < t.n then out[#out + 1] = simple and ", " or "," end
    end
    if not simple then out[#out + 1] = "\n" .. rep("  ", indent) end
    out[#out + 1] = json and "]" or "}"
  elseif t.kind == "vec" or t.kind == "ring" or t.kind == "segmented" or t.kind == "string_array" then
    local n = #v
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
    table.sort(keys, function(a, b)
      if type(a) == type(b) then return a < b end
      return type(a) == "number"
    end)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      out[#out + 1] = "\n" .. pad
      if json then
        out[#out + 1] = json_string(tostring(scalar_lua(k, t.key):gsub('^"(.*)"$', "%1"))) .. ": "
      else
        out[#out + 1] = "[" .. scalar_lua(k, t.key) .. "] = "
      end
      render(v[k], t.elem, json, indent + 1, out)
      if i < #keys or not json then out[#out + 1] = "," end
    end
    if #keys > 0 then out[#out + 1] = "\n" .. rep("  ", indent) end
    out[#out + 1] = "}"
  elseif t.kind == "value" then
    out[#out + 1] = M.render_any(v, json, indent)
  else
    out[#out + 1] = (json and scalar_json or scalar_lua)(v, t)
  end
end

--- Render any plain Lua value (a value<N> field's contents).
function M.render_any(v, json, indent)
  indent = indent or 0
  if type(v) ~= "table" then
    if v == nil then return json and "null" or "nil" end
    return (json and scalar_json or scalar_lua)(v, nil)
  end
  local n, keys = #v, {}
  for k in pairs(v) do
    if not (math_type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  if json and #keys == 0 then
    for i = 1, n do parts[i] = M.render_any(v[i], json, indent + 1) end
    return "[" .. concat(parts, ", ") .. "]"
  end
  for i = 1, n do
    parts[#parts + 1] = json and (json_string(tostring(i)) .. ": " .. M.render_any(v[i], json, indent + 1))
      or M.render_any(v[i], json, indent + 1)
  end
  for _, k in ipairs(keys) do
    local key = json and json_string(tostring(k)) .. ": "
      or (type(k) == "string" and k:match "^[%a_][%w_]*$" and k .. " = " or "[" .. scalar_lua(k) .. "] = ")
    parts[#parts + 1] = key .. M.render_any(v[k], json, indent + 1)
  end
  return "{" .. concat(parts, ", ") .. "}"
end

--- Render a plain value (from mm.totable) of type t as text or JSON.
function M.render(v, t, json)
  local out = {}
  render(v, t, json, 0, out)
  return concat(out)
end

-- ---------------------------------------------------------------------------
-- Commands
-- ---------------------------------------------------------------------------

local function open(path)
  local v, err = mm.open(path, { readonly = true })
  if not v then return nil, err end
  return v
end

local commands = {}

function commands.info(out, path)
  if not path then return nil, "info needs a FILE" end
  local v, err = open(path)
  if not v then return nil, err end
  local i = mm.info(v)
  out(format("file:           %s", path))
  out(format("format version: %d", i.format_version))
  out(format("file size:      %d bytes", i.size))
  out(format("root:           %s, %d bytes at offset %d", mm.schema(v).canon, i.root_size, i.root_offset))
  out(format("fingerprint:    %s", i.fingerprint))
  out("schema:")
  for line in i.schema:gmatch "[^\n]+" do out("  " .. line) end
  mm.close(v)
  return true
end

function commands.dump(out, path, flag)
  if not path then return nil, "dump needs a FILE" end
  if flag ~= nil and flag ~= "--json" then return nil, "unknown option " .. flag end
  local v, err = open(path)
  if not v then return nil, err end
  out(M.render(mm.totable(v), mm.schema(v), flag == "--json"))
  mm.close(v)
  return true
end

function commands.check(out, path)
  if not path then return nil, "check needs a FILE" end
  local ok, err = mm.check(path)
  if not ok then return nil, err end
  out(path .. ": ok")
  return true
end

-- cheader SCHEMA.lua NAME [-o OUT]: its own arguments (-o takes a value).
local function cheader(out, args)
  local pos, dest = {}, nil
  local i = 2
  while i <= #args do
    local a = args[i]
    if a == "-o" then
      if not args[i + 1] then return nil, "-o needs a file name" end
      dest, i = args[i + 1], i + 1
    elseif a:sub(1, 1) == "-" and #a > 1 then
      return nil, "unknown option " .. a
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  if not pos[1] then return nil, "cheader needs a SCHEMA.lua (and the NAME of its root type)" end
  if #pos > 2 then return nil, "cheader takes SCHEMA.lua NAME [-o OUT]" end
  -- The schema module may require its neighbours.
  local dir = pos[1]:match "^(.*)/[^/]*$"
  local saved = package.path
  if dir then package.path = dir .. "/?.lua;" .. package.path end
  local text, err = require("memmap3.cheader").from_file(pos[1], pos[2])
  package.path = saved
  if not text then return nil, err end
  if not dest then
    out((text:gsub("\n$", "")))
    return true
  end
  -- Written aside, then renamed: make never sees half a header.
  local tmp = dest .. ".tmp"
  local f, ferr = io.open(tmp, "wb")
  if not f then return nil, ferr end
  local ok, werr = f:write(text)
  local cok, cerr = f:close()
  local rok, rerr = true, nil
  if ok and cok then rok, rerr = os.rename(tmp, dest) end
  if not (ok and cok and rok) then
    os.remove(tmp)
    return nil, dest .. ": " .. tostring(werr or cerr or rerr)
  end
  return true
end

function commands.help(out)
  out(USAGE)
  return true
end

--- Run the command line in args; out(line) prints, err(line) reports.
-- @return the exit status
function M.main(args, out, err)
  out = out or print
  err = err or function(s) io.stderr:write(s, "\n") end
  local cmd = args[1]
  if cmd == "cheader" then
    local ok, msg = cheader(out, args)
    if not ok then
      err("memmap3: " .. tostring(msg))
      return 1
    end
    return 0
  end
  local fn = commands[cmd or ""]
  if not fn then
    err(cmd and ("memmap3: unknown command '" .. cmd .. "'\n" .. USAGE) or USAGE)
    return 2
  end
  -- Options may stand anywhere after the command: "dump --json FILE" too.
  local pos, flag = {}, nil
  for i = 2, #args do
    if args[i]:sub(1, 2) == "--" then
      if flag then
        err("memmap3: only one option at a time")
        return 2
      end
      flag = args[i]
    else
      pos[#pos + 1] = args[i]
    end
  end
  local ok, msg = fn(out, pos[1], flag)
  if not ok then
    err("memmap3: " .. tostring(msg))
    return 1
  end
  return 0
end

return M
