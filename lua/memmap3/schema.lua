--- Schemas: type objects, C layout, canonical text, parsing (LPeg) and diffs.
-- Pure Lua; knows nothing of files or the C module.
-- @module memmap3.schema
local lpeg = require "lpeg"

local P, R, S, C, Ct, V = lpeg.P, lpeg.R, lpeg.S, lpeg.C, lpeg.Ct, lpeg.V
local concat, format = table.concat, string.format
local type, pairs, ipairs, error, tostring, setmetatable, getmetatable, select, pcall, tonumber =
  type, pairs, ipairs, error, tostring, setmetatable, getmetatable, select, pcall, tonumber
local math_type = math.type

local M = {}

-- Type codes, shared with src/lmm3_internal.h (keep in step).
local CODE = {
  u8 = 1, u16 = 2, u32 = 3, u64 = 4, i8 = 5, i16 = 6, i32 = 7, i64 = 8,
  f32 = 9, f64 = 10, bool = 11, char = 12, u128 = 13, i128 = 14,
  usize = 4, isize = 8, string = 15, bytes = 16,
  struct = 32, array = 33, enum = 34, atomic = 35,
  vec = 36, ring = 37, string_array = 38, fmap = 39, hmap = 40, segmented = 41, value = 42,
}
M.CODE = CODE

-- usize and isize are 8 bytes in every file, whatever the machine.
local PRIM_SIZE = {
  u8 = 1, u16 = 2, u32 = 4, u64 = 8, i8 = 1, i16 = 2, i32 = 4, i64 = 8,
  f32 = 4, f64 = 8, bool = 1, char = 4, u128 = 16, i128 = 16, usize = 8, isize = 8,
}
local INTEGER = {
  u8 = true, u16 = true, u32 = true, u64 = true, i8 = true, i16 = true, i32 = true,
  i64 = true, usize = true, isize = true,
}
local ATOMIC_OK = {
  u8 = true, u16 = true, u32 = true, u64 = true, i8 = true, i16 = true, i32 = true,
  i64 = true, usize = true, isize = true, bool = true,
}

-- Largest size of any type: absurd capacities are refused at declaration.
local MAX_SIZE = 1 << 40
M.MAX_SIZE = MAX_SIZE
-- The largest string<N>, bytes<N> and container element (the C core keeps
-- element sizes in 32 bits).
local MAX_ELEM = 0xFFFFFFFF
-- Structs, containers and array dimensions nested in one another, at most
-- (each level's views and checks walk the levels below it: 5000 nested
-- structs took a minute to create, 100000 dimensions gigabytes)
local MAX_DEPTH = 256

-- How deep t nests structs, containers and array dimensions (a scalar: 0).
local function depth(t) return t.depth or 0 end

-- s cut for a message.
local function short(s) return #s > 200 and s:sub(1, 200) .. "..." or s end

local function check_depth(d, what)
  if d > MAX_DEPTH then error(format("%s: types nested more than %d deep", what, MAX_DEPTH), 0) end
  return d
end

-- a * b > MAX_SIZE, for 1 <= a, b <= MAX_SIZE, without overflowing.
local function over(a, b) return a > MAX_SIZE // b end

local Type = { __name = "memmap3.Type" }
Type.__index = Type
Type.__tostring = function(t) return "memmap3.Type(" .. t.canon .. ")" end

local function is_type(v) return getmetatable(v) == Type end
M.is_type = is_type

local function align_up(n, a) return (n + a - 1) // a * a end

local IDENT = "^[%a_][%w_]*$"

-- ---------------------------------------------------------------------------
-- Constructors
-- ---------------------------------------------------------------------------

local prims = {}
for name, size in pairs(PRIM_SIZE) do
  prims[name] = setmetatable({
    kind = "prim", name = name, code = CODE[name], size = size, align = size,
    canon = name, integer = INTEGER[name] or false,
    signed = name:sub(1, 1) == "i",
  }, Type)
end
M.prims = prims

local function sized(kind, n, what)
  if math_type(n) ~= "integer" then error(format("%s: capacity must be an integer", what), 0) end
  if n < 1 then error(format("%s<%d>: zero capacity (must be at least 1)", kind, n), 0) end
  if n > MAX_ELEM then
    error(format("%s<%d>: capacity is absurdly large (at most %d)", kind, n, MAX_ELEM), 0)
  end
  return setmetatable({
    kind = kind, code = CODE[kind], cap = n, size = n, align = 1,
    canon = format("%s<%d>", kind, n),
  }, Type)
end

local function array_of(elem, n)
  if math_type(n) ~= "integer" then error("array length must be an integer", 0) end
  if n < 1 then error(format("%s[%d]: zero length (must be at least 1)", elem.canon, n), 0) end
  -- C order: T[a][b] is a arrays of (b arrays of T).
  local base, dims = elem.canon, ""
  if elem.kind == "array" then base, dims = elem.base_canon, elem.dims_canon end
  -- (each level keeps its own name, the dimensions written out)
  if depth(elem) >= MAX_DEPTH then
    error(format("%s[%d]...: types nested more than %d deep (each array dimension counts)", base, n,
      MAX_DEPTH), 0)
  end
  if n > MAX_SIZE or over(elem.size, n) then
    error(format("%s[%d]%s: size overflows (over %d bytes)", base, n, dims, MAX_SIZE), 0)
  end
  return setmetatable({
    kind = "array", code = CODE.array, elem = elem, n = n, size = elem.size * n,
    align = elem.align, base_canon = base, dims_canon = format("[%d]", n) .. dims, depth = depth(elem) + 1,
    canon = base .. format("[%d]", n) .. dims, growable = elem.growable,
  }, Type)
end

-- ---------------------------------------------------------------------------
-- Type expressions (LPeg), for user strings and the canonical schema text
-- ---------------------------------------------------------------------------

local sp = S(" \t\r\n") ^ 0
local digit = R "09"
local num = C(digit ^ 1) / function(s) return tonumber(s) end
local ident = C((R("az", "AZ") + P "_") * (R("az", "AZ", "09") + P "_") ^ 0)
local function tok(s) return sp * P(s) * sp end

-- AST nodes: {"prim", name} {"string", n} {"bytes", n} {"ref", name}
-- {"array", node, dims...} {"atomic", node}
local typeexpr = P {
  "type",
  -- (the base parsed once: trying an array first, then the base alone, took
  -- time doubling with each container nested inside)
  type = V "base" * Ct((tok "[" * num * tok "]") ^ 0) / function(base, dims)
    if #dims == 0 then return base end
    return { "array", base, table.unpack(dims) }
  end,
  base = Ct(lpeg.Cc "vec" * P "vec" * tok "<" * V "type" * tok "," * num * tok ">")
    + Ct(lpeg.Cc "ring" * P "ring" * tok "<" * V "type" * tok "," * num * tok ">")
    + Ct(lpeg.Cc "string_array" * P "string_array" * tok "<" * num * tok "," * num * tok ">")
    + Ct(lpeg.Cc "map" * P "map" * tok "<" * V "type" * tok "," * V "type" * (tok "," * num) ^ -1 * tok ">")
    + Ct(lpeg.Cc "segmented" * P "segmented" * tok "<" * V "type" * tok ">")
    + Ct(lpeg.Cc "value" * P "value" * (tok "<" * num * tok ">") ^ -1) * -(R("az", "AZ", "09") + P "_")
    + Ct(lpeg.Cc "string" * P "string" * tok "<" * num * tok ">")
    + Ct(lpeg.Cc "bytes" * P "bytes" * tok "<" * num * tok ">")
    + Ct(lpeg.Cc "atomic" * P "atomic" * tok "<" * V "type" * tok ">")
    + Ct(lpeg.Cc "ref" * ident),
}
local type_only = sp * typeexpr * sp * -P(1)

local function build(node, resolve, what)
  local k = node[1]
  if k == "array" then
    local t = build(node[2], resolve, what)
    for i = #node, 3, -1 do t = array_of(t, node[i]) end
    return t
  elseif k == "string" or k == "bytes" then
    return sized(k, node[2], what)
  elseif k == "atomic" then
    error(format("%s: write atomic = true on the field instead of atomic<...>", what), 0)
  elseif k == "vec" or k == "ring" then
    return M.container(k, build(node[2], resolve, what), node[3], what)
  elseif k == "string_array" then
    return M.string_array(node[2], node[3], what)
  elseif k == "map" then
    return M.hashmap(build(node[2], resolve, what), build(node[3], resolve, what), node[4], what)
  elseif k == "segmented" then
    return M.container("segmented", build(node[2], resolve, what), nil, what)
  elseif k == "value" then
    return M.value(node[2], what)
  else
    local name = node[2]
    if prims[name] then return prims[name] end
    local t = resolve and resolve(name)
    if not t then error(format("%s: unknown type '%s'", what, name), 0) end
    return t
  end
end

--- Parse a type expression such as "u8[16][16][4]" or "string<32>".
-- @param s the expression
-- @param what context for error messages
-- @return a type object
function M.parse_type(s, what)
  what = what or format("type '%s'", s)
  local ok, ast = pcall(type_only.match, type_only, s)
  if not ok then -- LPeg's own stack ran out (past 100 levels or so: build deeper types from type objects)
    error(format("%s: cannot parse type '%s': nested too deep for a type string", what, short(s)), 0)
  end
  if not ast then error(format("%s: cannot parse type '%s'", what, short(s)), 0) end
  return build(ast, nil, what)
end

--- A type object from a type object or an expression string.
function M.totype(t, what)
  if is_type(t) then return t end
  if type(t) == "string" then return M.parse_type(t, what) end
  error(format("%s: expected a type (string or memmap3 type), got %s", what or "type", type(t)), 0)
end

-- ---------------------------------------------------------------------------
-- Containers (layouts as mm3_ctype_init computes them in src/mm3_vec.c)
-- ---------------------------------------------------------------------------

local function check_cap(n, what, kind)
  if math_type(n) ~= "integer" then error(format("%s: %s capacity must be an integer", what, kind), 0) end
  if n < 1 then error(format("%s: %s has zero capacity (must be at least 1)", what, kind), 0) end
  if n > MAX_SIZE then error(format("%s: %s capacity %d is absurdly large", what, kind, n), 0) end
end

local function check_elem(t, what, role)
  if t.growable then
    error(format("%s: %s %s is a growable type; only fixed-size types fit here", what, role, t.canon), 0)
  end
end

--- vec<T, N>, ring<T, N> or segmented<T>.
function M.container(kind, elem, n, what)
  what = what or ("mm." .. kind)
  elem = M.totype(elem, what)
  check_elem(elem, what, "element type")
  if elem.size > MAX_ELEM then
    error(format("%s: element type %s is too large for a container (over %d bytes)", what, elem.canon,
      MAX_ELEM), 0)
  end
  local t = { kind = kind, code = CODE[kind], elem = elem, depth = check_depth(depth(elem) + 1, what) }
  if kind == "segmented" then
    t.size, t.align, t.growable = 8 + 8 * 56, 8, true
    t.canon = format("segmented<%s>", elem.canon)
  else
    check_cap(n, what, kind)
    if over(elem.size, n) or n * elem.size + 16 > MAX_SIZE then
      error(format("%s: %s<%s, %d> is absurdly large", what, kind, elem.canon, n), 0)
    end
    t.cap = n
    t.align = math.max(8, elem.align)
    t.size = align_up(t.align + n * elem.size, t.align)
    t.canon = format("%s<%s,%d>", kind, elem.canon, n)
  end
  return setmetatable(t, Type)
end

--- string_array<N, LEN>: N strings of up to LEN bytes.
function M.string_array(n, len, what)
  what = what or "mm.string_array"
  check_cap(n, what, "string_array")
  local elem = sized("string", len, what)
  if over(n, len) then error(format("%s: string_array<%d,%d> is absurdly large", what, n, len), 0) end
  return setmetatable({
    kind = "string_array", code = CODE.string_array, elem = elem, cap = n, n = n, len = len,
    size = n * len, align = 1, canon = format("string_array<%d,%d>", n, len),
  }, Type)
end

local KEY_OK = { prim = true, string = true, bytes = true }

--- map<K, V, N> (fixed capacity, inline) or map<K, V> (growable).
function M.hashmap(k, v, n, what)
  what = what or "mm.map"
  k = M.totype(k, what)
  v = M.totype(v, what)
  if not KEY_OK[k.kind] or (k.kind == "prim" and not k.integer) then
    error(format("%s: a map key must be an integer, string<N> or bytes<N>, not %s (it cannot be hashed)",
      what, k.canon), 0)
  end
  if k.size >= (1 << 24) then
    error(format("%s: a map key is at most %d bytes, not %d (%s)", what, (1 << 24) - 1, k.size, k.canon), 0)
  end
  check_elem(v, what, "value type")
  if k.size + v.size > (1 << 31) then
    error(format("%s: map<%s, %s>: key and value together are too large (over %d bytes)", what, k.canon,
      v.canon, 1 << 31), 0)
  end
  local base_align = math.max(8, k.align, v.align)
  local t = { kind = "map", key = k, elem = v, depth = check_depth(depth(v) + 1, what) }
  if n == nil then
    t.code, t.size, t.align, t.growable = CODE.hmap, 48, 8, true
    t.canon = format("map<%s,%s>", k.canon, v.canon)
  else
    check_cap(n, what, "map")
    if n > 0xfffffffe then error(format("%s: map capacity %d is over 2^32 - 2", what, n), 0) end
    local key_off = align_up(8, k.align)
    local val_off = align_up(key_off + k.size, v.align)
    local node = align_up(val_off + v.size, base_align)
    local buckets = 8
    while buckets < n do buckets = buckets * 2 end
    local nodes_off = align_up(16 + 4 * buckets, base_align)
    if over(node, n) or nodes_off + n * node > MAX_SIZE then
      error(format("%s: map of %d entries is absurdly large", what, n), 0)
    end
    t.code, t.cap, t.align = CODE.fmap, n, base_align
    t.size = align_up(nodes_off + n * node, base_align)
    t.canon = format("map<%s,%s,%d>", k.canon, v.canon, n)
  end
  return setmetatable(t, Type)
end

--- value<N> (a serialised Lua value of up to N bytes, inline) or value (any size).
function M.value(n, what)
  if n == nil then
    return setmetatable({ kind = "value", code = CODE.value, cap = 0, size = 16, align = 8,
      growable = true, canon = "value" }, Type)
  end
  check_cap(n, what or "mm.value", "value")
  if n > MAX_ELEM then -- its length is a u32
    error(format("%s: value<%d> is absurdly large (at most %d bytes)", what or "mm.value", n, MAX_ELEM), 0)
  end
  return setmetatable({ kind = "value", code = CODE.value, cap = n, size = align_up(4 + n, 4), align = 4,
    canon = format("value<%d>", n) }, Type)
end

function M.vec(t, n) return M.container("vec", t, n, "mm.vec") end
function M.ring(t, n) return M.container("ring", t, n, "mm.ring") end
function M.segmented(t) return M.container("segmented", t, nil, "mm.segmented") end

-- ---------------------------------------------------------------------------
-- Structs, enums, arrays
-- ---------------------------------------------------------------------------

local FIELD_KEYS = { [1] = true, [2] = true, atomic = true }

-- Why t is not a sequence ("bad key x", "entry 2 is nil": ipairs would stop
-- at the hole and drop what follows it), or nil.
local function sequence_hole(t)
  local n = 0
  for k in pairs(t) do
    if math_type(k) ~= "integer" or k < 1 then return "bad key " .. tostring(k) end
    n = n + 1
  end
  for i = 1, n do
    if t[i] == nil then return format("entry %d is nil", i) end
  end
  return nil
end

--- Declare a struct type. Fields are laid out in order with C's rules.
-- @param name the struct's name (an identifier)
-- @param fields a sequence of {"name", type, atomic = bool}
function M.struct(name, fields)
  if type(name) ~= "string" or not name:match(IDENT) then
    error(format("mm.struct: name must be an identifier, got %s", tostring(name)), 2)
  end
  local what = format("mm.struct '%s'", name)
  if type(fields) ~= "table" then error(what .. ": fields must be a table", 2) end
  local holes = sequence_hole(fields)
  if holes then error(format("%s: fields must be a sequence of {name, type} (%s)", what, holes), 2) end
  if #fields == 0 then error(what .. ": a struct needs at least one field", 2) end
  local t = setmetatable({
    kind = "struct", code = CODE.struct, name = name, fields = {}, index = {}, canon = name,
  }, Type)
  local off, align = 0, 1
  for i, spec in ipairs(fields) do
    if type(spec) ~= "table" then error(format("%s: field %d must be a table {name, type}", what, i), 2) end
    local fname = spec[1]
    if type(fname) ~= "string" or not fname:match(IDENT) then
      error(format("%s: field %d: name must be an identifier, got %s", what, i, tostring(fname)), 2)
    end
    local fwhat = format("%s: field '%s'", what, fname)
    for k in pairs(spec) do
      if not FIELD_KEYS[k] then error(format("%s: unknown option '%s'", fwhat, tostring(k)), 2) end
    end
    if t.index[fname] then error(format("%s: duplicate field '%s'", what, fname), 2) end
    if spec[2] == nil then error(fwhat .. ": missing type", 2) end
    local ok, ft = pcall(M.totype, spec[2], fwhat)
    if not ok then
      ft = tostring(ft)
      error(ft:sub(1, #fwhat) == fwhat and ft or (fwhat .. ": " .. ft), 2)
    end
    local atomic = spec.atomic
    if atomic ~= nil and type(atomic) ~= "boolean" then error(fwhat .. ": atomic must be a boolean", 2) end
    if atomic and not (ft.kind == "prim" and ATOMIC_OK[ft.name]) then
      error(format("%s: atomic needs an integer (up to 64 bits) or bool type, got %s", fwhat, ft.canon), 2)
    end
    if depth(ft) >= MAX_DEPTH then
      error(format("%s: types nested more than %d deep", fwhat, MAX_DEPTH), 2)
    end
    if depth(ft) >= depth(t) then t.depth = depth(ft) + 1 end
    off = align_up(off, ft.align)
    local f = { name = fname, type = ft, offset = off, atomic = atomic or false }
    if ft.growable then t.growable = true end
    t.fields[i] = f
    t.index[fname] = f
    off = off + ft.size
    if ft.align > align then align = ft.align end
    if off > MAX_SIZE then error(format("%s: size overflows (over %d bytes)", fwhat, MAX_SIZE), 2) end
  end
  t.size = align_up(off, align)
  t.align = align
  return t
end

--- Declare an enum: names stored as integers 0, 1, 2... of an integer base type.
function M.enum(name, base, names)
  if type(name) ~= "string" or not name:match(IDENT) then
    error(format("mm.enum: name must be an identifier, got %s", tostring(name)), 2)
  end
  local what = format("mm.enum '%s'", name)
  local bt = prims[base]
  if not bt or not bt.integer then
    error(format("%s: base must be an integer type (u8, u16, ...), got %s", what, tostring(base)), 2)
  end
  if type(names) ~= "table" or #names == 0 then error(what .. ": needs a non-empty list of names", 2) end
  local holes = sequence_hole(names)
  if holes then error(format("%s: names must be a sequence (%s)", what, holes), 2) end
  local values, list = {}, {}
  for i, n in ipairs(names) do
    if type(n) ~= "string" or not n:match(IDENT) then
      error(format("%s: name %d must be an identifier, got %s", what, i, tostring(n)), 2)
    end
    if values[n] then error(format("%s: duplicate name '%s'", what, n), 2) end
    values[n] = i - 1
    list[i] = n
  end
  local bits = bt.size * 8 - (bt.signed and 1 or 0)
  local limit = bits >= 63 and math.maxinteger or (1 << bits)
  if #list > limit then
    error(format("%s: %d names do not fit in %s (at most %d)", what, #list, base, limit), 2)
  end
  return setmetatable({
    kind = "enum", code = CODE.enum, name = name, base = bt, names = list, values = values,
    size = bt.size, align = bt.align, canon = name,
  }, Type)
end

--- An array type: mm.array(T, a, b) is T[a][b].
function M.array(t, ...)
  local n = select("#", ...)
  if n == 0 then error("mm.array: needs at least one length", 2) end
  local ok, et = pcall(M.totype, t, "mm.array")
  if not ok then error(et, 2) end
  local dims = { ... }
  for i = n, 1, -1 do
    local d = dims[i]
    ok, et = pcall(array_of, et, d)
    if not ok then error("mm.array: " .. et, 2) end
  end
  return et
end

-- ---------------------------------------------------------------------------
-- Canonical schema text
-- ---------------------------------------------------------------------------

local function field_text(f)
  if f.atomic then return format("%s:atomic<%s>", f.name, f.type.canon) end
  return f.name .. ":" .. f.type.canon
end

local function definition(t)
  if t.kind == "struct" then
    local parts = {}
    for i, f in ipairs(t.fields) do parts[i] = field_text(f) end
    return format("struct %s{%s}", t.name, concat(parts, ";"))
  end
  return format("enum %s:%s{%s}", t.name, t.base.name, concat(t.names, ","))
end

--- The canonical text of a schema whose root is t: the definitions of every
-- named type (dependencies first), then `"root <type>"`. Stored in files; its
-- FNV-1a hash is the layout fingerprint.
function M.canonical(t)
  local out, seen = {}, {}
  local function visit(x)
    if x.kind == "map" then visit(x.key) end
    if x.elem then return visit(x.elem) end
    if x.kind ~= "struct" and x.kind ~= "enum" then return end
    local prev = seen[x.name]
    if prev then
      if prev ~= x and definition(prev) ~= definition(x) then
        error(format("schema has two different types named '%s'", x.name), 0)
      end
      return
    end
    seen[x.name] = x
    if x.kind == "struct" then
      for _, f in ipairs(x.fields) do visit(f.type) end
    end
    out[#out + 1] = definition(x)
  end
  visit(t)
  out[#out + 1] = "root " .. t.canon
  return concat(out, "\n")
end

local fielddef = Ct(ident * P ":" * (P "atomic<" * Ct(typeexpr) * P ">" * lpeg.Cc(true) + Ct(typeexpr)))
local structdef = Ct(lpeg.Cc "struct" * P "struct " * ident * P "{" *
  Ct(fielddef * (P ";" * fielddef) ^ 0) * P "}")
local enumdef = Ct(lpeg.Cc "enum" * P "enum " * ident * P ":" * ident * P "{" *
  Ct(ident * (P "," * ident) ^ 0) * P "}")
local schemadef = Ct(Ct(((structdef + enumdef) * P "\n") ^ 0) * P "root " * Ct(typeexpr))
  * -P(1)

--- Rebuild the types of a canonical schema text (as stored in a file).
-- @return the root type, or nil and a message
function M.parse_schema(text)
  local parsed, ast = pcall(schemadef.match, schemadef, text)
  if not parsed or not ast then return nil, "cannot parse the schema stored in the file" end
  local env = {}
  local function resolve(n) return env[n] end
  local ok, root = pcall(function()
    for _, d in ipairs(ast[1]) do
      if d[1] == "struct" then
        local fields = {}
        for i, f in ipairs(d[3]) do
          fields[i] = { f[1], build(f[2][1], resolve, "field '" .. f[1] .. "'"), atomic = f[3] or nil }
        end
        env[d[2]] = M.struct(d[2], fields)
      else
        env[d[2]] = M.enum(d[2], d[3], d[4])
      end
    end
    return build(ast[2][1], resolve, "root")
  end)
  if not ok then return nil, "bad schema in file: " .. tostring(root) end
  return root
end

-- ---------------------------------------------------------------------------
-- Differences, for "opened with another layout" errors
-- ---------------------------------------------------------------------------

--- The first difference between the file's type a and the schema's type b,
-- as a sentence, or nil if they are the same layout.
function M.diff(a, b, path)
  local function here(what)
    return path and format("field '%s' %s", path, what) or ("root " .. what)
  end
  if a.kind ~= b.kind or (a.kind ~= "struct" and a.kind ~= "array" and a.canon ~= b.canon) then
    return here(format("is %s in the file, %s in the schema", a.canon, b.canon))
  end
  if a.kind == "array" then
    if a.n ~= b.n then return here(format("is %s in the file, %s in the schema", a.canon, b.canon)) end
    return M.diff(a.elem, b.elem, path and (path .. "[]") or "[]")
  end
  if a.kind == "enum" then
    local an, bn = concat(a.names, ","), concat(b.names, ",")
    if an ~= bn or a.base ~= b.base then
      return here(format("is enum %s:%s{%s} in the file, %s:%s{%s} in the schema",
        a.name, a.base.name, an, b.name, b.base.name, bn))
    end
    return nil
  end
  if a.kind ~= "struct" then return nil end
  if a.name ~= b.name then
    return here(format("is struct %s in the file, struct %s in the schema", a.name, b.name))
  end
  for i = 1, math.max(#a.fields, #b.fields) do
    local fa, fb = a.fields[i], b.fields[i]
    local p = path and (path .. "." .. (fa or fb).name) or (fa or fb).name
    if not fa then return format("field '%s' is in the schema but not in the file", p) end
    if not fb then return format("field '%s' is in the file but not in the schema", p) end
    if fa.name ~= fb.name then
      return format("field %d is '%s' in the file, '%s' in the schema", i, fa.name, fb.name)
    end
    if fa.atomic ~= fb.atomic then
      return format("field '%s' is %satomic in the file, %satomic in the schema", p,
        fa.atomic and "" or "not ", fb.atomic and "" or "not ")
    end
    local d = M.diff(fa.type, fb.type, p)
    if d then return d end
  end
  return nil
end

-- Plain description of a type, for memmap3 info and mm.schema users.
function M.describe(t)
  if t.kind == "struct" or t.kind == "enum" then return definition(t) end
  return t.canon
end

M.Type = Type
return M
