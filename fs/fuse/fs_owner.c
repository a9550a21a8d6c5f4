/* fs_owner.c - who wrote a pending update (fs_write.c): FUSE gives the
 * thread of each request, not its open file, so an update keeps its
 * writers' thread ids and, only when a request's thread is not one of
 * them, compares processes through /proc/TID/status.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_internal.h"

bool fs__owner_tid(const struct fs_upd* u, int32_t tid)
{
    for (size_t i = 0; i < u->n_owners; i++) {
        if (u->owners[i].tid == tid) {
            return true;
        }
    }
    return false;
}

/* The process of thread tid, from /proc (0: gone or unreadable). */
static int32_t tgid_of(int32_t tid)
{
    char path[64], buf[512];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    const char* p = strstr(buf, "\nTgid:");
    return p != NULL ? (int32_t)strtol(p + 6, NULL, 10) : 0;
}

void fs__owner_add(struct fs_upd* u, int32_t tid)
{
    if (tid <= 0 || u->many) {
        return; /* the kernel's own write-back has no writer */
    }
    for (size_t i = 0; i < u->n_owners; i++) {
        if (u->owners[i].tid == tid) {
            return;
        }
    }
    if (u->n_owners == FS_UPD_OWNERS) {
        u->many = true;
        return;
    }
    u->owners[u->n_owners].tid = tid;
    u->owners[u->n_owners].tgid = 0;
    u->n_owners++;
}

/* Whether a request of thread tid may finish u: a thread that wrote it,
 * or one of the same process, or anyone once no writer is known to be
 * alive (write-back only, or its writers are gone). */
bool fs__owner_is(struct fs_upd* u, int32_t tid)
{
    int32_t tgid = 0;
    bool alive = false;

    if (u->many || u->n_owners == 0) {
        return true;
    }
    for (size_t i = 0; i < u->n_owners; i++) {
        if (u->owners[i].tid == tid) {
            return true; /* the common case: no /proc read */
        }
    }
    if (tid > 0) {
        tgid = tgid_of(tid);
    }
    for (size_t i = 0; i < u->n_owners; i++) {
        struct fs_owner* o = &u->owners[i];
        if (o->tgid == 0) {
            o->tgid = tgid_of(o->tid);
            if (o->tgid == 0) {
                o->tgid = -1;
            }
        }
        if (o->tgid > 0) {
            alive = true;
            if (o->tgid == tgid || o->tid == tgid) {
                return true;
            }
        }
    }
    return !alive;
}

/* Whether every thread that wrote u has exited (read now, not cached). */
bool fs__owners_gone(const struct fs_upd* u)
{
    for (size_t i = 0; i < u->n_owners; i++) {
        if (tgid_of(u->owners[i].tid) != 0) {
            return false;
        }
    }
    return true;
}
