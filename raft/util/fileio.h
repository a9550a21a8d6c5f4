/* fileio.h - the file operations every module that writes to disk needs:
 * full writes (short writes and EINTR resumed) and fsync of a directory
 * (after a create, rename or unlink in it: the commit point of the
 * change of name).
 *
 * Errors: negative errno. Callers decide what a failure means (the store
 * and the log make a failed write or fsync sticky: never retried).
 */
#ifndef QFS_UTIL_FILEIO_H
#define QFS_UTIL_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Bytes per write(2) call of util_write_all. */
#define UTIL_IO_CHUNK (1u << 20)

/* write(2) all of buf at the file position, UTIL_IO_CHUNK at a time. */
int util_write_all(int fd, const void* buf, size_t len);
/* pwrite(2) all of buf at off. */
int util_pwrite_all(int fd, const void* buf, size_t len, uint64_t off);
/* pwritev(2) all of iov[0..n) at off. iov is modified (consumed). */
int util_pwritev_all(int fd, struct iovec* iov, int n, uint64_t off);

/* mkdir(2) with mode each missing parent directory of path (not path
 * itself), like `mkdir -p $(dirname path)`. -ENAMETOOLONG past PATH_MAX. */
int util_mkdir_parents(const char* path, unsigned mode);

/* fsync the directory dir. */
int util_fsync_dir(const char* dir);
/* fsync the directory holding path ("." for a bare name, "/" for
 * "/name"). -ENAMETOOLONG past PATH_MAX. */
int util_fsync_parent(const char* path);

#endif /* QFS_UTIL_FILEIO_H */
