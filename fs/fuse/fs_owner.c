/* fs_owner.c - who wrote a pending update (fs_write.c): FUSE gives the
 * thread of each request, not its open file, so an update keeps its
 * writers' thread ids and, only when a request's thread is not one of
 * them, compares processes through /proc/TID/status.
 *
 * And whether a writer that closes a file still holds a descriptor of the
 * mount (fs__owner_holds_mount): the kernel sends a FLUSH at every
 * close(), and with no OPEN/RELEASE nothing says which close is the last
 * one of an open file. Read from /proc/PID/mountinfo and
 * /proc/PID/fdinfo, which never send this mount a request.
 */
#include <dirent.h>
#include <errno.h>
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

/* The start of file path (relative to directory dir, or AT_FDCWD) into
 * buf, NUL-terminated: its length, at most cap - 1; -1 with errno when it
 * cannot be opened or read. */
static ssize_t read_small(int dir, const char* path, char* buf, size_t cap)
{
    int fd = openat(dir, path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, buf, cap - 1);
    int err = errno;
    close(fd);
    if (n < 0) {
        errno = err;
        return -1;
    }
    buf[n] = '\0';
    return n;
}

/* The process of thread tid, from /proc (0: gone or unreadable). */
static int32_t tgid_of(int32_t tid)
{
    char path[64], buf[512];

    snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
    if (read_small(AT_FDCWD, path, buf, sizeof(buf)) <= 0) {
        return 0;
    }
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

/* Bounds of fs__owner_holds_mount: past them it answers "holds". */
enum {
    OWNER_MOUNTS_MAX = 16, /* mounts of the device (binds) */
    OWNER_PROCS_MAX = 64,  /* the process and its descendants */
    OWNER_FDS_MAX = 4096,  /* descriptors per process */
};

/* The mount id and the device of one /proc/PID/mountinfo line ("ID
 * PARENT MAJ:MIN ..."): 0, or -1 when it does not parse. */
static int mountinfo_line(const char* line, long* id, unsigned* dev)
{
    char* end;

    *id = strtol(line, &end, 10);
    if (end == line || *end != ' ') {
        return -1;
    }
    (void)strtol(end, &end, 10); /* the parent */
    unsigned long maj = strtoul(end, &end, 10);
    if (*end != ':') {
        return -1;
    }
    unsigned long min = strtoul(end + 1, &end, 10);
    if (*end != ' ') {
        return -1;
    }
    *dev = (unsigned)(maj << 20 | min);
    return 0;
}

/* The ids of the mounts of device conn in pid's mount namespace: how many
 * (0: none there), -1 when unreadable or more than cap. */
static int mounts_of(int32_t pid, unsigned conn, long* ids, int cap)
{
    char path[64];
    char* line = NULL;
    size_t len = 0;
    unsigned dev;
    long id;
    int k = 0;
    FILE* fp;

    snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)pid);
    fp = fopen(path, "re");
    if (fp == NULL) {
        return -1;
    }
    while (getline(&line, &len, fp) > 0) {
        if (mountinfo_line(line, &id, &dev) != 0 || dev != conn) {
            continue;
        }
        if (k == cap) {
            k = -1;
            break;
        }
        ids[k++] = id;
    }
    free(line);
    fclose(fp);
    return k;
}

/* What a descriptor must be to count (holds_fd): on one of the mounts
 * ids; with n_inos, also of one of the files inos (the kernel's i_ino,
 * the st_ino this mount answered) and open for writing. */
struct fd_match {
    const long* ids;
    int n_ids;
    const uint64_t* inos;
    int n_inos;
};

/* The value of field `key` ("mnt_id:") of an fdinfo text, in base; -1
 * when absent. */
static long long fdinfo_field(const char* buf, const char* key, int base)
{
    const char* p = strstr(buf, key);
    return p != NULL ? strtoll(p + strlen(key), NULL, base) : -1;
}

/* One /proc/PID/fdinfo entry: 1 if it matches m, 0 if not or the
 * descriptor is gone, -1 when unreadable. */
static int fd_on(int dir, const char* name, const struct fd_match* m)
{
    char buf[512];
    ssize_t n = read_small(dir, name, buf, sizeof(buf));

    if (n < 0 && errno == ENOENT) {
        return 0; /* closed meanwhile */
    }
    if (n <= 0) {
        return -1;
    }
    long long id = fdinfo_field(buf, "\nmnt_id:", 10);
    if (id < 0) {
        return -1;
    }
    bool on = false;
    for (int i = 0; i < m->n_ids && !on; i++) {
        on = m->ids[i] == id;
    }
    if (!on || m->n_inos == 0) {
        return on ? 1 : 0;
    }
    long long flags = fdinfo_field(buf, "\nflags:", 8);
    const char* p = strstr(buf, "\nino:");
    if (flags < 0 || p == NULL) {
        return -1;
    }
    uint64_t ino = strtoull(p + 5, NULL, 10); /* %lu: past LLONG_MAX too */
    if ((flags & O_ACCMODE) == O_RDONLY) {
        return 0;
    }
    for (int i = 0; i < m->n_inos; i++) {
        if (m->inos[i] == ino) {
            return 1;
        }
    }
    return 0;
}

/* fn(dirfd, name, arg) for each entry of directory path but . and ..,
 * until it returns non-zero: that value; 0 at the end; -1 when the
 * directory cannot be read or has more than max entries. */
static int each_entry(const char* path,
                      int max,
                      int (*fn)(int dir, const char* name, void* arg),
                      void* arg)
{
    struct dirent* e;
    int rv = 0, seen = 0;
    DIR* d = opendir(path);

    if (d == NULL) {
        return -1;
    }
    while (rv == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            rv = ++seen > max ? -1 : fn(dirfd(d), e->d_name, arg);
        }
    }
    closedir(d);
    return rv;
}

static int fd_entry(int dir, const char* name, void* arg)
{
    return fd_on(dir, name, arg);
}

/* 1 if process pid holds a descriptor that matches m, 0 if not, -1 when
 * that cannot be told. */
static int holds_fd(int32_t pid, const struct fd_match* m)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%d/fdinfo", (int)pid);
    return each_entry(path, OWNER_FDS_MAX, fd_entry, (void*)m);
}

/* Where add_children appends: procs[*n..cap). */
struct proc_list {
    int32_t* procs;
    size_t* n;
    size_t cap;
};

/* One thread's /proc/PID/task/TID/children: its child processes appended;
 * 0, or -1 when unreadable, maybe cut, or past the list's cap. */
static int task_children(int dir, const char* name, void* arg)
{
    struct proc_list* l = arg;
    char path[64], buf[1024];

    snprintf(path, sizeof(path), "%.16s/children", name);
    ssize_t len = read_small(dir, path, buf, sizeof(buf));
    if (len < 0) {
        return errno == ENOENT ? 0 : -1; /* a thread that just exited */
    }
    if (len == (ssize_t)sizeof(buf) - 1) {
        return -1; /* maybe cut */
    }
    for (char *p = buf, *end;; p = end) {
        long child = strtol(p, &end, 10);
        if (end == p) {
            return 0;
        }
        if (*l->n == l->cap) {
            return -1;
        }
        l->procs[(*l->n)++] = (int32_t)child;
    }
}

/* Append pid's children (those of each of its threads) to procs[*n..cap):
 * 0, or -1 when unreadable or past cap. */
static int add_children(int32_t pid, int32_t* procs, size_t* n, size_t cap)
{
    char path[64];
    struct proc_list l = {.procs = procs, .n = n, .cap = cap};

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    return each_entry(path, OWNER_FDS_MAX, task_children, &l);
}

/* The ids of the mounts of this mount's device in the mount namespace of
 * thread tid's process (*tgid): how many; 0 or less when that cannot be
 * told (no connection known, the process gone, none or too many). */
static int owner_mounts(const struct fs* f,
                        int32_t tid,
                        long* ids,
                        int32_t* tgid)
{
    *tgid = tid > 0 ? tgid_of(tid) : 0;
    if (f->conn == 0 || *tgid == 0) {
        return -1;
    }
    return mounts_of(*tgid, f->conn, ids, OWNER_MOUNTS_MAX);
}

bool fs__owner_holds_mount(const struct fs* f, int32_t tid)
{
    long ids[OWNER_MOUNTS_MAX];
    int32_t procs[OWNER_PROCS_MAX];
    int32_t tgid;
    size_t n = 0;
    int n_ids = owner_mounts(f, tid, ids, &tgid);

    if (n_ids <= 0) {
        return true;
    }
    const struct fd_match m = {.ids = ids, .n_ids = n_ids};
    /* The process and the ones it forked: a child may have inherited the
     * descriptor and write through it after the parent's close (a shell's
     * or a supervisor's redirection). */
    procs[n++] = tgid;
    for (size_t i = 0; i < n; i++) {
        if (holds_fd(procs[i], &m) != 0 ||
            add_children(procs[i], procs, &n, OWNER_PROCS_MAX) != 0) {
            return true;
        }
    }
    return false;
}

int fs__owner_writes_file(const struct fs* f,
                          int32_t tid,
                          const uint64_t* inos,
                          int n_inos)
{
    long ids[OWNER_MOUNTS_MAX];
    int32_t tgid;
    int n_ids = owner_mounts(f, tid, ids, &tgid);

    if (n_ids <= 0) {
        return -1;
    }
    const struct fd_match m = {
        .ids = ids, .n_ids = n_ids, .inos = inos, .n_inos = n_inos};
    return holds_fd(tgid, &m);
}
