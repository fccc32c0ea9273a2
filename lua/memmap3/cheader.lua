--- C headers for memmap3 schemas: structs whose bytes match the layout, so a
-- C program reads and writes a file's fields directly while scripts use the
-- same file (`memmap3 cheader SCHEMA.lua NAME`).
--
-- What a header holds, for a root NAME:
--  * NAME_SCHEMA (the canonical schema text), NAME_ROOT_SIZE and
--    NAME_FINGERPRINT, so that C creates or opens the file without Lua:
--    mm3_file_open(path, &(mm3_file_opts){.create = 1, .schema = NAME_SCHEMA,
--    .root_size = NAME_ROOT_SIZE}, &f);
--  * one `typedef struct Name {...} Name;` per struct, one integer typedef and
--    `#define ENUM_VALUE n` constants per enum, and a struct per container
--    type (named NAME_`<its canonical text` as an identifier>), with the layout
--    documented in memmap3.h above mm3_ckind; each container also gets a
--    `<type>_CTYPE` initialiser of mm3_ctype for the mm3_* container calls;
--  * a static assert on the size and alignment of every struct and the offset
--    of every field, so a compiler that lays anything out differently refuses
--    the header.
-- Macros are upper case (NAME in upper case as their prefix). A field whose
-- name is a C keyword or a macro (one of the header's own, MM3_* of
-- memmap3.h, one of the standard headers: RESERVED), or is in the compiler's
-- space (__x, _X), gets a trailing underscore, and more while the name is
-- another field's or still reserved.
-- The header compiles as C11 and as C++11: MM3_STATIC_ASSERT, MM3_ALIGNAS and
-- MM3_ALIGNOF pick each language's spelling (it declares no functions, so no
-- extern "C" is needed). A field named like a C++ keyword or like a type its
-- struct uses (which C++ refuses) has, under C++ only, a trailing underscore
-- too: `class` stays `class` in C and is `class_` in C++. A type named like a
-- C++ keyword makes the header C only (an #error under C++).
-- @module memmap3.cheader
local schema = require "memmap3.schema"

local format, concat = string.format, table.concat
local type, ipairs, pairs, error, tostring, pcall = type, ipairs, pairs, error, tostring, pcall
local math_max = math.max

local M = {}

local PRIM_C = {
  u8 = "uint8_t", u16 = "uint16_t", u32 = "uint32_t", u64 = "uint64_t",
  i8 = "int8_t", i16 = "int16_t", i32 = "int32_t", i64 = "int64_t",
  usize = "uint64_t", isize = "int64_t", f32 = "float", f64 = "double",
  bool = "uint8_t", char = "uint32_t", u128 = "mm3_u128", i128 = "mm3_i128",
}

local PRIM_NOTE = {
  bool = "bool: 0 or 1",
  char = "char: one Unicode code point (char32_t), 0 when unset",
  usize = "usize: 8 bytes in every file", isize = "isize: 8 bytes in every file",
}

-- Words a C field or type name cannot be: keywords of C11 and C23, and the
-- macros of <assert.h>, <stddef.h> and <stdint.h> (which the header includes),
-- of <stdbool.h>, <stdalign.h>, <stdio.h>, <stdlib.h>, <errno.h> (with POSIX's
-- E* codes) and <limits.h> (which a program may include before it: a field
-- `errno` or `stdout` did not compile after them), and those GCC and Clang
-- predefine in their default GNU modes.
local RESERVED = {}
for w in ([[auto break case char const continue default do double else enum extern float
  for goto if inline int long register restrict return short signed sizeof static struct
  switch typedef union unsigned void volatile while _Alignas _Alignof _Atomic _Bool
  _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local alignas alignof
  bool constexpr false nullptr static_assert thread_local true typeof typeof_unqual
  NULL offsetof unreachable assert NDEBUG __bool_true_false_are_defined
  __alignas_is_defined __alignof_is_defined linux unix i386 MEMMAP3_H
  SIZE_MAX SIZE_WIDTH PTRDIFF_MIN PTRDIFF_MAX PTRDIFF_WIDTH
  SIG_ATOMIC_MIN SIG_ATOMIC_MAX SIG_ATOMIC_WIDTH WCHAR_MIN WCHAR_MAX WCHAR_WIDTH
  WINT_MIN WINT_MAX WINT_WIDTH INTPTR_MIN INTPTR_MAX INTPTR_WIDTH UINTPTR_MAX UINTPTR_WIDTH
  INTMAX_MIN INTMAX_MAX INTMAX_WIDTH UINTMAX_MAX UINTMAX_WIDTH INTMAX_C UINTMAX_C
  stdin stdout stderr EOF BUFSIZ FILENAME_MAX FOPEN_MAX L_tmpnam SEEK_SET SEEK_CUR SEEK_END
  TMP_MAX P_tmpdir EXIT_SUCCESS EXIT_FAILURE RAND_MAX MB_CUR_MAX errno
  CHAR_BIT CHAR_MIN CHAR_MAX SCHAR_MIN SCHAR_MAX UCHAR_MAX SHRT_MIN SHRT_MAX USHRT_MAX
  INT_MIN INT_MAX UINT_MAX LONG_MIN LONG_MAX ULONG_MAX LLONG_MIN LLONG_MAX ULLONG_MAX MB_LEN_MAX
  E2BIG EACCES EADDRINUSE EADDRNOTAVAIL EAFNOSUPPORT EAGAIN EALREADY EBADF EBADMSG EBUSY
  ECANCELED ECHILD ECONNABORTED ECONNREFUSED ECONNRESET EDEADLK EDESTADDRREQ EDOM EDQUOT
  EEXIST EFAULT EFBIG EHOSTUNREACH EIDRM EILSEQ EINPROGRESS EINTR EINVAL EIO EISCONN EISDIR
  ELOOP EMFILE EMLINK EMSGSIZE EMULTIHOP ENAMETOOLONG ENETDOWN ENETRESET ENETUNREACH ENFILE
  ENOBUFS ENODATA ENODEV ENOENT ENOEXEC ENOLCK ENOLINK ENOMEM ENOMSG ENOPROTOOPT ENOSPC ENOSR
  ENOSTR ENOSYS ENOTCONN ENOTDIR ENOTEMPTY ENOTRECOVERABLE ENOTSOCK ENOTSUP ENOTTY ENXIO
  EOPNOTSUPP EOVERFLOW EOWNERDEAD EPERM EPIPE EPROTO EPROTONOSUPPORT EPROTOTYPE ERANGE EROFS
  ESPIPE ESRCH ESTALE ETIME ETIMEDOUT ETXTBSY EWOULDBLOCK EXDEV]]):gmatch "%S+" do
  RESERVED[w] = true
end
for _, n in ipairs { 8, 16, 32, 64 } do
  for _, kind in ipairs { "", "_LEAST", "_FAST" } do
    for _, m in ipairs { "INT%s%d_MIN", "INT%s%d_MAX", "INT%s%d_WIDTH", "UINT%s%d_MAX", "UINT%s%d_WIDTH" } do
      RESERVED[format(m, kind, n)] = true
    end
  end
  RESERVED["INT" .. n .. "_C"], RESERVED["UINT" .. n .. "_C"] = true, true
end
-- Keywords of C++ (to C++23) that C11 does not have: a field so named gets a
-- trailing underscore under C++, a type so named makes the header C only.
local CXX_KEYWORDS = {}
for w in ([[alignas alignof and and_eq asm bitand bitor bool catch char8_t char16_t char32_t
  class compl concept consteval constexpr constinit const_cast co_await co_return co_yield
  decltype delete dynamic_cast explicit export false friend mutable namespace new noexcept
  not not_eq nullptr operator or or_eq private protected public reinterpret_cast requires
  static_assert static_cast template this thread_local throw true try typeid typename using
  virtual wchar_t xor xor_eq]]):gmatch "%S+" do
  CXX_KEYWORDS[w] = true
end
-- The macros every header defines for C and C++ alike (under one guard).
local COMPAT = {
  "#ifndef MM3_CHEADER_COMPAT",
  "#define MM3_CHEADER_COMPAT",
  "#ifdef __cplusplus",
  "#define MM3_STATIC_ASSERT(e, msg) static_assert(e, msg)",
  "#define MM3_ALIGNOF(t) alignof(t)",
  "#define MM3_ALIGNAS(n) alignas(n)",
  "#else",
  "#define MM3_STATIC_ASSERT(e, msg) _Static_assert(e, msg)",
  "#define MM3_ALIGNOF(t) _Alignof(t)",
  "#define MM3_ALIGNAS(n) _Alignas(n)",
  "#endif",
  "#endif",
}
-- Type names of the included headers, and the header's own.
local TAKEN_TYPES = {}
for w in ([[int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t intptr_t uintptr_t
  intmax_t uintmax_t size_t ptrdiff_t max_align_t wchar_t mm3_u128 mm3_i128]]):gmatch "%S+" do
  TAKEN_TYPES[w] = true
end

local function align_up(n, a) return (n + a - 1) // a * a end

local function fail(msg) error("memmap3 cheader: " .. msg, 0) end

-- A C string literal, split after each newline.
local function c_string(s)
  local lines = {}
  for line, nl in s:gmatch "([^\n]*)(\n?)" do
    if line == "" and nl == "" then break end
    lines[#lines + 1] = '"' .. line:gsub('[\\"]', "\\%0"):gsub("[%c\128-\255]", function(c)
      return format("\\%03o", c:byte())
    end) .. (nl ~= "" and "\\n" or "") .. '"'
  end
  return concat(lines, " \\\n  ")
end

-- FNV-1a 64, as the layout fingerprint (integers wrap like uint64_t).
local function fnv1a64(s)
  local h = -3750763034362895579 -- 0xcbf29ce484222325
  for i = 1, #s do
    h = (h ~ s:byte(i)) * 0x100000001b3
  end
  return h
end

local function definition(t) return schema.describe(t) end

local CONTAINER_KIND = {
  vec = "MM3_VEC", ring = "MM3_RING", segmented = "MM3_SEGMENTED", value = "MM3_VALUE",
}

--- The text of a C header for the schema whose root is T.
-- @param T the root type, or a table of named types ({Save = Save, ...}) from
--   which `name` picks the root
-- @param name the root's name: prefix of the macros (NAME_SCHEMA...); default
--   the root struct's or enum's own name
-- @return the header text; raises "memmap3 cheader: ..." on a bad schema or a
--   name clash
function M.generate(T, name)
  if type(T) == "table" and not schema.is_type(T) then
    if type(name) ~= "string" then fail("a NAME is needed to pick the root type") end
    local t = T[name]
    if t == nil then
      local names = {}
      for k, v in pairs(T) do
        if type(k) == "string" and (schema.is_type(v) or type(v) == "string") then names[#names + 1] = k end
      end
      table.sort(names)
      fail(format("no type named '%s' in the schema (it has: %s)", name,
        #names > 0 and concat(names, ", ") or "no named types"))
    end
    T = t
  end
  local ok, t = pcall(schema.totype, T, "root")
  if not ok then fail(tostring(t)) end
  T = t
  if name == nil then
    if T.kind ~= "struct" and T.kind ~= "enum" then
      fail("a NAME is needed for a root that is not a struct")
    end
    name = T.name
  end
  if type(name) ~= "string" or not name:match "^[%a_][%w_]*$" then
    fail(format("NAME must be an identifier, got %s", tostring(name)))
  end
  if RESERVED[name] then fail(format("NAME '%s' is reserved in C", name)) end
  local prefix = name:match "^_" or name:upper():match "^MM3_" -- the compiler's names, memmap3.h's
  if prefix then
    fail(format("NAME '%s' begins with %s, so would the header's macros (%s_SCHEMA): give another NAME",
      name, prefix, name:upper()))
  end

  local P = name:upper()          -- macro prefix
  local out = {}                  -- lines of the body (after the macros)
  local taken = {}                -- every C name at file scope -> what it is
  local named = {}                -- struct/enum name -> type
  local cname_of = {}             -- container canonical text -> C type name
  local macros = {}                -- every macro the header defines
  local deferred = {}             -- structs whose fields wait for every macro
  local cxx_only = {}             -- why the header is C only, if it is
  local uses128 = false

  local function take(id, what)
    if RESERVED[id] or TAKEN_TYPES[id] then fail(format("%s: '%s' is reserved in C", what, id)) end
    if id:match "^_" then -- the compiler's (and __linux__ is a macro of GCC's)
      fail(format("%s: '%s' is reserved in C (at file scope, names that begin with _ are the compiler's)",
        what, id))
    end
    if id:match "^MM3_" then
      fail(format("%s: '%s' is reserved: memmap3.h's names begin with MM3_", what, id))
    end
    if taken[id] then fail(format("%s: the C name '%s' is already %s", what, id, taken[id])) end
    taken[id] = what
  end
  local function take_macro(id, what)
    take(id, what)
    macros[id] = true
  end
  for _, m in ipairs { "SCHEMA", "ROOT_SIZE", "FINGERPRINT" } do
    take_macro(P .. "_" .. m, "a macro of the header")
  end
  take_macro(P .. "_MM3_H", "the include guard")
  for _, m in ipairs { "MM3_CHEADER_COMPAT", "MM3_STATIC_ASSERT", "MM3_ALIGNOF", "MM3_ALIGNAS",
    "MM3_INT128_TYPES" } do
    taken[m], macros[m] = "a macro of the header", true -- memmap3's own name: not refused
  end

  local sink = out
  local function emit(s) sink[#sink + 1] = s end

  -- A declaration of `d` (a declarator: a name, maybe with [n]) of type t.
  local function decl(ty, d)
    local k = ty.kind
    if k == "prim" then return PRIM_C[ty.name] .. " " .. d
    elseif k == "string" then return format("char %s[%d]", d, ty.cap)
    elseif k == "bytes" then return format("uint8_t %s[%d]", d, ty.cap)
    elseif k == "string_array" then return format("char %s[%d][%d]", d, ty.n, ty.len)
    elseif k == "array" then return decl(ty.elem, format("%s[%d]", d, ty.n))
    elseif k == "struct" or k == "enum" then return ty.name .. " " .. d
    end
    return cname_of[ty.canon] .. " " .. d
  end

  local function note(ty, atomic)
    local n
    if ty.kind == "prim" then n = PRIM_NOTE[ty.name]
    elseif ty.kind == "string" then n = format("string<%d>: UTF-8, NUL-padded", ty.cap)
    elseif ty.kind == "bytes" then n = format("bytes<%d>", ty.cap)
    elseif ty.kind == "string_array" then n = ty.canon .. ": NUL-padded strings"
    elseif ty.kind == "array" then
      local base = ty
      while base.kind == "array" do base = base.elem end
      if base.kind == "prim" then n = PRIM_NOTE[base.name] end
      if base.kind == "string" then n = "UTF-8, NUL-padded" end
    end
    if atomic then n = "atomic: use mm3_atomic_*" .. (n and "; " .. n or "") end
    return n
  end

  -- Emit `typedef struct cname {...} cname;` whose members sit at the given
  -- offsets (explicit padding wherever C would not put them there), of the
  -- given size and alignment, followed by its static asserts.
  -- members: {decl =, name =, off =, size =, align =, note =}
  local function emit_struct(cname, members, size, align, comment)
    if comment then emit("/* " .. comment .. " */") end
    local lines, asserts = {}, {}
    local cur, maxa, npad = 0, 1, 0
    for _, m in ipairs(members) do maxa = math_max(maxa, m.align) end
    local force = align > maxa -- raise the struct's alignment to the layout's
    -- C++ refuses a member named like a C++ keyword or like a type the struct
    -- uses (it "changes meaning"): under C++ it gets a trailing underscore
    -- (more while that name is taken), and C keeps its name.
    local member, uses = {}, { uint8_t = true }
    for _, m in ipairs(members) do
      member[m.name] = true
      uses[m.decl:match "^%S+"] = true
    end
    for _, m in ipairs(members) do
      if CXX_KEYWORDS[m.name] or uses[m.name] then
        local x = m.name .. "_"
        while member[x] or uses[x] or CXX_KEYWORDS[x] or RESERVED[x] or macros[x] do x = x .. "_" end
        member[x] = true
        m.cxx = x
        m.cxx_decl = m.decl:gsub("^(%S+ )" .. m.name, "%1" .. x, 1)
      end
    end
    local function pad(n)
      while member["_pad" .. npad] do npad = npad + 1 end
      lines[#lines + 1] = format("  uint8_t _pad%d[%d];", npad, n)
      npad = npad + 1
    end
    for i, m in ipairs(members) do
      local at = align_up(cur, m.align)
      if m.off < at then fail(format("internal: %s.%s at %d, C puts it at %d", cname, m.name, m.off, at)) end
      if m.off > at then pad(m.off - cur) end
      local function line(d, n, why)
        local text = d .. ";"
        if i == 1 and force then text = format("MM3_ALIGNAS(%d) %s", align, text) end
        if why then text = text .. " /* " .. why .. " */" end
        return "  " .. text, format('MM3_STATIC_ASSERT(offsetof(%s, %s) == %d, "%s.%s: offset");',
          cname, n, m.off, cname, n)
      end
      local text, check = line(m.decl, m.name, m.note)
      if m.cxx then
        -- its comment names the field, as a renamed field's already does
        local xnote = m.note
        if not (xnote and xnote:match "^field '") then
          xnote = format("field '%s'%s", m.name, xnote and "; " .. xnote or "")
        end
        local xtext, xcheck = line(m.cxx_decl, m.cxx, xnote)
        lines[#lines + 1] = "#ifdef __cplusplus"
        lines[#lines + 1] = xtext
        lines[#lines + 1] = "#else"
        lines[#lines + 1] = text
        lines[#lines + 1] = "#endif"
        asserts[#asserts + 1] = "#ifdef __cplusplus\n" .. xcheck .. "\n#else\n" .. check .. "\n#endif"
      else
        lines[#lines + 1] = text
        asserts[#asserts + 1] = check
      end
      cur = m.off + m.size
    end
    maxa = math_max(maxa, align)
    if align_up(cur, maxa) ~= size then pad(size - cur) end
    emit(format("typedef struct %s {", cname))
    for _, l in ipairs(lines) do emit(l) end
    emit(format("} %s;", cname))
    emit(format('MM3_STATIC_ASSERT(sizeof(%s) == %d, "%s: size");', cname, size, cname))
    emit(format('MM3_STATIC_ASSERT(MM3_ALIGNOF(%s) == %d, "%s: alignment");', cname, align, cname))
    for _, a in ipairs(asserts) do emit(a) end
    emit("")
  end

  local function ctype_macro(cname, fields)
    local parts = {}
    for _, kv in ipairs(fields) do parts[#parts + 1] = format(".%s = %s", kv[1], tostring(kv[2])) end
    take_macro(cname .. "_CTYPE", "the mm3_ctype initialiser of " .. cname)
    emit(format("/* mm3_ctype t = %s_CTYPE; mm3_ctype_init(&t); (needs memmap3.h) */", cname))
    emit(format("#define %s_CTYPE {%s}", cname, concat(parts, ", ")))
    emit("")
  end

  local visit

  local function container_name(ty)
    local base = name .. "_" .. ty.canon:gsub("[^%w]+", "_"):gsub("_$", "")
    local cname, n = base, 1
    while taken[cname] or taken[cname .. "_node"] or taken[cname .. "_CTYPE"] do
      n = n + 1
      cname = base .. "_" .. n
    end
    take(cname, "the C type of " .. ty.canon)
    cname_of[ty.canon] = cname
    return cname
  end

  -- A member of a struct; `scalar` for an integer of `size` bytes.
  local function mem(d, n, off, size, align, what)
    return { decl = d, name = n, off = off, size = size, align = align, note = what }
  end
  local function scalar(n, off, size, what)
    return mem(format("uint%d_t %s", size * 8, n), n, off, size, size, what)
  end
  local function typed(ty, n, off, count)
    local d = count and format("%s[%d]", n, count) or n
    return mem(decl(ty, d), n, off, ty.size * (count or 1), ty.align, note(ty))
  end

  local function emit_container(ty)
    if cname_of[ty.canon] then return end
    local k = ty.kind
    if k == "string_array" then return end -- a plain char[N][LEN]
    local e, key = ty.elem, ty.key
    if e then visit(e) end
    if key then visit(key) end
    local cname = container_name(ty)
    if k == "vec" or k == "ring" then
      emit_struct(cname, {
        scalar("len", 0, 8, k == "ring" and "pushes so far: the oldest item is items[(len - min(len, N)) % N]"
          or "items in use"),
        typed(e, "items", ty.align, ty.cap),
      }, ty.size, ty.align, ty.canon)
      ctype_macro(cname, { { "kind", CONTAINER_KIND[k] }, { "elem_size", e.size }, { "elem_align", e.align },
        { "cap", ty.cap } })
    elseif k == "segmented" then
      emit_struct(cname, {
        scalar("len", 0, 8, "items"),
        mem("uint64_t seg[56]", "seg", 8, 448, 8, "file offsets of the segments: use mm3_seg_at"),
      }, ty.size, ty.align, ty.canon)
      ctype_macro(cname, { { "kind", CONTAINER_KIND[k] }, { "elem_size", e.size },
        { "elem_align", e.align } })
    elseif k == "value" and ty.cap > 0 then
      emit_struct(cname, {
        scalar("len", 0, 4, "bytes used in data"),
        mem(format("uint8_t data[%d]", ty.cap), "data", 4, ty.cap, 1,
          "a serialised Lua value (src/lmm3_value.c)"),
      }, ty.size, ty.align, ty.canon)
      ctype_macro(cname, { { "kind", CONTAINER_KIND[k] }, { "cap", ty.cap } })
    elseif k == "value" then
      emit_struct(cname, {
        scalar("off", 0, 8, "file offset of a heap block: use mm3_value_get"),
        scalar("len", 8, 8, "its length in bytes"),
      }, ty.size, ty.align, ty.canon)
      ctype_macro(cname, { { "kind", CONTAINER_KIND[k] } })
    elseif k == "map" then
      -- Node layouts as mm3_ctype_init computes them (src/mm3_vec.c).
      local fixed = ty.cap ~= nil
      local na = math_max(8, key.align, e.align)
      local key_off = align_up(fixed and 8 or 16, key.align)
      local val_off = align_up(key_off + key.size, e.align)
      local node_size = align_up(val_off + e.size, na)
      local node = cname .. "_node"
      take(node, "the node type of " .. ty.canon)
      local head
      if fixed then
        head = { scalar("next", 0, 4, "1-based index of the next node of the chain, 0 at its end"),
          scalar("live", 4, 4, "1 while the node holds an entry") }
      else
        head = { scalar("next", 0, 8, "file offset of the next node of the chain"), scalar("hash", 8, 8) }
      end
      head[3] = typed(key, "key", key_off)
      head[4] = typed(e, "val", val_off)
      emit_struct(node, head, node_size, na, "an entry of " .. ty.canon)
      if fixed then
        local buckets = 8
        while buckets < ty.cap do buckets = buckets * 2 end
        emit_struct(cname, {
          scalar("count", 0, 8, "entries"),
          scalar("free", 8, 4, "1-based index of the first free node, 0: none"),
          scalar("used", 12, 4, "nodes[0 .. used) have been used"),
          mem(format("uint32_t buckets[%d]", buckets), "buckets", 16, 4 * buckets, 4,
            "1-based index of each chain's first node"),
          mem(format("%s nodes[%d]", node, ty.cap), "nodes", align_up(16 + 4 * buckets, na),
            node_size * ty.cap, na),
        }, ty.size, ty.align, ty.canon .. ": keys hash with the file's seed; look them up with mm3_hmap_get")
      else
        emit_struct(cname, {
          scalar("count", 0, 8, "entries"),
          mem("uint64_t table[2]", "table", 8, 16, 8, "file offsets of the bucket tables"),
          mem("uint32_t log2_size[2]", "log2_size", 24, 8, 4),
          scalar("rehash", 32, 8, "next bucket of table[0] to move + 1; 0: no resize under way"),
          scalar("reserved", 40, 8),
        }, ty.size, ty.align, ty.canon .. ": the head of a growable map; nodes live in the heap (mm3_hmap_*)")
      end
      ctype_macro(cname, { { "kind", fixed and "MM3_FMAP" or "MM3_HMAP" }, { "elem_size", e.size },
        { "elem_align", e.align }, { "key_size", key.size }, { "key_align", key.align },
        { "key_is_string", key.kind ~= "prim" and 1 or 0 }, { "cap", ty.cap or 0 } })
    end
  end

  local function emit_named(ty)
    local prev = named[ty.name]
    if prev then
      if prev ~= ty and definition(prev) ~= definition(ty) then
        fail(format("two types are named '%s' with different layouts:\n  %s\n  %s", ty.name,
          definition(prev), definition(ty)))
      end
      return
    end
    named[ty.name] = ty
    if ty.kind == "enum" then
      take(ty.name, "enum " .. ty.name)
      emit(format("/* %s */", definition(ty)))
      emit(format("typedef %s %s;", PRIM_C[ty.base.name], ty.name))
      local up = ty.name:upper()
      for i, v in ipairs(ty.names) do
        local m = up .. "_" .. v:upper()
        take_macro(m, format("the constant of %s.%s", ty.name, v))
        emit(format("#define %s %d", m, i - 1))
      end
      emit(format('MM3_STATIC_ASSERT(sizeof(%s) == %d, "%s: size");', ty.name, ty.size, ty.name))
      emit("")
      return
    end
    for _, f in ipairs(ty.fields) do visit(f.type) end
    take(ty.name, "struct " .. ty.name)
    -- The members once every macro is known (an enum met later may define one).
    out[#out + 1] = false
    deferred[#deferred + 1] = { slot = #out, ty = ty }
  end

  -- A field name C cannot use as it is: a keyword, or a macro of this header,
  -- of memmap3.h (MEMMAP3_H, and MM3_*: none of those ends in _), of the
  -- standard headers, or maybe one the compiler predefines: names that start
  -- with __ or _ and a capital are its own (__linux__ is 1 with GCC).
  local function unusable(id) return RESERVED[id] or macros[id] end
  local function macro_space(id) return id:match "^MM3_" or id:match "^__" or id:match "^_%u" end

  local function emit_fields(ty)
    local own = {}
    for _, f in ipairs(ty.fields) do own[f.name] = true end
    local members, used = {}, {}
    for i, f in ipairs(ty.fields) do
      local cf = f.name
      if unusable(cf) or macro_space(cf) then
        repeat cf = cf .. "_" until not (unusable(cf) or own[cf] or used[cf])
      end
      used[cf] = true
      local n = note(f.type, f.atomic)
      if cf ~= f.name then n = format("field '%s'%s", f.name, n and "; " .. n or "") end
      members[i] = mem(decl(f.type, cf), cf, f.offset, f.type.size, f.type.align, n)
    end
    emit_struct(ty.name, members, ty.size, ty.align, nil)
  end

  function visit(ty)
    local k = ty.kind
    if k == "prim" then
      if ty.name == "u128" or ty.name == "i128" then uses128 = true end
    elseif k == "struct" or k == "enum" then emit_named(ty)
    elseif k == "array" then visit(ty.elem)
    elseif k == "string" or k == "bytes" then return
    else emit_container(ty)
    end
  end

  visit(T)
  local ok2, text = pcall(schema.canonical, T)
  if not ok2 then fail(tostring(text)) end
  -- The root under NAME, when it is not already a type of that name.
  if not ((T.kind == "struct" or T.kind == "enum") and T.name == name) then
    take(name, "the root type")
    emit(format("/* the root: %s */", T.canon))
    emit(format("typedef %s;", decl(T, name)))
    emit(format('MM3_STATIC_ASSERT(sizeof(%s) == %d, "%s: size");', name, T.size, name))
    emit("")
  end
  for _, d in ipairs(deferred) do
    sink = {}
    emit_fields(d.ty)
    out[d.slot] = concat(sink, "\n")
  end
  sink = out
  local names = {}
  for id in pairs(taken) do
    if CXX_KEYWORDS[id] then names[#names + 1] = id end
  end
  table.sort(names)
  for _, id in ipairs(names) do cxx_only[#cxx_only + 1] = format("%s is a C++ keyword", id) end

  local head = {
    format("/* Generated by `memmap3 cheader` for the root %s: do not edit.", name),
    " *",
    " * The structs below have memmap3's layout byte for byte (the static asserts",
    " * check every size, alignment and offset). Open the file from C with",
    format(" *   mm3_file_open(path, &(mm3_file_opts){.create = 1, .schema = %s_SCHEMA,", P),
    format(" *                 .root_size = %s_ROOT_SIZE}, &f);", P),
    format(" * and read it through (%s *)mm3_file_root(f). Scalars are read and written", name),
    " * in place; atomic fields with mm3_atomic_*; containers with the mm3_* calls",
    " * of memmap3.h (they take the file's lock and make each change crash-safe),",
    " * given the mm3_ctype their *_CTYPE macro describes.",
    " *",
    " * A field whose name is a C keyword or a macro (of this header, MM3_* of",
    " * memmap3.h, or of <stdint.h>, <stddef.h>, <assert.h>, <stdbool.h>,",
    " * <stdalign.h>, <stdio.h>, <stdlib.h>, <errno.h>, <limits.h>) has a",
    " * trailing underscore, another while that name is",
    " * another field's: `int` is int_, and int__ if the struct has a field int_.",
    " * Its comment gives the field's name in the schema. Under C++ a field named",
    " * like a C++ keyword or like a type of its struct is renamed the same way",
    " * (`class` is class_ in C++ only), in an #ifdef __cplusplus of its own.",
    " */",
    format("#ifndef %s_MM3_H", P),
    format("#define %s_MM3_H", P),
    "",
    "#include <assert.h>",
    "#include <stddef.h>",
    "#include <stdint.h>",
    "",
  }
  if #cxx_only > 0 then
    head[#head + 1] = "#ifdef __cplusplus"
    head[#head + 1] = format("#error %s", c_string("this header is C only: " .. concat(cxx_only, "; ")))
    head[#head + 1] = "#endif"
    head[#head + 1] = ""
  end
  for _, l in ipairs(COMPAT) do head[#head + 1] = l end
  for _, l in ipairs {
    "",
    format("#define %s_SCHEMA \\\n  %s", P, c_string(text)),
    format("#define %s_ROOT_SIZE %d", P, T.size),
    format("#define %s_FINGERPRINT UINT64_C(0x%016x)", P, fnv1a64(text)),
    "",
  } do head[#head + 1] = l end
  if uses128 then
    for _, l in ipairs {
      "#ifndef MM3_INT128_TYPES",
      "#define MM3_INT128_TYPES",
      "__extension__ typedef unsigned __int128 mm3_u128;",
      "__extension__ typedef __int128 mm3_i128;",
      "#endif",
      "",
    } do head[#head + 1] = l end
  end
  local all = concat(head, "\n") .. "\n" .. concat(out, "\n") .. "\n" .. format("#endif /* %s_MM3_H */\n", P)
  return (all:gsub("\n\n\n+", "\n\n"))
end

--- Load a schema module (a Lua file returning a type or a table of named
-- types) and generate the header for its root `name`.
-- @return the header text, or nil, a message and "usage" when the types are a table and
-- no name picks one (the caller's mistake)
function M.from_file(path, name)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, types = pcall(chunk)
  if not ok then
    local why = tostring(types)
    -- a position in the file names it already ("s.lua:3: ..."); the command line names it once
    if why:sub(1, #path + 1) == path .. ":" and why:sub(#path + 2):match "^%d+: " then return nil, why end
    return nil, format("%s: %s", path, why)
  end
  if type(types) ~= "table" then
    return nil, format("%s: must return a type or a table of named types, got %s", path, type(types))
  end
  local ok2, text = pcall(M.generate, types, name)
  if not ok2 then
    -- (a table of named types and no name: the caller's usage error)
    local usage = name == nil and not schema.is_type(types) and "usage" or nil
    return nil, (tostring(text):gsub("^memmap3 cheader: ", "")), usage
  end
  return text
end

return M
