/* fuseconn.c - the FUSE connection of a node after kill -9 (fuseconn.h).
 *
 * Why: kill -9 of a node whose notifier thread is inside
 * fuse_lowlevel_notify_inval_entry (waiting for a directory lock that a
 * request of ours holds while it waits for the dead loop) or inside
 * invalidate_inode_pages2_range (a page locked by a read waiting for us)
 * leaves that thread in D state: the process cannot finish dying, its
 * /dev/fuse fd stays open, the connection stays alive and every client of
 * the mount hangs. Aborting the connection
 * (/sys/fs/fuse/connections/N/abort) ends every pending request with an
 * error: the locks are released, the thread returns and dies.
 *
 * Two mechanisms, each enough alone:
 * - the watchdog, forked before any thread, aborts the connection as soon
 *   as the node's main thread dies without saying goodbye;
 * - at the next start, fuseconn_clear_stale() finds the mount left at the
 *   mountpoint, proves it is the dead node's (device recorded in LOCK, LOCK
 *   free or held by that pid while it dies), aborts it and unmounts it.
 */
#include "fuseconn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../raft/util/datadir.h"

#define CONN_DIR "/sys/fs/fuse/connections"
#define FSTYPE "fuse.quorumfs"

enum {
    MOUNTINFO_LINES_MAX = 1 << 20, /* bound on the lines read */
    LOCK_WAIT_MS = 10000,          /* for a dying node to let go of LOCK */
    POLL_MS = 50,
    LIVE_GRACE_MS = 2000, /* a LOCK holder that is neither dying nor gone */
    WATCHDOG_TICK_MS = 1000,
    FDS_MAX = 1024, /* fds closed in the watchdog */
};

struct mnt_entry {
    bool found;
    unsigned maj, min;
    char fstype[64];
    char source[64]; /* "quorumfs:PID" (fuseconn_fsname) */
};

static void fsname_of(pid_t pid, char* buf, size_t cap)
{
    snprintf(buf, cap, "quorumfs:%d", (int)pid);
}

void fuseconn_fsname(char* buf, size_t cap)
{
    fsname_of(getpid(), buf, cap);
}

/* Was the mount made by process pid? Its source names the pid that mounted
 * it (fuseconn_fsname). The device number would not do: the kernel gives a
 * new mount the lowest free one, so a mount made after another was
 * cleared usually has the same MAJ:MIN. legacy: a source of plain
 * "quorumfs" (a version that did not name the pid) passes. */
static bool made_by(const struct mnt_entry* e, pid_t pid, bool legacy)
{
    char want[64];
    if (legacy && strcmp(e->source, "quorumfs") == 0) {
        return true;
    }
    fsname_of(pid, want, sizeof(want));
    return strcmp(e->source, want) == 0;
}

static unsigned conn_number(unsigned maj, unsigned min)
{
    return (maj << 20) | min; /* the kernel's dev_t, as fusectl names it */
}

void fuseconn_mountinfo_unescape(char* s)
{
    char* out = s;
    for (char* p = s; *p != '\0'; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
            p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
            *out++ =
                (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
}

/* The topmost mount at path (the last line naming it). */
static int mountinfo_find(const char* path, struct mnt_entry* e)
{
    memset(e, 0, sizeof(*e)); /* defined on every path */
    FILE* f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL) {
        return -errno;
    }
    char* line = NULL;
    size_t cap = 0;
    for (unsigned n = 0; n < MOUNTINFO_LINES_MAX; n++) {
        if (getline(&line, &cap, f) < 0) {
            break;
        }
        unsigned maj, min;
        char mp[PATH_MAX * 4 + 1], fstype[64], source[64] = "";
        int off = 0;
        /* id parent maj:min root mountpoint options [optional...] - type
         * source superoptions */
        if (sscanf(line, "%*u %*u %u:%u %*s %4096s %n", &maj, &min, mp, &off) !=
            3) {
            continue;
        }
        char* dash = strstr(line + off, " - ");
        if (dash == NULL || sscanf(dash + 3, "%63s %63s", fstype, source) < 1) {
            continue;
        }
        fuseconn_mountinfo_unescape(mp);
        if (strcmp(mp, path) == 0) {
            e->found = true;
            e->maj = maj;
            e->min = min;
            snprintf(e->fstype, sizeof(e->fstype), "%s", fstype);
            snprintf(e->source, sizeof(e->source), "%s", source);
        }
    }
    free(line);
    fclose(f);
    return 0;
}

/* The absolute path of the mountpoint without looking inside it: the
 * parent is resolved (realpath), the last component appended as is. */
static int abs_mountpoint(const char* mnt, char* out, size_t cap)
{
    char buf[PATH_MAX];
    char dir[PATH_MAX];
    size_t len = strlen(mnt);
    if (len == 0 || len >= sizeof(buf)) {
        return -ENAMETOOLONG;
    }
    memcpy(buf, mnt, len + 1);
    while (len > 1 && buf[len - 1] == '/') {
        buf[--len] = '\0';
    }
    char* slash = strrchr(buf, '/');
    const char* base = slash != NULL ? slash + 1 : buf;
    const char* parent = slash == NULL ? "." : (slash == buf ? "/" : buf);
    if (slash != NULL && slash != buf) {
        *slash = '\0';
    }
    if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || base[0] == '\0') {
        return realpath(mnt, out) != NULL ? 0 : -errno; /* rare: resolve */
    }
    if (realpath(parent, dir) == NULL) {
        return -errno;
    }
    int n = snprintf(out, cap, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir, base);
    return n > 0 && (size_t)n < cap ? 0 : -ENAMETOOLONG;
}

struct lock_record {
    pid_t pid;
    bool has_conn;
    unsigned maj, min;
    char mnt[PATH_MAX];
};

static int lock_read(const char* data_dir, struct lock_record* r)
{
    char path[PATH_MAX + 8], buf[PATH_MAX + 128];
    util_datadir_path(path, sizeof(path), data_dir, DATADIR_LOCK);
    memset(r, 0, sizeof(*r));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    if (n < 0) {
        return -errno;
    }
    buf[n] = '\0';
    int pid = 0, off = 0, at = 0;
    if (sscanf(buf, "%d\n%n", &pid, &off) < 1) {
        return -EINVAL;
    }
    r->pid = pid;
    if (off > 0 &&
        sscanf(buf + off, "fuse %u:%u %n", &r->maj, &r->min, &at) == 2 &&
        at > 0) {
        char* nl;
        snprintf(r->mnt, sizeof(r->mnt), "%s", buf + off + at);
        if ((nl = strchr(r->mnt, '\n')) != NULL) {
            *nl = '\0';
        }
        r->has_conn = true;
    }
    return 0;
}

/* Is LOCK free (nobody flock()s it)? Takes and drops it at once. */
static bool lock_free(const char* data_dir)
{
    char path[PATH_MAX + 8];
    util_datadir_path(path, sizeof(path), data_dir, DATADIR_LOCK);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT;
    }
    bool free_ = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd); /* releases it */
    return free_;
}

/* The pid holding the flock on data_dir/LOCK, from /proc/locks (0: none
 * found). */
static pid_t lock_holder(const char* data_dir)
{
    char path[PATH_MAX + 8];
    struct stat sb;
    util_datadir_path(path, sizeof(path), data_dir, DATADIR_LOCK);
    if (stat(path, &sb) != 0) {
        return 0;
    }
    FILE* f = fopen("/proc/locks", "re");
    if (f == NULL) {
        return 0;
    }
    char line[256];
    pid_t holder = 0;
    for (unsigned n = 0; n < MOUNTINFO_LINES_MAX && holder == 0; n++) {
        if (fgets(line, sizeof(line), f) == NULL) {
            break;
        }
        int pid;
        unsigned maj, min;
        unsigned long ino;
        char kind[16];
        /* "1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF" */
        if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%lu", kind, &pid, &maj,
                   &min, &ino) == 5 &&
            strcmp(kind, "FLOCK") == 0 && ino == (unsigned long)sb.st_ino &&
            maj == major(sb.st_dev) && min == minor(sb.st_dev)) {
            holder = pid;
        }
    }
    fclose(f);
    return holder;
}

/* The process is dying: its main thread exited (zombie), or a thread has
 * SIGKILL pending (it is blocked in the kernel and will die on return). */
static bool dying(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE* f = fopen(path, "re");
    if (f == NULL) {
        return true; /* gone */
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char* rp = strrchr(buf, ')');
    if (rp != NULL && (rp[2] == 'Z' || rp[2] == 'X')) {
        return true;
    }
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR* d = opendir(path);
    if (d == NULL) {
        return true;
    }
    bool killed = false;
    struct dirent* de;
    while (!killed && (de = readdir(d)) != NULL) {
        char st[96], line[128];
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(st, sizeof(st), "/proc/%d/task/%.16s/status", (int)pid,
                 de->d_name);
        FILE* s = fopen(st, "re");
        if (s == NULL) {
            continue;
        }
        while (fgets(line, sizeof(line), s) != NULL) {
            unsigned long long mask;
            if ((sscanf(line, "ShdPnd: %llx", &mask) == 1 ||
                 sscanf(line, "SigPnd: %llx", &mask) == 1) &&
                (mask & (1ull << (SIGKILL - 1))) != 0) {
                killed = true;
            }
        }
        fclose(s);
    }
    closedir(d);
    return killed;
}

/* fusectl is not always mounted: mount it where the kernel expects it. */
static int conn_abort(unsigned conn)
{
    char path[96];
    snprintf(path, sizeof(path), CONN_DIR "/%u/abort", conn);
    if (access(path, F_OK) != 0) {
        struct mnt_entry e;
        if (mountinfo_find(CONN_DIR, &e) == 0 && !e.found &&
            mount("fusectl", CONN_DIR, "fusectl", 0, NULL) != 0) {
            return -errno;
        }
    }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno; /* ENOENT: the connection is already gone */
    }
    int rv = write(fd, "1", 1) == 1 ? 0 : -errno;
    close(fd);
    return rv;
}

int fuseconn_abort(unsigned conn)
{
    return conn_abort(conn);
}

static int lazy_unmount(const char* mnt)
{
    if (umount2(mnt, MNT_DETACH) == 0) {
        return 0;
    }
    if (errno != EPERM) {
        return -errno;
    }
    pid_t pid = fork(); /* not root: the setuid helper */
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        execlp("fusermount3", "fusermount3", "-u", "-z", mnt, (char*)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        return -EPERM;
    }
    return 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Is the mount provably the dead node's? 0: yes; else the refusal was
 * printed. *was_dying: the owner still holds LOCK while it dies. */
static int prove_dead_and_ours(const char* mnt,
                               const char* data_dir,
                               const struct mnt_entry* e,
                               const struct lock_record* r,
                               bool* was_dying)
{
    if (!r->has_conn) {
        fprintf(stderr,
                "quorumfs: %s is a quorumfs mount (device %u:%u) that %s/LOCK "
                "does not record: not provably this data dir's; unmount it "
                "first (fusermount3 -u %s)\n",
                mnt, e->maj, e->min, data_dir, mnt);
        return -EBUSY;
    }
    if (r->maj != e->maj || r->min != e->min || strcmp(r->mnt, mnt) != 0 ||
        !made_by(e, r->pid, true)) {
        fprintf(stderr,
                "quorumfs: %s is a quorumfs mount of device %u:%u (%s), but "
                "the last node of %s (pid %d) mounted device %u:%u on %s: not "
                "ours, refusing to touch it\n",
                mnt, e->maj, e->min, e->source, data_dir, (int)r->pid, r->maj,
                r->min, r->mnt);
        return -EBUSY;
    }
    /* A process in the middle of exiting may hold LOCK with no SIGKILL
     * pending any more: give it a moment before calling it alive. */
    pid_t holder = 0;
    for (unsigned waited = 0; waited < LIVE_GRACE_MS; waited += POLL_MS) {
        *was_dying = false;
        if (lock_free(data_dir)) {
            return 0; /* nobody holds the data dir: its node is gone */
        }
        holder = lock_holder(data_dir);
        if (holder != 0 && holder == r->pid && dying(holder)) {
            *was_dying = true;
            return 0;
        }
        sleep_ms(POLL_MS);
    }
    fprintf(stderr,
            "quorumfs: %s is mounted by a running node (pid %d holds "
            "%s/LOCK): stop it first\n",
            mnt, (int)holder, data_dir);
    return -EBUSY;
}

int fuseconn_clear_stale(const char* mountpoint, const char* data_dir)
{
    char mnt[PATH_MAX];
    struct mnt_entry e;
    struct lock_record r;
    bool was_dying;

    if (abs_mountpoint(mountpoint, mnt, sizeof(mnt)) != 0 ||
        mountinfo_find(mnt, &e) != 0 || !e.found ||
        strcmp(e.fstype, FSTYPE) != 0) {
        return 0; /* nothing of ours there: the usual checks follow */
    }
    if (lock_read(data_dir, &r) != 0) {
        memset(&r, 0, sizeof(r));
    }
    int rv = prove_dead_and_ours(mnt, data_dir, &e, &r, &was_dying);
    if (rv != 0) {
        return rv;
    }
    unsigned conn = conn_number(e.maj, e.min);
    rv = conn_abort(conn);
    /* A node that is gone closed its /dev/fuse fd, which aborted the
     * connection already: only a dying one needs this abort. */
    if (rv != 0 && rv != -ENOENT && was_dying) {
        fprintf(stderr,
                "quorumfs: cannot abort FUSE connection %u (%s): %s; unmount "
                "it with umount -f %s\n",
                conn, CONN_DIR, strerror(-rv), mnt);
        return rv;
    }
    for (unsigned waited = 0; was_dying && !lock_free(data_dir);
         waited += POLL_MS) {
        if (waited >= LOCK_WAIT_MS) {
            fprintf(stderr,
                    "quorumfs: aborted connection %u, but pid %d still holds "
                    "%s/LOCK after %u ms\n",
                    conn, (int)r.pid, data_dir, (unsigned)LOCK_WAIT_MS);
            return -EBUSY;
        }
        sleep_ms(POLL_MS);
    }
    rv = lazy_unmount(mnt);
    if (rv != 0) {
        fprintf(stderr, "quorumfs: cannot unmount the dead mount %s: %s\n", mnt,
                strerror(-rv));
        return rv;
    }
    fprintf(stderr,
            "quorumfs: %s was still mounted by the previous node of %s (pid "
            "%d, %s): aborted its FUSE connection %u (device %u:%u) and "
            "unmounted it\n",
            mnt, data_dir, (int)r.pid,
            was_dying ? "killed, stuck in the kernel" : "gone", conn, e.maj,
            e.min);
    return 0;
}

int fuseconn_record(const char* mountpoint,
                    const char* data_dir,
                    unsigned* conn)
{
    char mnt[PATH_MAX], path[PATH_MAX + 8], buf[PATH_MAX + 128];
    struct mnt_entry e;
    *conn = 0;
    int rv = abs_mountpoint(mountpoint, mnt, sizeof(mnt));
    if (rv == 0) {
        rv = mountinfo_find(mnt, &e);
    }
    if (rv != 0 || !e.found || strcmp(e.fstype, FSTYPE) != 0) {
        return rv != 0 ? rv : -ENOENT;
    }
    *conn = conn_number(e.maj, e.min);
    /* LOCK: "PID\n" (written by the node at start) then our line. Written
     * through another fd: the node's flock is on its own. */
    int n = snprintf(buf, sizeof(buf), "%d\nfuse %u:%u %s\n", (int)getpid(),
                     e.maj, e.min, mnt);
    if (n <= 0 || (size_t)n >= sizeof(buf)) {
        return -ENAMETOOLONG;
    }
    util_datadir_path(path, sizeof(path), data_dir, DATADIR_LOCK);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    rv = pwrite(fd, buf, (size_t)n, 0) == n ? 0 : -EIO;
    if (rv == 0 && ftruncate(fd, n) != 0) {
        rv = -errno;
    }
    close(fd);
    return rv;
}

/* ---- the watchdog process ---- */

static volatile sig_atomic_t parent_died;

/* PR_SET_PDEATHSIG: the node's main thread exited. getppid() alone would
 * not tell: while another thread of the node is stuck in the kernel, we
 * are reparented to that thread, in the same process. */
static void on_parent_death(int sig)
{
    (void)sig;
    parent_died = 1;
}

static void wd_log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void wd_log(const char* fmt, ...)
{
    char msg[PATH_MAX + 256];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ warn  watchdog: %s\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
            tm.tm_sec, ts.tv_nsec / 1000000, msg);
}

/* The node died without disarming: abort its connection if the mount is
 * still the one it made (never another one): the device, and its source
 * naming the node's pid (made_by; the node is this binary, so no legacy
 * source). The device number alone would take a node started on the same
 * mountpoint after this one died for it. */
static void wd_act(unsigned conn, const char* mnt, pid_t node)
{
    struct mnt_entry e;
    if (conn == 0 || mountinfo_find(mnt, &e) != 0 || !e.found ||
        strcmp(e.fstype, FSTYPE) != 0 || conn_number(e.maj, e.min) != conn) {
        return; /* not armed, or already unmounted */
    }
    if (!made_by(&e, node, false)) {
        wd_log(
            "node pid %d died; %s (device %u:%u, source %s) is now "
            "another node's mount: left alone",
            (int)node, mnt, e.maj, e.min, e.source);
        return;
    }
    int rv = conn_abort(conn);
    wd_log("node pid %d died: %s FUSE connection %u of %s%s%s", (int)node,
           rv == 0 ? "aborted" : "could not abort", conn, mnt,
           rv == 0 ? "" : ": ", rv == 0 ? "" : strerror(-rv));
}

void fuseconn_stdio_to(const char* log_path)
{
    if (log_path != NULL) {
        int fd =
            open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
    }
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        close(null);
    }
}

static void wd_main(int fd, pid_t node)
{
    char buf[PATH_MAX + 64], mnt[PATH_MAX] = "";
    size_t have = 0;
    unsigned conn = 0;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = parent_died ? 0 : poll(&p, 1, WATCHDOG_TICK_MS);
        if (parent_died || getppid() != node) {
            wd_act(conn, mnt, node); /* the node's main thread is gone */
            _exit(0);
        }
        if (r <= 0) {
            continue; /* tick or signal */
        }
        ssize_t n = read(fd, buf + have, sizeof(buf) - 1 - have);
        if (n <= 0) {
            wd_act(conn, mnt, node); /* EOF: the node is gone */
            _exit(0);
        }
        have += (size_t)n;
        buf[have] = '\0';
        char* nl;
        while ((nl = strchr(buf, '\n')) != NULL) {
            *nl = '\0';
            int off = 0;
            if (strcmp(buf, "D") == 0) {
                _exit(0); /* orderly shutdown */
            }
            if (sscanf(buf, "A %u %n", &conn, &off) == 1 && off > 0) {
                snprintf(mnt, sizeof(mnt), "%s", buf + off);
            }
            size_t used = (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, have - used + 1);
            have -= used;
        }
        if (have == sizeof(buf) - 1) {
            have = 0; /* a line too long: not ours, drop it */
        }
    }
}

/* Fork order: pipe (write end close-on-exec for the node) -> fork -> child:
 * PR_SET_PDEATHSIG, check the parent did not die before it, close every
 * other fd (the daemon's ready pipe, stdin, stdout) -> wait. */
int fuseconn_watchdog_start(struct fuseconn_watchdog* w, const char* log_path)
{
    int p[2];
    w->pid = 0;
    w->fd = -1;
    if (pipe2(p, O_CLOEXEC) != 0) {
        return -errno;
    }
    pid_t node = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int err = -errno;
        close(p[0]);
        close(p[1]);
        return err;
    }
    if (pid > 0) {
        close(p[0]);
        w->pid = pid;
        w->fd = p[1];
        return 0;
    }
    struct sigaction sa = {.sa_handler = on_parent_death};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGINT, SIG_IGN); /* a ^C stops the node, which disarms us */
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_PDEATHSIG, SIGUSR1);
    prctl(PR_SET_NAME, "quorumfs-wd");
    if (getppid() != node) {
        _exit(0); /* the node died before we were armed: nothing to do */
    }
    fuseconn_stdio_to(log_path);
    for (int fd = 3; fd < FDS_MAX; fd++) {
        if (fd != p[0]) {
            close(fd);
        }
    }
    if (chdir("/") != 0) {
        /* nothing held either way */
    }
    wd_main(p[0], node);
    _exit(0);
}

void fuseconn_watchdog_arm(struct fuseconn_watchdog* w,
                           unsigned conn,
                           const char* mountpoint)
{
    char line[PATH_MAX + 32], mnt[PATH_MAX];
    if (w->fd < 0 || abs_mountpoint(mountpoint, mnt, sizeof(mnt)) != 0) {
        return;
    }
    int n = snprintf(line, sizeof(line), "A %u %s\n", conn, mnt);
    if (n > 0 && (size_t)n < sizeof(line) &&
        write(w->fd, line, (size_t)n) != n) {
        /* the watchdog is gone: the start-up clean-up remains */
    }
}

void fuseconn_watchdog_disarm(struct fuseconn_watchdog* w)
{
    if (w->fd < 0) {
        return;
    }
    if (write(w->fd, "D\n", 2) != 2) {
        /* gone already */
    }
    close(w->fd);
    w->fd = -1;
    if (w->pid > 0) {
        waitpid(w->pid, NULL, 0); /* it exits at once on "D" */
        w->pid = 0;
    }
}
