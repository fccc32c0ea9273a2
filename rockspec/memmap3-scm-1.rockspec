-- memmap3 for LuaRocks. From the repository root:
--   luarocks --lua-version=5.4 make rockspec/memmap3-scm-1.rockspec
-- `make` builds from the working tree; the source url is only used by `luarocks pack`.
rockspec_format = "3.0"
package = "memmap3"
version = "scm-1"

source = {
  url = "git+file://.",
}

description = {
  summary = "Files as live, typed, persistent data: memory maps and typed containers for Lua 5.4",
  detailed = [[
A C core maps files and keeps typed containers inside them; a Lua 5.4 module
exposes them with metatables, so that `save.level = 5` is already in the file.
Also the whole of memmap2's raw mapping API (mm.map, mm.anon).
]],
  labels = { "mmap", "persistence", "ipc" },
}

-- LPeg (schema type expressions) will be needed too, but is not listed: Debian's
-- lua-lpeg is installed outside LuaRocks' manifest, so "lpeg" here would make an
-- offline `luarocks make` try (and fail) to download it. Install lua-lpeg (or
-- `luarocks install lpeg`) alongside.
dependencies = {
  "lua >= 5.4",
}

build = {
  type = "builtin",
  install = {
    bin = { memmap3 = "bin/memmap3" },
  },
  modules = {
    -- Must list every src/*.c (spec/rockspec_spec.lua checks that it does).
    ["memmap3.core"] = {
      sources = {
        "src/lmm3.c",
        "src/lmm3_atomic.c",
        "src/lmm3_cont.c",
        "src/lmm3_file.c",
        "src/lmm3_hmap.c",
        "src/lmm3_map.c",
        "src/lmm3_pack.c",
        "src/lmm3_value.c",
        "src/lmm3_view.c",
        "src/mm3_atomic.c",
        "src/mm3_error.c",
        "src/mm3_file.c",
        "src/mm3_guard.c",
        "src/mm3_heap.c",
        "src/mm3_hmap.c",
        "src/mm3_map.c",
        "src/mm3_schema.c",
        "src/mm3_seg.c",
        "src/mm3_txn.c",
        "src/mm3_value.c",
        "src/mm3_vec.c",
      },
      incdirs = { "src" },
      defines = { "_GNU_SOURCE" },
      libraries = { "pthread" },
    },
    -- Every lua/memmap3/*.lua.
    memmap3 = "lua/memmap3/init.lua",
    ["memmap3.schema"] = "lua/memmap3/schema.lua",
    ["memmap3.cli"] = "lua/memmap3/cli.lua",
    ["memmap3.cheader"] = "lua/memmap3/cheader.lua",
  },
}

test = {
  type = "busted",
}
