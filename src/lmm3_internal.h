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

#endif
