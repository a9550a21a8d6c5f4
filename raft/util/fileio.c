/* fileio.c - full writes and fsync of a directory (fileio.h). */
#include "fileio.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int util_write_all(int fd, const void* buf, size_t len)
{
    const uint8_t* p = buf;
    while (len > 0) {
        size_t n = len < UTIL_IO_CHUNK ? len : UTIL_IO_CHUNK;
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int util_pwrite_all(int fd, const void* buf, size_t len, uint64_t off)
{
    struct iovec iov = {(void*)buf, len};
    return util_pwritev_all(fd, &iov, 1, off);
}

int util_pwritev_all(int fd, struct iovec* iov, int n, uint64_t off)
{
    assert(n >= 0);
    /* Skip empty buffers: pwritev of nothing but them would return 0. */
    while (n > 0 && iov->iov_len == 0) {
        iov++;
        n--;
    }
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        off += (uint64_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t*)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

int util_mkdir_parents(const char* path, unsigned mode)
{
    assert(path != NULL);
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(buf)) {
        return -ENAMETOOLONG;
    }
    memcpy(buf, path, len + 1);
    for (char* p = buf + 1; *p != '\0'; p++) {
        if (*p == '/' && p[-1] != '/') {
            *p = '\0';
            if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    return 0;
}

int util_fsync_dir(const char* dir)
{
    assert(dir != NULL);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rv = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rv;
}

int util_fsync_parent(const char* path)
{
    assert(path != NULL);
    char dir[PATH_MAX];
    const char* slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : (size_t)(slash - path);

    if (slash == NULL) {
        memcpy(dir, ".", 2);
    } else if (n == 0) {
        memcpy(dir, "/", 2);
    } else if (n < sizeof(dir)) {
        memcpy(dir, path, n);
        dir[n] = '\0';
    } else {
        return -ENAMETOOLONG;
    }
    return util_fsync_dir(dir);
}
