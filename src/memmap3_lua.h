/*
 * memmap3_lua.h - the Lua 5.4 binding of memmap3, for C programs that embed
 * Lua and share mapped data with their scripts.
 *
 * Stack notation as in the Lua manual: [-o, +p, x] pops o values, pushes p,
 * and x says whether the function may raise ('-' never, 'm' memory only,
 * 'v' on bad arguments, 'e' any error).
 */
#ifndef MEMMAP3_LUA_H
#define MEMMAP3_LUA_H

#include <lua.h>

#include "memmap3.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Open the C module "memmap3.core": pushes its table. [-0, +1, m]
 *  Register it with luaL_requiref(L, "memmap3.core", luaopen_memmap3_core, 0)
 *  before require "memmap3" in a host that links memmap3 statically. */
MM3_API int luaopen_memmap3_core(lua_State *L);

/** Push a memmap3.Map userdata for a map the host made. [-0, +1, m]
 *  @param owned 1: Lua owns the map and closes it when the userdata is
 *               collected or closed; 0: borrowed: Lua's close and __gc only
 *               detach the userdata, the host keeps the map and must keep it
 *               open while scripts may use it. */
MM3_API void mm3lua_push_map(lua_State *L, mm3_map *m, int owned);

/** The map behind the memmap3.Map at stack index idx. [-0, +0, v]
 *  Raises if the value is not a memmap3.Map or is closed. The pointer is
 *  valid while the userdata is open (owned), or while the host keeps it
 *  (borrowed). */
MM3_API mm3_map *mm3lua_check_map(lua_State *L, int idx);

/** Hand a file the host opened to scripts: pushes the root view of f (a
 *  struct, array, container, or a cell with a `value` field), typed by the
 *  schema stored in the file. [-0, +1, e]
 *  Loads the memmap3 Lua module (require "memmap3"), so package.path must
 *  reach lua/memmap3 and luaopen_memmap3_core must be reachable (linked in
 *  and registered with luaL_requiref, or on package.cpath).
 *  @param owned 0: borrowed: scripts can never close f (mm.close, <close> and
 *         __gc only detach their views); the host keeps f open while any
 *         script may use it and closes it itself. 1: Lua closes f. */
MM3_API void mm3lua_push_root(lua_State *L, mm3_file *f, int owned);

/** The bytes behind a memmap3 view (struct, array or container) at idx, and
 *  their size in *len (may be NULL). [-0, +0, v]
 *  Raises if the value is not a view or its file is closed. The pointer
 *  stays valid until the file is closed: growth never moves data. */
MM3_API void *mm3lua_check_view(lua_State *L, int idx, size_t *len);

/** The file behind the view at idx. [-0, +0, v] */
MM3_API mm3_file *mm3lua_check_file(lua_State *L, int idx);

#ifdef __cplusplus
}
#endif
#endif /* MEMMAP3_LUA_H */
