--- memmap3: files as live, typed, persistent data.
--
-- `mm.map` and `mm.anon` give raw mappings (memmap2's API); `mm.struct`,
-- `mm.enum` and `mm.array` declare schemas; `mm.create` and `mm.open` give a
-- view of a file's root whose fields read and write straight through the
-- mapping.
-- @module memmap3
local core = require "memmap3.core"
local schema = require "memmap3.schema"

local type, pairs, ipairs, error, format, setmetatable, tonumber, math_type, pcall, tostring =
  type, pairs, ipairs, error, string.format, setmetatable, tonumber, math.type, pcall, tostring

local M = {}

-- Raw mappings (SPEC §1) come straight from the C module.

--- Map anonymous, zero-filled memory.
-- @function anon
-- @tparam integer len bytes (0 is a valid empty map)
-- @tparam[opt] table opts `populate`, `stack`, `huge` (true or page-size bits), `no_reserve`, `shared`
-- @return a memmap3.Map, or fail, message, code
M.anon = core.anon

--- Whether the running kernel accepts an advice ("dontneed", "populate_read"...).
-- @function advice_supported
-- @tparam string name
-- @treturn boolean
M.advice_supported = core.advice_supported

--- The message for an error code (the third result of a failure).
-- @function strerror
-- @tparam integer code
-- @treturn string
M.strerror = core.strerror

--- The library's version, e.g. "0.1.0".
M.version = core.version
--- The page size in bytes.
M.page_size = core.page_size

-- Schemas (SPEC §2).

--- Declare a struct type: `mm.struct("Player", {{"id", "u64"}, {"kills", "u64", atomic = true}})`.
-- @function struct
-- @tparam string name an identifier
-- @tparam table fields a sequence of `{name, type [, atomic = true]}`
-- @return a type
-- A struct or enum named like a built-in type ("u64", "value") would be read
-- back from the file's schema text as the built-in: refused when declared.
local function is_builtin(name) return type(name) == "string" and (schema.prims[name] or name == "value") end
local function builtin_name(name, what)
  if is_builtin(name) then
    error(format("%s: '%s' is the name of a built-in type", what, name), 3)
  end
end

-- fn(...) for a type constructor of schema.lua, whose errors carry no
-- position (the schema parser raises them too): raised again at the line
-- that called the mm.* function that called this. That function must not
-- tail-call it (`return (at_caller(...))`), or the line would be lost.
local function at_caller(fn, ...)
  local ok, t = pcall(fn, ...)
  if not ok then error(t, 3) end
  return t
end

-- An mm.* function whose errors (raised by memmap3.core, which names the
-- line that called it: one of this file's) name the line that called the
-- mm.* function instead. For functions that return at most three values.
local THIS = "^" .. debug.getinfo(1, "S").short_src:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0") .. ":%d+: "
local function from_caller(fn)
  return function(...)
    local ok, a, b, c = pcall(fn, ...)
    if ok then return a, b, c end
    if type(a) == "string" then a = a:gsub(THIS, "") end
    error(a, 2)
  end
end

function M.struct(name, fields)
  builtin_name(name, "mm.struct")
  return schema.struct(name, fields) -- a tail call: its errors name the caller's line
end

--- Declare an enum type stored as 0, 1, 2... of an integer base type.
-- @function enum
-- @tparam string name
-- @tparam string base "u8", "u16"...
-- @tparam table names the names, in order
function M.enum(name, base, names)
  builtin_name(name, "mm.enum")
  return schema.enum(name, base, names)
end

--- An array type: `mm.array(T, a, b)` is `T[a][b]`.
-- @function array
M.array = schema.array

--- A fixed-capacity vector type, `vec<T, N>`.
function M.vec(t, n) return (at_caller(schema.container, "vec", t, n, "mm.vec")) end

--- A ring buffer type, `ring<T, N>`: pushing into a full ring overwrites the oldest.
function M.ring(t, n) return (at_caller(schema.container, "ring", t, n, "mm.ring")) end

--- A segmented list type, `segmented<T>`: unlimited growth, elements never move.
function M.segmented(t) return (at_caller(schema.container, "segmented", t, nil, "mm.segmented")) end

--- A `string_array<N, LEN>` type: N strings of up to LEN bytes.
function M.string_array(n, len) return (at_caller(schema.string_array, n, len, "mm.string_array")) end

--- A `value<N>` type (any Lua value, serialised, up to N bytes), or `value` (any size) without N.
function M.value(n) return (at_caller(schema.value, n, "mm.value")) end

-- A type object or a string that parses as one.
local function typelike(v)
  return schema.is_type(v) or (type(v) == "string" and pcall(schema.parse_type, v))
end

--- `mm.map(file [, opts])` maps a file (the raw mapping API: path, io.open
-- handle or descriptor; opts `mode`, `offset`, `len`, `populate`, `no_reserve`,
-- `create`); `mm.map(K, V [, N])` is the type `map<K, V, N>` (or the growable
-- `map<K, V>`), chosen when the second argument is a type.
-- @function map
M.map = from_caller(function(a, b, n)
  -- a type as the second argument makes it a type, whatever the first (a
  -- misspelt key type is then said to be unknown)
  if schema.is_type(a) or schema.is_type(b) or typelike(b) then
    return (at_caller(schema.hashmap, a, b, n, "mm.map"))
  end
  return core.map(a, b)
end)

--- The type object of a type expression ("u8[16][4]", "map<u64, bool>") or of a type.
function M.type(t) return (at_caller(schema.totype, t, "mm.type")) end

--- The canonical schema text of a root type (a type or a type expression), as stored in files.
function M.canonical(t)
  return (at_caller(function(x) return schema.canonical(schema.totype(x, "mm.canonical")) end, t))
end

--- Error codes returned as the third result of failed opens.
-- @field ESCHEMA the file's layout differs from the schema
-- @field EBADFILE not a memmap3 file
-- @field EVERSION a newer format
-- @field ECORRUPT damaged
-- @field ETRUNCATED shorter than its header says
-- @field ERECOVER a dead writer's unfinished work, which a read-only open
-- cannot roll back (one read-write open does; it is no damage)
-- @field EWRITERS a read-only open's read that writes of other processes
-- overlapped every time it was tried for about two seconds, or that a writer
-- which died mid-write left unreadable until a read-write handle locks, or a
-- read-write open alone with the file (try again)
-- @table errors
M.ESCHEMA = -30892
M.EBADFILE = -30895
M.EVERSION = -30894
M.ECORRUPT = -30893
M.ETRUNCATED = -30889
M.ERECOVER = -30886
M.EWRITERS = -30882

-- ---------------------------------------------------------------------------
-- Compiling types into the C module's descriptors and metatables
-- ---------------------------------------------------------------------------

local CODE = schema.CODE
local type_of_meta = setmetatable({}, { __mode = "k" }) -- metatable -> type
local meta_of_type = setmetatable({}, { __mode = "k" }) -- type -> metatable

local compile

-- A field's or element's descriptor: one integer for simple scalars
-- (offset << 32 | size << 8 | code), a table otherwise (see lmm3_internal.h).
local function descriptor(t, offset, atomic)
  if atomic then
    return { CODE.atomic, offset, t.size, false, false, false, t.code }
  end
  local k = t.kind
  if (k == "prim" or k == "string" or k == "bytes") and t.size < (1 << 24) and offset < (1 << 31) then
    return (offset << 32) | (t.size << 8) | t.code
  elseif k == "prim" or k == "string" or k == "bytes" then
    return { t.code, offset, t.size }
  elseif k == "enum" then
    return { CODE.enum, offset, t.size, false, t.names, t.values }
  elseif k == "value" then
    return { CODE.value, offset, t.size, t.cap }
  end
  return { t.code, offset, t.size, compile(t) }
end

-- Byte ranges of containers inside t (offset, size pairs): assigning a table
-- to a struct or array keeps them (they are assigned on their own).
local MAX_KEEP = 65536 -- containers in one struct or array type, at most

-- Whether t holds a container (or a heap value) anywhere inside.
local function holds_container(t)
  if t.kind == "struct" then
    for _, f in ipairs(t.fields) do
      if holds_container(f.type) then return true end
    end
    return false
  elseif t.kind == "array" then
    return holds_container(t.elem)
  end
  return t.code >= CODE.vec and not (t.kind == "value" and t.cap > 0)
end

local function keep_regions(t, base, out)
  if t.kind == "struct" then
    for _, f in ipairs(t.fields) do keep_regions(f.type, base + f.offset, out) end
  elseif t.kind == "array" then
    if holds_container(t.elem) then
      for i = 0, t.n - 1 do
        keep_regions(t.elem, base + i * t.elem.size, out)
        if #out > 2 * MAX_KEEP then
          error(format("%s holds more than %d containers (arrays of them are limited to that)", t.canon,
            MAX_KEEP), 0)
        end
      end
    end
  elseif t.code >= CODE.vec and not (t.kind == "value" and t.cap > 0) then
    out[#out + 1] = base
    out[#out + 1] = t.size
  end
  return out
end

local CONTAINER = { vec = true, ring = true, string_array = true, map = true, segmented = true }

-- A root that is not a struct, array or container (a number, a string, a
-- value...) is seen through a cell with one field, `value` (compile below;
-- the command line's dump reads it so).
local function through_cell(t) return t.kind ~= "struct" and t.kind ~= "array" and not CONTAINER[t.kind] end
M._through_cell = through_cell

-- v.value = x for a cell (`cell << x`), in a function of its own for pcall.
local function set_cell(v, x) v.value = x end

local meta_of_canon = setmetatable({}, { __mode = "v" }) -- canonical text -> metatable

function compile(t)
  local mt = meta_of_type[t]
  if mt then return mt end
  -- Identical layouts share one metatable, so views of them are the same
  -- type (copyable into each other) whichever type object made them.
  local canon = schema.canonical(t)
  mt = meta_of_canon[canon]
  if mt then
    meta_of_type[t] = mt
    return mt
  end
  if t.kind == "struct" then
    local fields, order = {}, {}
    for i, f in ipairs(t.fields) do
      fields[f.name] = descriptor(f.type, f.offset, f.atomic)
      order[i] = f.name
    end
    mt = core.new_struct(t.name, fields, order, t.size)
  elseif t.kind == "array" then
    mt = core.new_array(t.canon, t.n, t.elem.size, descriptor(t.elem, 0, false))
  elseif CONTAINER[t.kind] then
    local key = t.key
    mt = core.new_container(t.code, t.canon, {
      elem_size = t.elem.size, elem_align = t.elem.align,
      key_size = key and key.size or 0, key_align = key and key.align or 0,
      key_is_string = key and key.kind ~= "prim" or false,
      cap = t.cap or 0, size = t.size,
    }, descriptor(t.elem, 0, false), key and descriptor(key, 0, false))
  else
    -- through_cell(t): `cell << x` assigns the cell's value, as for a string.
    mt = core.new_struct(t.canon, { value = descriptor(t, 0, false) }, { "value" }, t.size)
    mt.__shl = function(v, x)
      local ok, err = pcall(set_cell, v, x)
      if not ok then -- raised where `<<` was written, not here
        error(type(err) == "string" and err:gsub("^[^\n]-:%d+: ", "", 1) or err, 2)
      end
      return v
    end
  end
  if t.kind == "struct" or t.kind == "array" then
    local keep = keep_regions(t, 0, {})
    if #keep > 0 then core.set_keep(mt, keep) end
  end
  meta_of_type[t] = mt
  meta_of_canon[canon] = mt
  type_of_meta[mt] = t
  return mt
end

-- ---------------------------------------------------------------------------
-- Files (SPEC §3)
-- ---------------------------------------------------------------------------

local OPEN_OPTS = { create = true, readonly = true, mode = true, reserve = true, durable = true }

-- The open options' checks, called by open_file (so level 4 is the line that
-- called mm.open or mm.create).
local function check_opts(opts, what)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(format("%s: options must be a table", what), 4) end
  for k in pairs(opts) do
    if not OPEN_OPTS[k] then error(format("%s: unknown option '%s'", what, tostring(k)), 4) end
  end
  return opts
end

local function perm_bits(mode, what)
  if mode == nil then return nil end
  if math_type(mode) == "integer" and mode >= 0 and mode <= 511 then return mode end
  if type(mode) == "string" and mode:match "^0?[0-7][0-7][0-7]$" then return tonumber(mode, 8) end
  error(format("%s: option 'mode' must be permission bits, 0 to 0777 (420 or \"644\"), got %s", what,
    tostring(mode)), 4)
end

-- Schema text stored in a file -> its type, so that opening files of one
-- schema again and again parses it once (types never change once made).
-- Held strongly (a weak cache would lose them at every collection between
-- two opens), and emptied when it holds TEXT_CACHE_MAX texts.
local TEXT_CACHE_MAX = 64
local type_of_text, n_texts = {}, 0

-- "struct 'value' is named like a built-in type" for the first such struct
-- or enum inside t (memmap3.schema declares them, for files made so), or nil.
local function builtin_named(t, seen)
  if type(t) ~= "table" or seen[t] then return nil end
  seen[t] = true
  if (t.kind == "struct" or t.kind == "enum") and is_builtin(t.name) then
    return format("%s '%s' is named like a built-in type", t.kind, t.name)
  end
  for _, f in ipairs(t.fields or {}) do
    local found = builtin_named(f.type, seen)
    if found then return found end
  end
  return builtin_named(t.elem, seen) or builtin_named(t.key, seen)
end

-- Called by mm.create and mm.open, never as a tail call: level 3 of its
-- errors is their caller's line.
local function open_file(path, t, opts, create, exclusive, what)
  if type(path) ~= "string" then error(format("%s: path must be a string", what), 3) end
  if path:find("\0", 1, true) then error(format("%s: the path contains a NUL byte", what), 3) end
  opts = check_opts(opts, what)
  if opts.readonly and (create or opts.create) then
    error(format("%s: options 'readonly' and 'create' exclude each other", what), 3)
  end
  local text, size
  if t ~= nil then
    local ok, err = pcall(function()
      t = schema.totype(t, what)
      text = schema.canonical(t)
      compile(t) -- refuse an unsupported root before touching the disk
      -- and a new file whose schema text could not be read back (an open
      -- without a type parses it): containers nested in one another past
      -- what the parser takes (a file that exists already opens as it is)
      -- or read back as another type (a struct or enum declared through
      -- memmap3.schema with a built-in type's name, which mm.struct refuses)
      if not type_of_text[text] then
        local back = schema.parse_schema(text)
        if back and schema.canonical(back) == text then
          if n_texts >= TEXT_CACHE_MAX then type_of_text, n_texts = {}, 0 end
          type_of_text[text], n_texts = back, n_texts + 1
        elseif create or opts.create then
          local exists = io.open(path, "rb")
          local bytes = exists and exists:seek("end")
          if exists then exists:close() end
          if not bytes or bytes == 0 then -- (an empty file is made into a new one too)
            error(back and format("the schema's text would be read back as another type when the file is "
              .. "opened without its type: %s", builtin_named(t, {}) or "a type named like a built-in one")
              or "the schema's text could not be parsed back when the file is opened without its type "
              .. "(containers nested too deep in one another)", 0)
          end
        end
      end
    end)
    if not ok then
      err = tostring(err)
      error(err:sub(1, #what) == what and err or what .. ": " .. err, 3)
    end
    size = t.size
  end
  local reserve = opts.reserve
  if reserve ~= nil and (math_type(reserve) ~= "integer" or reserve < 0) then
    error(format("%s: option 'reserve' must be a byte count", what), 3)
  end
  local f, msg, code = core.file_open(path, text, size, create or opts.create or false, exclusive,
    opts.readonly or false, perm_bits(opts.mode, what), reserve)
  if not f then
    if code == M.ESCHEMA then
      local stored = core.file_read_schema(path)
      local ft = stored and schema.parse_schema(stored)
      local d = ft and schema.diff(ft, t)
      if d then msg = format("%s: %s", path, d) end
    end
    return nil, msg, code
  end
  if not t then
    local stored = core.file_schema(f)
    t = type_of_text[stored]
    if not t then
      local perr
      t, perr = schema.parse_schema(stored)
      if not t then
        core.file_close(f)
        return nil, format("%s: %s", path, perr), M.ECORRUPT
      end
      if n_texts >= TEXT_CACHE_MAX then type_of_text, n_texts = {}, 0 end
      type_of_text[stored], n_texts = t, n_texts + 1
    end
  end
  if opts.durable then core.file_set_durable(f, true) end
  local info = core.file_info(f)
  if info.root_size ~= t.size then
    core.file_close(f)
    return nil, format("%s: root is %d bytes in the file, %d in the schema", path, info.root_size, t.size),
      M.ECORRUPT
  end
  local okc, mt = pcall(compile, t) -- a stored schema may hold what this library refuses
  if not okc then
    core.file_close(f)
    return nil, format("%s: %s", path, tostring(mt)), M.ESCHEMA
  end
  return core.file_root(f, mt)
end

--- Create a new file holding a zeroed root of type t; fails if it exists.
-- @return the root view, or fail, message, code
function M.create(path, t, opts)
  if t == nil then error("mm.create: needs a type", 2) end
  local v, msg, code = open_file(path, t, opts, true, true, "mm.create")
  return v, msg, code
end

--- Open a file. With a type, its layout must match the file's; without,
-- the schema stored in the file is used. Options: create, readonly, mode
-- (permission bits for a new file), reserve (address space, bytes).
-- @return the root view, or fail, message, code
function M.open(path, t, opts)
  if opts == nil and type(t) == "table" and not schema.is_type(t) then t, opts = nil, t end
  local v, msg, code = open_file(path, t, opts, false, false, "mm.open")
  return v, msg, code
end

-- Used by mm3lua_push_root (memmap3_lua.h): the root view of a File
-- userdata a C host made, typed by the schema in the file.
function M._root(f)
  local t, perr = schema.parse_schema(core.file_schema(f))
  if not t then error(core.file_path(f) .. ": " .. perr, 2) end
  local okc, mt = pcall(compile, t) -- a stored schema may hold what this library refuses
  if not okc then error(core.file_path(f) .. ": " .. tostring(mt), 2) end
  return core.file_root(f, mt)
end

-- The File behind a view, or an error naming what was passed.
local function file_of(v, what)
  local mt, f = core.view_info(v)
  if not mt then error(format("%s: expected a memmap3 view, got %s", what, type(v)), 3) end
  return f, mt
end

--- Make everything written to v's file so far durable (msync + fdatasync).
-- @return true, or fail, message, code
-- @function flush
M.flush = from_caller(function(v)
  return core.file_flush((file_of(v, "mm.flush")))
end)

--- Close v's file. Every view of it raises afterwards. Idempotent.
function M.close(v)
  core.file_close((file_of(v, "mm.close")))
end

--- The path v's file was opened with.
-- @function path
M.path = from_caller(function(v)
  return core.file_path((file_of(v, "mm.path")))
end)

--- The type of a view (a memmap3 type object).
function M.schema(v)
  local _, mt = file_of(v, "mm.schema")
  return type_of_meta[mt]
end

--- Header facts of v's file: size, root_size, root_offset, fingerprint,
-- format_version, readonly, and the schema text.
-- @function info
M.info = from_caller(function(v)
  local f = file_of(v, "mm.info")
  local info = core.file_info(f)
  core.file_usage(f, info) -- (walks the heap: mm.info's alone, not every open's)
  info.schema = core.file_schema(f)
  info.path = core.file_path(f)
  return info
end)

--- Run fn(v) as one transaction on v's file: after a crash (kill -9
-- included) the next open sees all of its writes or none; an error inside fn
-- undoes them and is raised again. Nested transactions are savepoints: an
-- inner one that fails (and is caught) undoes only its own writes. Holds the
-- file's cross-process lock while fn runs. Atomic fields are not rolled back.
-- While it runs, another open of the same file in the same thread may not
-- write through its own handle (MM3_EBUSY: it would commit the log).
-- All in C (begin, protected call, commit or rollback), so errors point at
-- the caller's line.
-- @function transaction
-- @param v a view of the file
-- @param fn called as fn(v)
-- @return what fn returns
M.transaction = core.transaction

--- Run fn(v) holding v's file's cross-process writer lock. If the holder
-- dies (kill -9), the next locker rolls its unfinished work back. Unlike a
-- transaction, an error inside fn keeps what fn wrote (and is raised again).
-- fn cannot yield (a coroutine abandoned inside would keep the lock).
-- @function lock
-- @param v a view of the file
-- @param fn called as fn(v)
-- @return what fn returns
M.lock = core.lock

--- Verify a file: its header (at open), its heap and every container's
-- invariants, and that every value can be read. Opens the file read-only when
-- given a path (a file with a dead writer's unfinished work is reported: open
-- it read-write once to roll that back). Through a view whose open the file
-- has outgrown (past its `reserve`) it checks nothing and says so.
-- @param target a path or a view
-- @return true, or nil and a message listing every problem found (and
-- `mm.EWRITERS` when other processes wrote during every one of its 50
-- passes: what it saw may be their writes in progress, no verdict)
function M.check(target)
  local v, opened = target, false
  if type(target) == "string" then
    local err, code
    v, err, code = M.open(target, { readonly = true })
    if not v then return nil, err, code end
    opened = true
  end
  local f, mt = file_of(v, "mm.check")
  -- One pass: the problems it finds, or nil and why when the file outgrew
  -- this open (its containers cannot be read through it: not damage).
  local function pass()
    local problems = {}
    local ok, why, outgrown = core.file_check(f)
    if outgrown then return nil, why end
    if not ok then problems[#problems + 1] = why end
    local owns -- (below)
    local function walk(view, t, path)
      if t.kind == "struct" then
        for _, fl in ipairs(t.fields) do
          local ft = fl.type
          if ft.kind == "struct" or ft.kind == "array" or CONTAINER[ft.kind] or ft.kind == "value" then
            local okv, child = pcall(function() return view[fl.name] end)
            if not okv then problems[#problems + 1] = path .. fl.name .. ": " .. tostring(child)
            elseif ft.kind ~= "value" then walk(child, ft, path .. fl.name .. ".")
            elseif ft.cap == 0 then
              owns("'" .. path .. fl.name .. "'", core.value_blocks(view, fl.offset))
            end
          end
        end
      elseif t.kind == "array" then
        local e = t.elem
        if e.kind == "struct" or e.kind == "array" or CONTAINER[e.kind] or e.kind == "value" then
          for i = 1, t.n do
            local okv, child = pcall(function() return view[i] end)
            if not okv then problems[#problems + 1] = path .. i .. ": " .. tostring(child)
            elseif e.kind ~= "value" then walk(child, e, path .. i .. ".")
            elseif e.cap == 0 then
              owns("'" .. path .. i .. "'", core.value_blocks(view, (i - 1) * e.size))
            end
          end
        end
      elseif CONTAINER[t.kind] then
        local name = path == "" and "the root" or "'" .. path:gsub("%.$", "") .. "'"
        local okc, cwhy = core.check_container(view)
        if not okc then
          problems[#problems + 1] = (path == "" and "root" or (path:gsub("%.$", ""))) .. ": " .. cwhy
        else
          owns(name, core.container_blocks(view))
        end
      end
    end
    -- No heap block may belong to two containers (or to one and the undo
    -- log): a write through one would change the other.
    local owner = {}
    function owns(name, blocks, err)
      if not blocks then
        problems[#problems + 1] = name .. ": " .. tostring(err)
        return
      end
      for _, off in ipairs(blocks) do
        local other = owner[off]
        if other then
          problems[#problems + 1] = string.format("%s and %s share the heap block at offset %d", other, name,
            off)
        else
          owner[off] = name
        end
      end
    end
    owns("the undo log", core.file_blocks(v))
    walk(v, type_of_meta[mt], "")
    if #problems == 0 then
      local okt, terr = pcall(core.totable, v) -- every element and value readable
      if not okt then problems[#problems + 1] = tostring(terr) end
    end
    return problems
  end
  -- Another process writing meanwhile (a read-only open cannot hold it off
  -- with the lock, and a writable one takes it container by container) can
  -- show a half-made write as damage: a pass that found problems while the
  -- file's write sequence moved is made again; one that moved every time
  -- says so.
  local problems, why, busy
  for attempt = 1, 50 do
    local s1 = core.file_seq(f)
    problems, why = pass()
    if not problems or #problems == 0 then break end
    local s2 = core.file_seq(f)
    if s1 % 2 == 0 and s1 == s2 then break end
    if attempt == 50 then
      table.insert(problems, 1, "(other processes wrote to the file during every check: some of these may be "
        .. "their writes in progress)")
      busy = true
    end
    local t0 = os.clock()
    while os.clock() - t0 < 0.002 do end -- (let the writer finish)
  end
  if not problems then
    if opened then M.close(v) end
    return nil, why
  end
  if opened then M.close(v) end
  if #problems > 0 then return nil, table.concat(problems, "\n"), busy and M.EWRITERS or nil end
  return true
end

--- Remove every element of a container (vec, ring, map, segmented,
-- string_array): maps have no methods, so this is how to empty one.
-- (The C function itself: its errors name the caller's line.)
-- @function clear
M.clear = core.clear

--- A plain Lua copy of a view (deep); other values are returned as they are.
-- @function totable
M.totable = from_caller(function(v)
  if core.view_info(v) then return core.totable(v) end
  return v
end)

M._core = core
return M
