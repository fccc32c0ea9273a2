/*
 * mm3_error.c - error names and the version query.
 */
#include <string.h>

#include "mm3_internal.h"

static const char *const mm3_errnames[] = {
  "offset or length out of range",                 /* MM3_ERANGE */
  "read-only",                                     /* MM3_EREADONLY */
  "invalid argument",                              /* MM3_EINVAL */
  "length overflows the address space",            /* MM3_ETOOBIG */
  "not supported",                                 /* MM3_ENOTSUP */
  "not a memmap3 file",                            /* MM3_EBADFILE */
  "file format is newer than this library",        /* MM3_EVERSION */
  "file is corrupted",                             /* MM3_ECORRUPT */
  "file layout differs from the schema",           /* MM3_ESCHEMA */
  "container is full",                             /* MM3_EFULL */
  "file outgrew its reserved address range",       /* MM3_ERESERVE */
  "file is truncated",                             /* MM3_ETRUNCATED */
  "file was written with another byte order",      /* MM3_EBYTEORDER */
  "not found",                                     /* MM3_ENOTFOUND */
  "an unfinished write of a dead process needs recovery: open the file read-write once", /* MM3_ERECOVER */
  "the file has a transaction open through another open of it in this thread: write through that one", /* MM3_EBUSY */
  "transaction too large for the undo log (256 MiB of changes to data that existed before it)", /* MM3_ELOGFULL */
  "the file's lock was overwritten by another program: close every open of the file (the next first opener "
  "makes the lock anew)", /* MM3_ELOCKBAD */
  "other processes kept writing while a read-only open read this (or one died writing: any write, or a "
  "read-write open alone with the file, ends that)", /* MM3_EWRITERS */
};

const char *mm3_strerror(int err) {
  if (err == 0) return "success";
  if (err > 0) return strerror(err);
  if (err >= MM3_ERR_BASE && err <= MM3_ERR_LAST)
    return mm3_errnames[err - MM3_ERR_BASE];
  return "unknown error";
}

const char *mm3_version(int *major, int *minor, int *patch) {
  if (major) *major = MM3_VERSION_MAJOR;
  if (minor) *minor = MM3_VERSION_MINOR;
  if (patch) *patch = MM3_VERSION_PATCH;
  return MM3_VERSION_STRING;
}
