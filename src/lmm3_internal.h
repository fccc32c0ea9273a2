/*
 * lmm3_internal.h - internals shared by the Lua binding's files.
 */
#ifndef LMM3_INTERNAL_H
#define LMM3_INTERNAL_H

#include <lauxlib.h>
#include <lua.h>

#include "mm3_internal.h"
#include "memmap3_lua.h"

#define LMM3_MAP "memmap3.Map"

/* Push fail, "<what>: <message>", code and return 3 (luaL_fileresult's
   convention, with memmap3's own codes too). */
MM3_INTERNAL int lmm3_fail(lua_State *L, const char *what, int code);

/* Raise if table at idx holds a key not in the NULL-terminated list. */
MM3_INTERNAL void lmm3_check_opts(lua_State *L, int idx, const char *what,
                                  const char *const allowed[]);
/* Option readers; idx is an options table or none/nil. */
MM3_INTERNAL int lmm3_opt_bool(lua_State *L, int idx, const char *key, int def);
MM3_INTERNAL lua_Integer lmm3_opt_int(lua_State *L, int idx, const char *key, lua_Integer def,
                                      int *present);
MM3_INTERNAL const char *lmm3_opt_string(lua_State *L, int idx, const char *key, const char *def);

/* A non-negative integer argument (an offset or length). */
MM3_INTERNAL uint64_t lmm3_check_size(lua_State *L, int arg, const char *what);

/* string.pack / string.unpack over raw bytes, aligned relative to offset 0.
   unpack pushes the values and the next 0-based offset, returns their count;
   pack encodes the arguments from stack index arg into a buffer and pushes
   it as a string (so nothing is written if an argument is bad). */
MM3_INTERNAL int lmm3_unpack(lua_State *L, const char *fmt, const uint8_t *data, size_t len,
                             size_t pos);
MM3_INTERNAL void lmm3_pack(lua_State *L, const char *fmt, int arg, size_t pos);

MM3_INTERNAL void lmm3_open_map(lua_State *L);
MM3_INTERNAL void lmm3_open_file(lua_State *L);
MM3_INTERNAL void lmm3_open_view(lua_State *L);
MM3_INTERNAL void lmm3_open_atomic(lua_State *L);

/* ---- files and views ---- */

#define LMM3_FILE_MT "memmap3.File"
#define LMM3_ATOMIC_MT "memmap3.Atomic"

/* The File userdata; every view keeps it alive through user value 1. */
typedef struct lmm3_file {
  uint32_t magic; /* LMM3_FILE_MAGIC (another userdata given its metatable has none) */
  mm3_file *f;    /* NULL once closed */
  int owned;      /* 0: borrowed from a C host: close only detaches */
  int readonly;
  int txn_open;   /* transactions begun through this handle and not ended */
  int closing;    /* closed by a finalizer: f stays mapped until this userdata is
                     collected, since the operation that ran the finalizer may
                     still hold pointers into it; every later use raises */
  int busy;       /* copies under way (mm.totable), which may run Lua code */
  char path[256]; /* the path it was opened with (cut at 255 bytes), for errors after the close */
} lmm3_file;

/* Whether the file is closed (or closing) for every new use. */
#define LMM3_CLOSED(fb) (!(fb)->f || (fb)->closing)

#define LMM3_VIEW_MAGIC 0x6d6d3376u /* "mm3v" */
#define LMM3_FILE_MAGIC 0x6d6d3366u /* "mm3f" */

/* The userdata at idx of metatable tname, size bytes, starting with magic:
   the debug library can give one type's metatable to another userdata, which
   luaL_checkudata then takes. Raises a type error naming tname otherwise. */
static inline void *lmm3_checkudata(lua_State *L, int idx, const char *tname, size_t size, uint32_t magic) {
  void *u = luaL_testudata(L, idx, tname);
  if (!u) luaL_typeerror(L, idx, tname);
  if (lua_rawlen(L, idx) != size || *(const uint32_t *)u != magic)
    luaL_argerror(L, idx, lua_pushfstring(L, "not a %s (another userdata given its metatable)", tname));
  return u;
}

/* A struct or array view: a typed window on bytes of an open file. Its
   metatable (one per type) says which type; user value 1 is the File
   userdata, user value 2 a weak cache of child views. */
/* Per-type lookup info in C, so that a field access is a pointer probe
   instead of Lua table lookups (see lmm3_view.c). Lives in a userdata that
   the type's metatable keeps alive. */
typedef struct lmm3_slot {
  const char *key;   /* the interned field-name string (NULL: empty slot) */
  int64_t desc;      /* simple scalar descriptor, or -1 */
  int uv;            /* user value caching this field's child view, or 0 */
} lmm3_slot;

typedef struct lmm3_tinfo {
  const void *meta;  /* the metatable it belongs to (lua_topointer): a view whose metatable
                        is another (debug.setmetatable) is no view of this type */
  int kind;          /* LMM3_STRUCT or LMM3_ARRAY */
  int nuv;           /* user values a view of this type has */
  int64_t n, esize;  /* arrays: length, element size */
  int64_t edesc;     /* arrays, containers: simple element descriptor, or -1 */
  int64_t kdesc;     /* maps: simple key descriptor */
  const void *up;    /* the table its metamethods read its layout from, as an upvalue (structs:
                        the fields; arrays, containers: a table element descriptor), lua_topointer:
                        a metamethod taken from another type's metatable (debug.getmetatable)
                        and called with this type's view is refused (lmm3_up_is) */
  mm3_ctype ct;      /* containers: the C core's description */
  uint32_t mask;     /* structs: slots - 1 */
  lmm3_slot slots[]; /* structs: open addressing on the key pointer */
} lmm3_tinfo;

typedef struct lmm3_view {
  uint32_t magic;
  uint32_t root;  /* 1 for a file's root view: its __close closes the file */
  uint8_t *p;
  lmm3_file *fb;
  const lmm3_tinfo *ti;
} lmm3_view;

/* Type codes, shared with lua/memmap3/schema.lua (keep in step). */
enum {
  LMM3_U8 = 1, LMM3_U16, LMM3_U32, LMM3_U64, LMM3_I8, LMM3_I16, LMM3_I32, LMM3_I64,
  LMM3_F32, LMM3_F64, LMM3_BOOL, LMM3_CHAR, LMM3_U128, LMM3_I128, LMM3_STRING, LMM3_BYTES,
  LMM3_STRUCT = 32, LMM3_ARRAY, LMM3_ENUM, LMM3_ATOMIC,
  LMM3_VEC, LMM3_RING, LMM3_SARRAY, LMM3_FMAP, LMM3_HMAP, LMM3_SEG, LMM3_VALUE
};
#define LMM3_IS_CONTAINER(code) ((code) >= LMM3_VEC && (code) <= LMM3_SEG)

/* Descriptor of a field or element. Simple scalars are one integer:
   offset << 32 | size << 8 | code. Others are tables:
   {code, offset, size, meta (struct/array), names/values (enum), base code}. */
#define LMM3_D_CODE 1
#define LMM3_D_OFFSET 2
#define LMM3_D_SIZE 3
#define LMM3_D_META 4
#define LMM3_D_NAMES 5
#define LMM3_D_VALUES 6
#define LMM3_D_BASE 7

/* __pairs of arrays and sequences: 1..n through __index, four values. */
MM3_INTERNAL int lmm3_seq_pairs(lua_State *L);

/* Raise "file was truncated by another program". */
MM3_INTERNAL int lmm3_truncated_error(lua_State *L, lmm3_file *fb);
/* Raise "attempt to use a closed memmap3 file (its path)". */
MM3_INTERNAL int lmm3_closed_error(lua_State *L, const lmm3_file *fb);
/* Keep f's path in fb, for lmm3_closed_error. */
MM3_INTERNAL void lmm3_keep_path(lmm3_file *fb, const mm3_file *f);

/* Push a view of the type whose metatable is at index meta, at p. */
MM3_INTERNAL void lmm3_push_view(lua_State *L, int fileidx, lmm3_file *fb, uint8_t *p, int meta);
MM3_INTERNAL lmm3_view *lmm3_check_view(lua_State *L, int idx);
/* The view at idx, or NULL for any other value (never raises; the debug
   library can hand a metamethod anything). A light userdata may point
   anywhere and has no length, and a string's pointer is NULL: the length is
   checked before the magic is read. */
/* The view at idx, or NULL: also when its metatable is not its type's (the
   debug library can swap them; the metamethods and fields of the other type
   would then read and write past the view's bytes). Its own type's
   metatable stays alive: the view keeps it (lmm3_push_view). */
/* The type info of metatable meta (its __mm3ti), or NULL when it holds none
   of its own (replaced through the debug library). Pushes nothing. */
static inline const lmm3_tinfo *lmm3_tinfo_of(lua_State *L, int meta) {
  meta = lua_absindex(L, meta);
  lua_getfield(L, meta, "__mm3ti");
  const lmm3_tinfo *ti = lua_touserdata(L, -1);
  if (ti && (lua_type(L, -1) != LUA_TUSERDATA || lua_rawlen(L, -1) < sizeof *ti || ti->meta != lua_topointer(L, meta)))
    ti = NULL;
  lua_pop(L, 1);
  return ti;
}
static inline lmm3_view *lmm3_view_unchecked(lua_State *L, int idx) { /* (its metatable not compared) */
  lmm3_view *v = lua_touserdata(L, idx);
  return v && lua_rawlen(L, idx) == sizeof *v && v->magic == LMM3_VIEW_MAGIC ? v : NULL;
}
/* Whether upvalue upv of the running metamethod is ti's layout table (ti->up). */
static inline int lmm3_up_is(lua_State *L, int upv, const lmm3_tinfo *ti) {
  return ti->up && lua_topointer(L, lua_upvalueindex(upv)) == ti->up;
}
static inline lmm3_view *lmm3_view_or_null(lua_State *L, int idx) {
  lmm3_view *v = lmm3_view_unchecked(L, idx);
  if (!v || !v->ti) return NULL; /* (no type: a made-up metatable's) */
  if (!lua_getmetatable(L, idx)) return NULL;
  const void *mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  return mt == v->ti->meta ? v : NULL;
}
/* Close the File userdata at idx (idempotent; borrowed files are detached). */
MM3_INTERNAL void lmm3_file_close(lua_State *L, int idx);
/* Elements of containers. edesc >= 0 is a simple descriptor (offset 0);
   otherwise descidx is the stack index of a table descriptor. */
MM3_INTERNAL void lmm3_push_elem(lua_State *L, int viewidx, int64_t edesc, int descidx, uint8_t *p);
/* Encode the Lua value at vidx into buf (size bytes; zeroed first). Raises
   naming where on a bad value: call it before taking any lock. Containers
   (and growable values) the value names inside cannot be built in buf: they
   are left empty there and set aside, to be assigned once the element is
   stored in the file (lmm3_apply_deferred, in the same transaction). Returns
   the stack index of the list set aside, or 0 (nothing pushed): none. */
MM3_INTERNAL int lmm3_encode_defer(lua_State *L, int vidx, int64_t edesc, int descidx, uint8_t *buf,
                                   size_t size, const char *where);
/* lmm3_encode_defer for the element at position posidx (a stack index; 0:
   none) of a whole sequence being stored, or (mapkey) the value of that key
   of a whole map: its errors say "element i", or "value of key k". */
MM3_INTERNAL int lmm3_encode_at(lua_State *L, int vidx, int64_t edesc, int descidx, uint8_t *buf, size_t size,
                                const char *where, int posidx, int mapkey);
/* Assign the containers set aside (list at stack index list) into the
   element now stored at dst in fb's file. Inside a transaction. */
MM3_INTERNAL void lmm3_apply_deferred(lua_State *L, int list, lmm3_file *fb, uint8_t *dst, const char *where);
/* Call the function below its nargs arguments on the stack top inside a
   transaction on fb: committed when it returns, rolled back (and its error
   raised again) when it raises. Nothing may raise between pushing it and
   this call. */
MM3_INTERNAL void lmm3_in_txn(lua_State *L, lmm3_file *fb, int nargs, const char *where);
/* Plain Lua copy of an element (edesc / descidx as above), for mm.totable. */
MM3_INTERNAL void lmm3_push_copy(lua_State *L, mm3_file *f, int64_t edesc, int descidx, uint8_t *p);
/* Plain Lua copy of the container at p whose metatable is at meta. */
MM3_INTERNAL void lmm3_cont_copy(lua_State *L, mm3_file *f, uint8_t *p, int meta);
/* Assign a Lua table to the live container at p (descriptor at descidx). */
MM3_INTERNAL void lmm3_container_assign(lua_State *L, int vidx, int descidx, uint8_t *p, lmm3_file *fb,
                                        const char *where);
MM3_INTERNAL void lmm3_open_cont(lua_State *L);
/* value fields: decode / encode a serialised Lua value at p (type in ct). */
MM3_INTERNAL void lmm3_value_push(lua_State *L, mm3_file *f, uint8_t *p, const mm3_ctype *ct);
MM3_INTERNAL void lmm3_value_store(lua_State *L, int vidx, mm3_file *f, uint8_t *p, const mm3_ctype *ct,
                                   const char *where);
/* Map metamethods and helpers (lmm3_hmap.c), used by lmm3_cont.c. */
MM3_INTERNAL int lmm3_hmap_index(lua_State *L);
MM3_INTERNAL int lmm3_hmap_newindex(lua_State *L);
MM3_INTERNAL int lmm3_hmap_len(lua_State *L);
MM3_INTERNAL int lmm3_hmap_pairs(lua_State *L);
MM3_INTERNAL int lmm3_hmap_shl(lua_State *L);
MM3_INTERNAL void lmm3_hmap_copy(lua_State *L, mm3_file *f, uint8_t *p, int meta);
MM3_INTERNAL void lmm3_hmap_assign(lua_State *L, int vidx, int meta, uint8_t *p, lmm3_file *fb, const char *where);

/* The container view at idx (raises for anything else or a closed file). */
MM3_INTERNAL lmm3_view *lmm3_cont_view(lua_State *L, int idx);
/* The same without comparing its metatable with its type (lmm3_view_or_null):
   for paths that read the view's own type only, until they turn to their
   metatable's (then lmm3_cont_view). */
MM3_INTERNAL lmm3_view *lmm3_cont_view_fast(lua_State *L, int idx);
/* v (the container view at idx), if it is a map (map 1) or a sequence (map
   0: vec, ring, list, string_array): one kind's metamethods may be called
   with the other's view (through debug.getmetatable), which they must not
   read as one of theirs. */
static inline lmm3_view *lmm3_cont_kind(lua_State *L, int idx, lmm3_view *v, int map) {
  if ((v->ti->kind == LMM3_FMAP || v->ti->kind == LMM3_HMAP) != map)
    luaL_typeerror(L, idx, map ? "memmap3 map" : "memmap3 vec, ring, segmented list or string_array");
  return v;
}
/* lmm3_cont_view(L, 1) for a container metamethod about to read the table
   element descriptor of its upvalue 1: raises unless that is the view's own
   type's (a metamethod taken from another type's metatable). */
MM3_INTERNAL lmm3_view *lmm3_cont_desc_view(lua_State *L);
/* The length of container view v at idx (a map's entry count; a
   string_array's N); raises "file is corrupted", naming it, when the stored
   one cannot be (mm3__len_ok), after looking again at one moment (under the
   lock, or between the writes of others). */
MM3_INTERNAL uint64_t lmm3_cont_len(lua_State *L, int idx, lmm3_view *v);
/* The same for container p of type ct: 0, or why not (no Lua error). */
MM3_INTERNAL int lmm3_len_checked(mm3_file *f, uint8_t *p, const mm3_ctype *ct, uint64_t *n);
/* Raise for a failed core call on the container view at viewidx, naming it:
   "vec 'inv' is full (capacity 64)". */
MM3_INTERNAL int lmm3_cont_error(lua_State *L, int viewidx, int rc);

/* Read / write one scalar of a type code; set returns NULL or why it refused
   the value at idx (then nothing was written). */
MM3_INTERNAL void lmm3_push_scalar(lua_State *L, const uint8_t *p, int code, uint32_t size);
/* lua_pushlstring of n bytes of mapped memory another process may be
   writing: a short string (which Lua hashes while it reads the bytes, then
   copies) is copied aside first, so that it is never unequal to itself. */
MM3_INTERNAL void lmm3_push_mapped(lua_State *L, const void *p, size_t n);
/* luaL_checkstring for a path: refuses one with a NUL byte inside. */
MM3_INTERNAL const char *lmm3_checkpath(lua_State *L, int idx, const char *what);
MM3_INTERNAL void lmm3_push_scalars(lua_State *L, const uint8_t *p, lua_Integer n, size_t stride, int code,
                                    uint32_t size);
MM3_INTERNAL lua_Integer lmm3_list_begin(lua_State *L, lua_Integer n);
MM3_INTERNAL void lmm3_list_end(lua_State *L, lua_Integer m);
MM3_INTERNAL const char *lmm3_set_scalar(lua_State *L, uint8_t *p, int code, uint32_t size, int idx);
MM3_INTERNAL void lmm3_push_atomic(lua_State *L, int fileidx, lmm3_file *fb, uint8_t *p, int code, int nameidx);

#endif
