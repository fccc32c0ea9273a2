/*
 * memmap3.h - the memmap3 C core: raw memory mappings, and (later sections)
 * files that hold typed, persistent data.
 *
 * This header is the reference manual of the C API. It never includes lua.h:
 * a C program links libmemmap3 without Lua.
 *
 * Conventions (as LMDB's):
 *  - Every fallible call returns int: 0 on success, a positive errno value
 *    passed through from the system, or a negative MM3_E* code.
 *    mm3_strerror() names both.
 *  - Results come back through trailing out-parameters, which are written
 *    only on success.
 *  - Destructors return void and accept NULL.
 *  - Offsets and lengths are byte counts; every range is checked as
 *    offset + len with overflow detection.
 */
#ifndef MEMMAP3_H
#define MEMMAP3_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MM3_API __attribute__((visibility("default")))
#else
#define MM3_API
#endif

/* ------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------ */
#define MM3_VERSION_MAJOR 0
#define MM3_VERSION_MINOR 1
#define MM3_VERSION_PATCH 0
#define MM3_VERSION_STRING "0.1.0"

/** Runtime version of the library; any out-parameter may be NULL.
 *  @return the version string, e.g. "0.1.0" (static storage). */
MM3_API const char *mm3_version(int *major, int *minor, int *patch);

/* ------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------ */
#define MM3_ERR_BASE     (-30900)
#define MM3_ERANGE       (-30900) /**< offset/length outside the object */
#define MM3_EREADONLY    (-30899) /**< write to a read-only map or file */
#define MM3_EINVAL       (-30898) /**< bad argument (mode, advice, flags) */
#define MM3_ETOOBIG      (-30897) /**< length overflows the address space */
#define MM3_ENOTSUP      (-30896) /**< not supported on this map or system */
#define MM3_EBADFILE     (-30895) /**< not a memmap3 file (bad magic) */
#define MM3_EVERSION     (-30894) /**< file format newer than this library */
#define MM3_ECORRUPT     (-30893) /**< damaged file: a stored value is out of range */
#define MM3_ESCHEMA      (-30892) /**< the file's layout differs from the schema */
#define MM3_EFULL        (-30891) /**< fixed-capacity container is full */
#define MM3_ERESERVE     (-30890) /**< file outgrew its reserved address range */
#define MM3_ETRUNCATED   (-30889) /**< file is shorter than its header says */
#define MM3_EBYTEORDER   (-30888) /**< file was written with the other byte order */
#define MM3_ENOTFOUND    (-30887) /**< no such key or element */
#define MM3_ERECOVER     (-30886) /**< a dead writer's work must be rolled back: open read-write */
#define MM3_EBUSY        (-30885) /**< another open of the file in this thread has a transaction open */
#define MM3_ELOGFULL     (-30884) /**< a transaction changed more than the undo log holds */
#define MM3_ELOCKBAD     (-30883) /**< another program overwrote the file's lock */
#define MM3_EWRITERS     (-30882) /**< a read-only open's read overlapped writes every time it was tried (about 2 s), or a writer died mid-write */
#define MM3_ERR_LAST     (-30882)

/** Describe an error code returned by any mm3_* call.
 *  @param err 0, a positive errno or a negative MM3_E* code.
 *  @return a static string; never NULL. */
MM3_API const char *mm3_strerror(int err);

/* ------------------------------------------------------------------------
 * Raw mappings (memmap2's Mmap, MmapMut, MmapOptions)
 * ------------------------------------------------------------------------ */

/** An opaque mapping handle. */
typedef struct mm3_map mm3_map;

/** Mapping modes. */
typedef enum mm3_mode {
  MM3_MODE_R = 0,   /**< shared, read-only */
  MM3_MODE_RW,      /**< shared, read-write: writes reach the file */
  MM3_MODE_COPY,    /**< private copy-on-write: writes never reach the file */
  MM3_MODE_COPY_R,  /**< private, read-only; mm3_map_protect can make it writable */
  MM3_MODE_RX       /**< shared, read + execute */
} mm3_mode;

/** Protections for mm3_map_protect. */
typedef enum mm3_prot {
  MM3_PROT_R = 1,   /**< read only */
  MM3_PROT_RW = 3,  /**< read and write */
  MM3_PROT_RX = 5   /**< read and execute */
} mm3_prot;

/** Options of a file mapping. Zero-initialise, then set what you need. */
typedef struct mm3_map_opts {
  mm3_mode mode;     /**< default MM3_MODE_R */
  uint64_t offset;   /**< file offset, any alignment (aligned down internally) */
  uint64_t len;      /**< bytes to map; used only when has_len is set */
  int has_len;       /**< 0: map from offset to the end of the file */
  int populate;      /**< MAP_POPULATE: prefault the pages */
  int no_reserve;    /**< MAP_NORESERVE: no swap reservation */
  int create;        /**< mm3_map_path only: create the file if missing and,
                          with has_len, extend it (posix_fallocate, so the
                          blocks exist) to offset + len if it is shorter */
} mm3_map_opts;

/** Options of an anonymous mapping. Zero-initialise. */
typedef struct mm3_anon_opts {
  int populate;      /**< MAP_POPULATE */
  int stack;         /**< MAP_STACK */
  int huge;          /**< 0: normal pages; 1: default huge pages; >1: log2 of
                          the huge page size (21 = 2 MiB, 30 = 1 GiB) */
  int no_reserve;    /**< MAP_NORESERVE */
  int shared;        /**< MAP_SHARED: shared with children after fork() */
} mm3_anon_opts;

/** Map a file descriptor.
 *  The descriptor is not kept: it may be closed after the call. Its access
 *  mode must allow the mapping mode (O_RDWR for MM3_MODE_RW). Without a
 *  length the map runs to the end of the file; a block device's size is the
 *  device's (BLKGETSIZE64; the descriptor's file position is left alone);
 *  other devices (/dev/zero) have no size: give them a length. A length past
 *  the end of the file is mapped, but its pages past the end fault when
 *  touched: the SIGBUS guard gives zeros and sets mm3_map_truncated (the Lua
 *  binding refuses such a length).
 *  @param fd   an open file descriptor
 *  @param opts options, or NULL for a read-only map of the whole file
 *  @param out  receives the new map; release it with mm3_map_close
 *  @return 0; MM3_ERANGE if offset is past the end of the file and no length
 *          was given; MM3_ETOOBIG if offset + len overflows, or the end of
 *          the last page mapped (offset aligned down, length rounded up to a
 *          page) is not an off_t; MM3_EINVAL for a bad mode; an errno from
 *          fstat, ioctl or mmap (EACCES, ENODEV, ENOMEM...). */
MM3_API int mm3_map_fd(int fd, const mm3_map_opts *opts, mm3_map **out);

/** Map a file by path. Opens the file O_RDONLY, or O_RDWR for MM3_MODE_RW,
 *  and closes it again before returning. Errors as mm3_map_fd, plus those
 *  of open(2) (ENOENT, EACCES...). */
MM3_API int mm3_map_path(const char *path, const mm3_map_opts *opts, mm3_map **out);

/** Map anonymous, zero-filled memory, readable and writable.
 *  With opts->huge the kernel mapping is a whole number of huge pages (len
 *  rounded up; mm3_map_len still says len): munmap and mprotect need that.
 *  @param len  bytes; 0 gives a valid empty map
 *  @param opts options, or NULL for a private map of normal pages
 *  @return 0; MM3_ETOOBIG if len cannot be mapped on this system;
 *          MM3_EINVAL for huge outside 0..63; MM3_ENOTSUP for huge == 1 when
 *          the default huge page size cannot be read (/proc/meminfo); an
 *          errno from mmap (ENOMEM, EINVAL for unavailable huge pages). */
MM3_API int mm3_map_anon(uint64_t len, const mm3_anon_opts *opts, mm3_map **out);

/** Unmap and free. Accepts NULL. Pointers from mm3_map_ptr die here. */
MM3_API void mm3_map_close(mm3_map *m);

/** The first mapped byte (the byte at opts->offset of the file).
 *  @return a pointer valid until mm3_map_close or a mm3_map_remap that
 *          moves the map; for an empty map, a non-NULL pointer to no bytes.
 *          The address does not change with mm3_map_protect. */
MM3_API uint8_t *mm3_map_ptr(const mm3_map *m);

/** The mapped length in bytes, as requested (not rounded to pages). */
MM3_API size_t mm3_map_len(const mm3_map *m);

/** The mode the map was created with. */
MM3_API mm3_mode mm3_map_mode(const mm3_map *m);

/** The current protection (changes with mm3_map_protect). */
MM3_API mm3_prot mm3_map_prot(const mm3_map *m);

/** Nonzero for an anonymous map. */
MM3_API int mm3_map_is_anon(const mm3_map *m);

/** Nonzero once a page of this file map faulted because the file no longer
 *  covers it: another program truncated the file (or an I/O error). While a
 *  file map (shared or copy-on-write; not anonymous) is mapped, the SIGBUS
 *  guard of mm3_file_truncated covers it too: a zero page, with the map's
 *  protection, is mapped over the faulting page and this flag is set, so the
 *  access reads zeros, a write there is lost, and the process lives on. No
 *  mm3_map_* call checks the flag (as with mm3_file_truncated): check it
 *  after reading bytes whose loss matters. The Lua binding raises "the mapped
 *  file was truncated by another program" on every use after it is set.
 *  A map whose pages were replaced is several kernel mappings: growing or
 *  moving it with mm3_map_remap fails (EFAULT); close it. The guard grows
 *  with the maps and files open (a map or open it cannot register fails
 *  with ENOMEM); a map is not guarded while mm3_map_remap runs. */
MM3_API int mm3_map_truncated(const mm3_map *m);

/** Copy n bytes at off out of the map into dst.
 *  @return 0 or MM3_ERANGE (nothing copied). */
MM3_API int mm3_map_read(const mm3_map *m, uint64_t off, void *dst, size_t n);

/** Copy n bytes from src into the map at off.
 *  @return 0, MM3_ERANGE or MM3_EREADONLY (nothing written). */
MM3_API int mm3_map_write(mm3_map *m, uint64_t off, const void *src, size_t n);

/** Check that [off, off + len) lies inside the map (overflow-safe).
 *  @return 0 or MM3_ERANGE. */
MM3_API int mm3_map_check_range(const mm3_map *m, uint64_t off, uint64_t len);

/** Write dirty pages of [off, off + len) back to the file and wait (msync
 *  MS_SYNC). len == 0 with off == 0 flushes the whole map; len == 0 with any
 *  other off (up to mm3_map_len) is an empty range: nothing. A failed flush
 *  means the data may not be on disk: retrying does not help (the kernel
 *  marks the pages clean after reporting the error once).
 *  @return 0, MM3_ERANGE, or an errno from msync (EIO...). */
MM3_API int mm3_map_flush(mm3_map *m, uint64_t off, uint64_t len);

/** Schedule a write-back of the range without waiting (msync MS_ASYNC;
 *  on Linux the kernel writes back dirty pages on its own schedule).
 *  Same arguments and errors as mm3_map_flush. */
MM3_API int mm3_map_flush_async(mm3_map *m, uint64_t off, uint64_t len);

/** Advice names, as memmap2 names them. */
typedef enum mm3_advice {
  MM3_ADV_NORMAL = 0, MM3_ADV_RANDOM, MM3_ADV_SEQUENTIAL, MM3_ADV_WILLNEED,
  MM3_ADV_DONTNEED, MM3_ADV_FREE, MM3_ADV_REMOVE, MM3_ADV_DONTFORK,
  MM3_ADV_DOFORK, MM3_ADV_MERGEABLE, MM3_ADV_UNMERGEABLE, MM3_ADV_HUGEPAGE,
  MM3_ADV_NOHUGEPAGE, MM3_ADV_DONTDUMP, MM3_ADV_DODUMP, MM3_ADV_POPULATE_READ,
  MM3_ADV_POPULATE_WRITE, MM3_ADV_COLD, MM3_ADV_PAGEOUT, MM3_ADV_WIPEONFORK,
  MM3_ADV_KEEPONFORK,
  MM3_ADV_COUNT
} mm3_advice;

/** Look up an advice by its name ("normal", "dontneed", "populate_read"...).
 *  @return 0 and *out, or MM3_EINVAL for an unknown name. */
MM3_API int mm3_advice_from_name(const char *name, mm3_advice *out);

/** The name of an advice, or NULL for an invalid value. */
MM3_API const char *mm3_advice_name(mm3_advice a);

/** Probe whether the running kernel accepts an advice (madvise on a scratch
 *  page). @return 1 if supported, 0 if not (or an invalid value). */
MM3_API int mm3_advice_supported(mm3_advice a);

/** madvise() on [off, off + len); len == 0 with off == 0 means the whole
 *  map, len == 0 with any other off an empty range (nothing is advised).
 *  The range is checked against the map first (memmap2 does not check it),
 *  then widened to whole pages (advice applies to pages).
 *  Destructive advice (dontneed, free, remove) changes what the range reads:
 *  on private maps it reads zeros (or the file) afterwards, and remove
 *  punches a hole in the file. So that it never reaches bytes outside the
 *  range (the map's own, or file bytes outside the map), destructive advice
 *  instead shrinks the range inward to the whole pages that lie inside both
 *  the map and the range; if there are none it does nothing and returns 0.
 *  An anonymous map owns the tail of its last page: a range that reaches the
 *  map's end includes that page.
 *  @return 0, MM3_ERANGE, MM3_EINVAL, or an errno from madvise. */
MM3_API int mm3_map_advise(mm3_map *m, mm3_advice a, uint64_t off, uint64_t len);

/** mlock / munlock the whole map. Locking twice or unlocking an unlocked map
 *  succeeds. @return 0 or an errno (ENOMEM over RLIMIT_MEMLOCK, EPERM). */
MM3_API int mm3_map_lock(mm3_map *m);
MM3_API int mm3_map_unlock(mm3_map *m);

/** Change the protection of the whole map; the address stays the same.
 *  Making a shared map of a file opened read-only writable fails with EACCES.
 *  @return 0, MM3_EINVAL, or an errno from mprotect. */
MM3_API int mm3_map_protect(mm3_map *m, mm3_prot prot);

/** Flags of mm3_map_remap. */
#define MM3_REMAP_MAY_MOVE 1

/** Change the length of the map (mremap). For a file map, the file must
 *  already be long enough for the pages to be touched. Without
 *  MM3_REMAP_MAY_MOVE the map grows or shrinks in place or fails (ENOMEM).
 *  On failure the old mapping and its length are untouched. A shared
 *  anonymous map cannot grow past the pages it was made with (MM3_ENOTSUP):
 *  the memory behind it, shared with forked children, keeps that size, and
 *  pages past it would raise SIGBUS; it can shrink, and grow again within
 *  them (the rest of its last page, or back after a shrink).
 *  @return 0, MM3_ETOOBIG, MM3_EINVAL, MM3_ENOTSUP, or an errno from mremap. After a move,
 *          pointers from mm3_map_ptr are invalid. */
MM3_API int mm3_map_remap(mm3_map *m, uint64_t new_len, int flags);

/* ------------------------------------------------------------------------
 * Files: a self-describing header, the schema text, and the root object
 * ------------------------------------------------------------------------
 *
 * Layout of a memmap3 file (format version 3, all fields in the byte order
 * of the machine that created it, which the header records; version 1, which
 * this library still opens, differs only in that its growable maps take a
 * heap block for each node, never node arenas):
 *
 *   0    magic "MEMMAP3\0"
 *   8    u32 format version          12   u32 byte-order mark 0x01020304
 *   16   u64 published file size (grows; read it atomically)
 *   24   u64 layout fingerprint: FNV-1a 64 of the schema text
 *   32   u64 schema text offset (256) 40   u64 schema text length
 *   48   u64 root offset              56   u64 root size
 *   64   u64 per-file random seed (for hash containers)
 *   72   u64 header check: FNV-1a 64 of bytes 0-15, 24-71 and the schema
 *   80   the writer lock (a robust process-shared pthread mutex, 64 bytes)
 *   144  u64 heap top     152  u64 write sequence
 *   160  u64 free lists[48] (blocks of 16 << k bytes)   544  u64 heap bytes in use
 *   552  u64 undo log offset, length, capacity (see mm3_txn_begin)
 *   576  u64 replaced log blocks to free: count, offsets[16]
 *   712  u64 prefill hint   720  u64 gaps to free: count, [from, to)[8]
 *   856  reserved (zero) up to 1024
 *   1024 schema text, then the root object at a 64-byte aligned offset,
 *        then the heap that growable containers allocate from
 *
 * The file is mapped into an address range reserved once at open, so that
 * growth maps new extents after the old ones and existing data never moves.
 */

/** An open memmap3 file. */
typedef struct mm3_file mm3_file;

#define MM3_FORMAT_VERSION 3
#define MM3_HEADER_SIZE 1024
/** Default address space reserved per open file (growth beyond it fails
 *  with MM3_ERESERVE; set mm3_file_opts.reserve to change it). Where that
 *  much address space cannot be had (ulimit -v, valgrind), the default
 *  halves until it fits, down to 64 MiB or twice the file. */
#define MM3_DEFAULT_RESERVE ((uint64_t)64 << 30)
/** Largest schema text a file may hold. */
#define MM3_MAX_SCHEMA ((uint64_t)1 << 20)

/** Options of mm3_file_open. Zero-initialise, then set what you need. */
typedef struct mm3_file_opts {
  int create;           /**< create the file if it does not exist */
  int exclusive;        /**< with create: fail with EEXIST if it exists */
  int readonly;         /**< map read-only (O_RDONLY, PROT_READ) */
  unsigned perm;        /**< permission bits for a new file (0: 0666 & ~umask) */
  uint64_t reserve;     /**< address space to reserve (0: MM3_DEFAULT_RESERVE) */
  const char *schema;   /**< the schema text (NUL-terminated); NULL to accept
                             the file's own (only when opening, not creating) */
  uint64_t root_size;   /**< bytes of the root object (when creating); 0:
                             computed from the schema (mm3_schema_layout) */
} mm3_file_opts;

/** Open (or create) a memmap3 file.
 *  A new file is written under a temporary name and linked into place, so no
 *  process ever sees a half-written header; racing creators agree on one.
 *  @param path the file's path
 *  @param opts options (required)
 *  @param out  receives the file; release with mm3_file_close
 *  @return 0; errno from open/link/fallocate/mmap (ENOENT, EEXIST with
 *          exclusive, ENOSPC...); MM3_EBADFILE (no magic: not a memmap3 file,
 *          or empty); MM3_EVERSION (newer format); MM3_EBYTEORDER;
 *          MM3_ETRUNCATED (shorter than its header says); MM3_ECORRUPT (a
 *          header field out of range or the header check fails);
 *          MM3_ESCHEMA (opts->schema differs from the file's schema: read
 *          the file's with mm3_file_read_schema to explain how). */
MM3_API int mm3_file_open(const char *path, const mm3_file_opts *opts, mm3_file **out);

/** The size and alignment of the root of a canonical schema text (as
 *  memmap3 stores it in files and `memmap3 cheader` prints it), computed
 *  with the same rules as the Lua layer (C's natural alignment and padding).
 *  mm3_file_open calls it when creating a file with root_size 0.
 *  @param align may be NULL
 *  @return 0, MM3_ESCHEMA (a text that does not parse, or an unknown type),
 *          MM3_ETOOBIG. */
MM3_API int mm3_schema_layout(const char *text, uint64_t *size, uint32_t *align);

/** Read only the schema text of a file, without mapping it.
 *  @param buf  receives a malloc'ed NUL-terminated copy (free() it)
 *  @return 0 or the errors of mm3_file_open. */
MM3_API int mm3_file_read_schema(const char *path, char **buf, size_t *len);

/** Unmap and close. Accepts NULL. Every pointer into the file dies here. */
MM3_API void mm3_file_close(mm3_file *f);

/** The root object. Valid until mm3_file_close; growth never moves it. */
MM3_API uint8_t *mm3_file_root(const mm3_file *f);
/** Size of the root object in bytes. */
MM3_API uint64_t mm3_file_root_size(const mm3_file *f);
/** The first byte of the file (the header). Valid until mm3_file_close. */
MM3_API uint8_t *mm3_file_base(const mm3_file *f);
/** Bytes currently mapped (the file size this process has seen). */
MM3_API uint64_t mm3_file_size(const mm3_file *f);
/** The schema text stored in the file (NUL-terminated, lives as long as f). */
MM3_API const char *mm3_file_schema(const mm3_file *f, size_t *len);
/** The layout fingerprint stored in the header. */
MM3_API uint64_t mm3_file_fingerprint(const mm3_file *f);
/** Nonzero if the file was opened read-only. */
MM3_API int mm3_file_readonly(const mm3_file *f);
/** The path the file was opened with (lives as long as f). */
MM3_API const char *mm3_file_path(const mm3_file *f);

/** Nonzero once another program truncated the file under this process's
 *  mapping. While a memmap3 file is open, a SIGBUS handler (installed once,
 *  chaining to the one before it for faults elsewhere) maps a zero page over
 *  a page of the file that no longer exists and sets this flag, so a read of
 *  the lost bytes gives zeros and a write is lost instead of killing the
 *  process. The Lua binding raises "file was truncated by another program"
 *  on the next access. Close the file. (A close while that handler runs in
 *  another thread waits the few microseconds until it is done.) */
MM3_API int mm3_file_truncated(const mm3_file *f);

/** Make everything written so far durable: msync(MS_SYNC) and fdatasync.
 *  A failure means some data may not be on disk; retrying cannot fix that.
 *  @return 0 or an errno (EIO, ENOSPC...). */
MM3_API int mm3_file_flush(mm3_file *f);

/** Grow the file to at least new_size bytes (rounded up to a page): the
 *  blocks are allocated first (posix_fallocate), so a full disk fails here
 *  with ENOSPC rather than with SIGBUS later; then the new extent is mapped
 *  after the old one and the size is published in the header for other
 *  processes. Existing data does not move.
 *  @return 0, ENOSPC, MM3_ERESERVE, MM3_EREADONLY, or an errno. */
MM3_API int mm3_file_grow(mm3_file *f, uint64_t new_size);

/** Map whatever another process has grown the file by (reads the published
 *  size). Cheap when nothing changed: one atomic load.
 *  @return 0, MM3_ERESERVE (the file grew past this handle's reserved range:
 *          reopen it with a larger reserve), or an errno from mmap. */
MM3_API int mm3_file_refresh(mm3_file *f);

/* ------------------------------------------------------------------------
 * Atomics on mapped memory (lock-free, work across processes)
 * ------------------------------------------------------------------------
 * p must be aligned to width (1, 2, 4 or 8 bytes); values are bit patterns
 * in the low width bytes of a uint64_t. All operations are sequentially
 * consistent. memmap3's atomic fields are laid out aligned. */

/** Read-modify-write operations of mm3_atomic_fetch. */
typedef enum mm3_atomic_op {
  MM3_ATOMIC_ADD, MM3_ATOMIC_SUB, MM3_ATOMIC_AND, MM3_ATOMIC_OR, MM3_ATOMIC_XOR,
  MM3_ATOMIC_MAX, MM3_ATOMIC_MIN, MM3_ATOMIC_SWAP
} mm3_atomic_op;

/** Atomic load of width bytes at p. */
MM3_API uint64_t mm3_atomic_load(const void *p, int width);
/** Atomic store of the low width bytes of v at p. */
MM3_API void mm3_atomic_store(void *p, int width, uint64_t v);
/** Apply op with operand v atomically; returns the previous value. MAX and
 *  MIN compare as signed when is_signed, unsigned otherwise; ADD and SUB
 *  wrap around. */
MM3_API uint64_t mm3_atomic_fetch(void *p, int width, mm3_atomic_op op, uint64_t v, int is_signed);
/** Compare-and-swap: if *p equals *expected, store desired and return 1;
 *  otherwise write the current value to *expected and return 0. */
MM3_API int mm3_atomic_cas(void *p, int width, uint64_t *expected, uint64_t desired);

/** Take the file's cross-process writer lock (recursive within a process).
 *  Container operations take it themselves; take it around several of them
 *  to make them one step for other processes. If its holder died, the lock
 *  is taken over and made consistent.
 *  @return 0, MM3_EREADONLY, or an errno from pthread_mutex_lock. */
MM3_API int mm3_file_lock(mm3_file *f);
/** Release the lock taken by mm3_file_lock. */
MM3_API void mm3_file_unlock(mm3_file *f);

/* ------------------------------------------------------------------------
 * Containers inside a file
 * ------------------------------------------------------------------------
 * A container lives inline in its parent (a struct field, an array element,
 * the root): c below points at its first byte, inside the file f. Fixed
 * containers keep everything inline; growable ones keep a small inline head
 * with file offsets into the heap. mm3_ctype describes the element (and key)
 * types; fill it with mm3_ctype_init, which computes the layout. Each call
 * refuses a type of another kind (a vec's given to mm3_hmap_put), or one
 * mm3_ctype_init did not lay out, with MM3_EINVAL (NULL for the *_at calls),
 * touching nothing; that c holds a container of that very type is the
 * caller's promise (the generated header's *_CTYPE macros keep it).
 *
 * Writers take the file's lock themselves (so several processes may write one
 * container at once). Pointers to elements (vec, ring, segmented, map values)
 * stay valid until mm3_file_close; growth never moves them. An element that is
 * removed (map delete, pop) may be reused by a later insertion.
 *
 * Layouts (all offsets from c):
 *   vec<T,N>, ring<T,N>: u64 len (ring: total pushes), items at 8 (16 when
 *     T is 16-aligned)
 *   map<K,V,N>: u64 count, u32 free list, u32 used, u32 buckets[B]
 *     (B = power of two >= N, at least 8), then N nodes
 *     {u32 next, u32 live, K, V} (each part naturally aligned)
 *   map<K,V>: u64 count, u64 table[2], u32 log2 size[2], u64 rehash
 *     position + 1, u64 newest node arena (48 bytes); nodes {u64 next,
 *     u64 hash, K, V}, tables of u64 node offsets. Node arenas are heap
 *     blocks {u64 previous arena, u64 next unused node, u64 end, u64 free
 *     node list (newest arena only), nodes}; a map with no arena (all of a
 *     version 1 file's) has a heap block for each node
 *   segmented<T>: u64 len, u64 segment[56]; segment k holds first << k items
 *   value: u64 offset, u64 length of a heap block; value<N>: u32 length, N bytes
 */

/** Kinds of container. */
typedef enum mm3_ckind {
  MM3_VEC = 1, MM3_RING, MM3_FMAP, MM3_HMAP, MM3_SEGMENTED, MM3_VALUE
} mm3_ckind;

/** Keys of maps: integers (little-endian bytes of their type) or strings
 *  (NUL-padded to key_size; hashed up to the first NUL). */
typedef struct mm3_ctype {
  mm3_ckind kind;
  uint32_t elem_size, elem_align;  /**< T of vec/ring/segmented, V of maps */
  uint32_t key_size, key_align;    /**< maps */
  int key_is_string;               /**< maps: string<N> or bytes<N> keys */
  uint64_t cap;                    /**< N of fixed containers (0: growable) */
  /* computed by mm3_ctype_init: */
  uint64_t size;                   /**< bytes of the inline part */
  uint32_t align;                  /**< its alignment */
  uint32_t items_off;              /**< vec, ring: first item */
  uint32_t node_size, key_off, val_off; /**< maps: node layout */
  uint64_t buckets, nodes_off;     /**< fixed maps */
  uint64_t seg_first;              /**< segmented: items in segment 0 */
} mm3_ctype;

/** Compute the layout fields of t from its kind and types.
 *  @return 0 or MM3_EINVAL (bad sizes or capacity), MM3_ETOOBIG. */
MM3_API int mm3_ctype_init(mm3_ctype *t);

/** Number of elements (entries of a map; bytes of a value). Lock-free. A
 *  length the container cannot have (damage) is not reported here: a vec's
 *  past its capacity reads as the capacity, and the operations that meet it
 *  (push, pop, insert, remove, set, mm3_vec_at) fail with MM3_ECORRUPT or
 *  NULL, as do a fixed map's puts and deletes under a count past its
 *  capacity and a list's pushes, pops and truncates under a length past its
 *  segments; a clear (mm3_vec_clear, mm3_seg_truncate to 0, mm3_hmap_clear)
 *  mends it. mm3_container_check reports it. */
MM3_API uint64_t mm3_container_len(const mm3_file *f, const uint8_t *c, const mm3_ctype *t);

/** Verify a container's invariants (lengths, links, hashes, offsets).
 *  @param why receives a sentence on damage (n bytes)
 *  @return 0 or MM3_ECORRUPT; MM3_ERESERVE if the file grew past this
 *  handle's reserved range (why says so: that is not damage). Reads only;
 *  through a writable handle, under the lock, which first rolls back what a
 *  dead writer left unfinished (a read-only handle sees that as damage). */
MM3_API int mm3_container_check(mm3_file *f, uint8_t *c, const mm3_ctype *t, char *why, size_t n);
/** The heap blocks container c owns, each given to fn(ud, off) as its
 *  payload's file offset: a growable map's tables and node arenas (in a map
 *  made before arenas, each node: a block of its own), a segmented list's
 *  segments, a growable value's block; none for the fixed kinds, which live
 *  in their parent. No two containers may own one block (a write to one
 *  would change the other): mm.check compares them, with mm3_file_blocks.
 *  Reads only, under the lock as mm3_container_check, which should have
 *  passed first. @return 0, MM3_ECORRUPT (a link outside the file, arenas
 *  that loop), or fn's nonzero return, which ends the walk. */
MM3_API int mm3_container_blocks(mm3_file *f, uint8_t *c, const mm3_ctype *t, int (*fn)(void *ud, uint64_t off),
                                 void *ud);
/** The heap blocks the file keeps for itself, as mm3_container_blocks: the
 *  undo log's, and replaced log blocks not freed yet. */
MM3_API int mm3_file_blocks(mm3_file *f, int (*fn)(void *ud, uint64_t off), void *ud);
/** The file's write sequence: odd while a write is under way in some
 *  process (a container operation, or a transaction's heap work), moved by
 *  each. A reader without the lock (a read-only handle) that finds it even
 *  and unchanged around a read read no half-made write; mm.check reads it
 *  so, and checks again what a write overlapped. */
MM3_API uint64_t mm3_file_seq(const mm3_file *f);
/** Verify the file's own invariants: every heap block's tag, the bytes in
 *  use, the free lists, the undo log. @return 0 or MM3_ECORRUPT (why says
 *  what); MM3_ERESERVE as mm3_container_check. Reads only, under the lock
 *  as mm3_container_check. */
MM3_API int mm3_file_check(mm3_file *f, char *why, size_t n);

/** Where the heap's bytes are (file bytes, 16-byte block heads included). */
typedef struct mm3_heap_usage {
  uint64_t heap;   /**< from the heap's start to its top (the file past the top is unused) */
  uint64_t used;   /**< in blocks that hold data */
  uint64_t free;   /**< in freed blocks, kept for reuse by blocks of their size */
  uint64_t log;    /**< in the undo log's blocks */
  uint64_t leaked; /**< in blocks tagged in use that no count holds: reachable from nothing (a writer
                         killed at an unlucky moment, or a file written before rollbacks gave space back) */
} mm3_heap_usage;
/** Walk the heap's blocks (O(blocks); without the lock: with writers at work
 *  the figures are a moment's). A writable handle takes the lock and gives
 *  it back first, so that what a dead writer left half done is rolled back
 *  rather than counted. @return 0 or MM3_ECORRUPT. */
MM3_API int mm3_file_usage(mm3_file *f, mm3_heap_usage *u);

/* vec<T,N> and ring<T,N> ------------------------------------------------ */

/** Element i (0-based, from the oldest for rings), or NULL past the end. */
MM3_API uint8_t *mm3_vec_at(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i);
/** Append a copy of the element at item (elem_size bytes).
 *  Vec: MM3_EFULL when full. Ring: overwrites the oldest when full. */
MM3_API int mm3_vec_push(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *item);
/** Remove the last element, copying it to out (may be NULL). MM3_ERANGE if
 *  empty; MM3_EINVAL for a ring (rings only push). */
MM3_API int mm3_vec_pop(mm3_file *f, uint8_t *c, const mm3_ctype *t, void *out);
/** Insert before index i (0..len); later elements shift up (O(len)).
 *  MM3_EFULL, MM3_ERANGE; MM3_EINVAL for a ring. */
MM3_API int mm3_vec_insert(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, const void *item);
/** Remove element i, copying it to out (may be NULL); later elements shift down. */
MM3_API int mm3_vec_remove(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, void *out);
/** Remove every element (and zero them). */
MM3_API int mm3_vec_clear(mm3_file *f, uint8_t *c, const mm3_ctype *t);
/** Overwrite element i (0-based) with item. MM3_ERANGE past the end. */
MM3_API int mm3_vec_set(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, const void *item);

/* maps ------------------------------------------------------------------ */

/** Hash of a key (key_size bytes, strings NUL-padded) with the file's seed. */
MM3_API uint64_t mm3_hmap_key_hash(const mm3_file *f, const mm3_ctype *t, const void *key);
/** Look a key up. On success copies the value to val_out (if not NULL) and
 *  sets *val_ptr (if not NULL) to the value inside the file.
 *  @return 0, MM3_ENOTFOUND, MM3_ECORRUPT. */
MM3_API int mm3_hmap_get(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, void *val_out,
                        uint8_t **val_ptr);
/** Insert or replace. *created (if not NULL) says which.
 *  @return 0, MM3_EFULL (fixed map), ENOSPC (growing the file), MM3_ECORRUPT. */
MM3_API int mm3_hmap_put(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key, const void *val,
                        int *created);
/** Look n keys up at once (keys: n keys of key_size bytes, one after the
 *  other). Value i is copied to vals + i * elem_size (vals may be NULL) and
 *  found[i] (found may be NULL) is set to 1, or to 0 when key i is not in the
 *  map (its value bytes are then left as they were). The same results as n
 *  calls of mm3_hmap_get, faster: the keys' cache misses overlap.
 *  @return 0 (whether or not each key was found), MM3_ECORRUPT. */
MM3_API int mm3_hmap_get_many(mm3_file *f, uint8_t *c, const mm3_ctype *t, size_t n, const void *keys,
                             void *vals, uint8_t *found);
/** Insert or replace n entries at once, in order: key i (keys + i * key_size)
 *  gets value i (vals + i * elem_size); a key given twice keeps its last value.
 *  The same results as n calls of mm3_hmap_put, faster: the lock is taken
 *  once per group of 16 entries, their cache misses overlap, and a growable
 *  map's table is sized once for the entries to come (count + n, when that
 *  is more than the next doubling; 16 to 32 bytes an entry, in a heap block
 *  twice that, so a batch that mostly replaces keys may leave the table
 *  bigger than needed) instead of doubling again and again, and so is its
 *  next node arena (room a key already there leaves to later inserts); a
 *  table that cannot be had then is no error, the puts grow it as single
 *  puts do. A crash during the call leaves every entry whole, put or not (a group is one crash-atomic
 *  step, so entries of the group under way are undone together); for
 *  all-or-nothing, call it in a transaction.
 *  On an error, entries before the failing one are in the map, it and those
 *  after are not. *done (if not NULL) receives how many were put.
 *  @return as mm3_hmap_put. */
MM3_API int mm3_hmap_put_many(mm3_file *f, uint8_t *c, const mm3_ctype *t, size_t n, const void *keys,
                             const void *vals, size_t *done);
/** Delete a key. @return 0 or MM3_ENOTFOUND. */
MM3_API int mm3_hmap_del(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *key);
/** Delete every entry (a growable map frees its nodes and tables). */
MM3_API int mm3_hmap_clear(mm3_file *f, uint8_t *c, const mm3_ctype *t);
/** Iterate: pos[0] = pos[1] = pos[2] = 0 to start; each call yields the
 *  next entry's key and value pointers and advances pos; MM3_ENOTFOUND at
 *  the end. Deleting entries during a traversal is safe (as clearing fields
 *  is in Lua); entries inserted during a traversal may or may not be seen,
 *  and an insertion that starts a resize of a growable map (by this process
 *  or another) may make the traversal see some entries twice or miss some.
 *  A traversal that starts finishes any resize under way first (inside a
 *  transaction that logs every chain it moves, and the undo log's capacity
 *  is 256 MiB: about four million entries), unless pos[0] starts as
 *  MM3_HMAP_AS_IS: then both tables are walked as they are, which sees every
 *  entry once if nothing changes the map until the traversal ends (hold
 *  mm3_file_lock throughout, and change nothing). */
#define MM3_HMAP_AS_IS ((uint64_t)1 << 62)
MM3_API int mm3_hmap_next(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t pos[3], uint8_t **key,
                         uint8_t **val);
/** mm3_hmap_next, with the entry's key (key_size bytes) and value
 *  (elem_size bytes) copied into key_out and val_out (either may be NULL)
 *  while the entry is still that entry: the pointers mm3_hmap_next gives may
 *  name another entry by the time they are read, should another process
 *  delete this one and reuse its node. Under the lock; through a read-only
 *  handle (which cannot take it), a step that a write overlapped is taken
 *  again. */
MM3_API int mm3_hmap_next_copy(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t pos[3], void *key_out,
                              void *val_out);

/* segmented<T> ------------------------------------------------------------ */

/** Element i (0-based) or NULL past the end. Lock-free. */
MM3_API uint8_t *mm3_seg_at(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i);
/** Append; existing elements never move. ENOSPC, MM3_ERESERVE. */
MM3_API int mm3_seg_push(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *item);
/** Remove the last element (copied to out if not NULL). MM3_ERANGE if empty. */
MM3_API int mm3_seg_pop(mm3_file *f, uint8_t *c, const mm3_ctype *t, void *out);
/** Overwrite element i with item. MM3_ERANGE past the end. */
MM3_API int mm3_seg_set(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t i, const void *item);
/** Keep the first n elements (n <= len). The bytes of the cut elements stay
 *  until later pushes overwrite them. */
MM3_API int mm3_seg_truncate(mm3_file *f, uint8_t *c, const mm3_ctype *t, uint64_t n);

/* value (a blob of bytes) ------------------------------------------------- */

/** Copy the stored bytes into buf (cap bytes long) and set *len.
 *  @return 0; MM3_ERANGE if cap is too small (*len says how much is needed:
 *          call again); MM3_ECORRUPT. */
MM3_API int mm3_value_get(mm3_file *f, uint8_t *c, const mm3_ctype *t, void *buf, uint64_t cap,
                          uint64_t *len);
/** Replace the stored bytes. value<N>: MM3_EFULL when len > N. */
MM3_API int mm3_value_set(mm3_file *f, uint8_t *c, const mm3_ctype *t, const void *data, uint64_t len);

/** SipHash-1-3 of len bytes, keyed by seed (hash containers use the file's
 *  random seed, so keys crafted against one file do not collide in another). */
MM3_API uint64_t mm3_hash(uint64_t seed, const void *data, size_t len);
/** The file's random seed (from its header, as read when the file was opened:
 *  every key hash of this handle uses that one). */
MM3_API uint64_t mm3_file_seed(const mm3_file *f);

/* ------------------------------------------------------------------------
 * Transactions and crash safety
 * ------------------------------------------------------------------------
 * Every write a container operation makes, and every write inside a
 * transaction, first records the old bytes in the file's undo log. If the
 * writing process dies (kill -9 included), the next process to take the lock
 * (or to open the file when nobody else has it open) rolls the unfinished
 * work back, so each operation and each transaction is all or nothing.
 * Atomic fields are shared live and never rolled back. */

/** Largest undo log (bytes, with 24 bytes of bookkeeping per entry). The
 *  log starts at 64 KiB and doubles as needed. A transaction's log holds the
 *  first change it makes to each range of data that existed when it began
 *  (later changes of the same range, and anything written into space it
 *  allocated itself, need no entry), so a million map inserts into a new map
 *  fit in a few KiB; a nested transaction counts from its own savepoint,
 *  and so does what follows it. A transaction that outgrows the log fails
 *  with MM3_ELOGFULL and is rolled back. */
#define MM3_LOG_CAPACITY (((uint64_t)256 << 20) - 16)

/** Begin a transaction (nested ones are savepoints inside the outer one).
 *  Takes the file's lock until the matching commit or rollback.
 *  While it is open, another mm3_file of the same file in the same thread
 *  (the lock is recursive, so it would get it too) cannot begin one or make
 *  a logged write (container operations, mm3_file_write): those return
 *  MM3_EBUSY instead of committing this transaction's log.
 *  @param savepoint receives the position to roll back to
 *  @return 0, MM3_EREADONLY, MM3_EBUSY, or an errno from the lock. */
MM3_API int mm3_txn_begin(mm3_file *f, uint64_t *savepoint);
/** Commit the innermost transaction. The outermost commit makes the writes
 *  final (and durable, with mm3_file_set_durable). @return 0 or an errno
 *  from flushing. */
MM3_API int mm3_txn_commit(mm3_file *f);
/** Undo every write since savepoint and end the innermost transaction. */
MM3_API void mm3_txn_rollback(mm3_file *f, uint64_t savepoint);
/** Depth of transactions this process has open on f (0: none). */
MM3_API int mm3_txn_depth(const mm3_file *f);
/** Make every outermost commit durable (msync + fdatasync before it returns). */
MM3_API void mm3_file_set_durable(mm3_file *f, int durable);
/** Copy n bytes into the file at dst (a pointer into f) as one crash-atomic
 *  write (logged). @return 0, MM3_ERANGE (dst outside the file), MM3_EREADONLY. */
MM3_API int mm3_file_write(mm3_file *f, void *dst, const void *src, size_t n);
/** How many unfinished writes of dead processes this handle has rolled back. */
MM3_API uint64_t mm3_file_recovered(const mm3_file *f);

/** FNV-1a 64 of a byte string (the layout fingerprint function). */
MM3_API uint64_t mm3_fnv1a64(const void *data, size_t len, uint64_t h);
#define MM3_FNV_OFFSET 0xcbf29ce484222325ULL

#ifdef __cplusplus
}
#endif
#endif /* MEMMAP3_H */
