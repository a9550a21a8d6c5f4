/* mount.c - `quorumfs mount` runs a node and its FUSE mount (mount.h;
 * the flags are mount_flags.c's).
 *
 * Start-up order: clear a mount left by a dead node of the data dir
 * (fuseconn.c) -> check the mountpoint -> fork (unless -f) -> fork the
 * watchdog (before any thread) -> node_start
 * (lock, log, db, replay, raft, transport) -> a read barrier (the store
 * catches up with what the cluster had committed; a cluster member that
 * cannot within --catch-up-timeout-ms exits with an error unless
 * --mount-stale) -> FUSE session mount -> record the connection in LOCK
 * and arm the watchdog -> the notifier thread -> the request reader
 * thread (fs_reader_start: it answers a FLUSH with nothing pending itself
 * and hands the loop every other request) -> tell the parent
 * "ready" (the parent exits 0; with -f under systemd, READY=1 instead:
 * sdnotify.h).
 * Logs: with -f on stderr. Without -f the child logs to
 * DATA_DIR/quorumfs.log from its first line (log_to_file, before the
 * watchdog and node_start); until it is mounted its warnings and errors
 * are also written to the terminal of the waiting parent, so a start-up
 * that fails says why where it was started.
 * Shutdown (SIGTERM/SIGINT, or the mount going away): stop reading FUSE
 * requests, node_stop (pending operations fail, log and db are synced),
 * disarm the watchdog, unmount, exit 0.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../raft/tls.h"
#include "../../raft/util/datadir.h"
#include "../../raft/util/fileio.h"
#include "cli_log.h"
#include "ctl.h"
#include "fs.h"
#include "fuseconn.h"
#include "metrics_http.h"
#include "mount.h"
#include "node.h"
#include "node_metrics.h"
#include "sdnotify.h"

/* How long the notifier may take to stop at shutdown before the connection
 * is aborted (stop_notifier). */
enum { NOTIFIER_STOP_MS = 2000 };

struct app {
    uv_loop_t loop;
    uv_timer_t settle_timer; /* fs_options.settle_timer */
    uv_async_t notify_async; /* fs_options.notify_async */
    struct mount_opts* mo;
    struct cli_log log; /* the CLI's own lines (not the node's) */
    struct node* node;
    struct fs* fs;
    struct fuse_session* se;
    struct ctl* ctl;
    struct node_retention* retention;
    struct metrics_http* http; /* --listen-metrics; NULL: none */
    uv_async_t reader_async;   /* fs_reader_start: requests for the loop */
    uv_poll_t fuse_poll;       /* fs_reader_start: the session's fd */
    uv_timer_t resume_timer;   /* backlog full: FUSE reads paused */
    uv_signal_t sigterm, sigint;
    int ready_fd; /* pipe to the waiting parent, -1 when none */
    int term_fd;  /* the parent's stderr until mounted (no -f), else -1 */
    struct fs_options fo;
    bool startup_failed;
    bool shutting_down;
    bool mounted;
    int exit_code;
    struct fuseconn_watchdog wd; /* aborts the connection if we die */
    unsigned conn;               /* its number, 0 when not recorded */
    struct sdnotify sdn;         /* systemd's notify socket (-f only) */
};

static int check_mountpoint(const char* mnt)
{
    struct stat st;
    if (stat(mnt, &st) != 0) {
        fprintf(stderr, "quorumfs: mountpoint %s: %s\n", mnt, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "quorumfs: mountpoint %s is not a directory\n", mnt);
        return -1;
    }
    DIR* d = opendir(mnt);
    if (d == NULL) {
        fprintf(stderr, "quorumfs: mountpoint %s: %s\n", mnt, strerror(errno));
        return -1;
    }
    struct dirent* e;
    bool empty = true;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            empty = false;
            break;
        }
    }
    closedir(d);
    if (!empty) {
        fprintf(stderr, "quorumfs: mountpoint %s is not empty\n", mnt);
        return -1;
    }
    return 0;
}

/* ---- running ---- */

static void begin_shutdown(struct app* a, const char* why);

static bool backlog_full(struct app* a)
{
    return a->fs != NULL && node_backlog_full(a->node, fs_held_bytes(a->fs));
}

/* Memory is bounded in bytes (DESIGN §1): while the proposals waiting for
 * a quorum hold NODE_PENDING_BYTES_MAX, requests stay in the kernel's
 * queue (their writers wait there) instead of in our memory. */
static void resume_cb(uv_timer_t* t)
{
    struct app* a = t->data;
    if (a->shutting_down) {
        return;
    }
    if (backlog_full(a)) {
        uv_timer_start(&a->resume_timer, resume_cb, 1, 0);
        return;
    }
    fs_reader_pause(a->fs, false);
}

static bool reader_paused(void* data)
{
    struct app* a = data;
    if (!backlog_full(a)) {
        return false;
    }
    a->resume_timer.data = a;
    uv_timer_start(&a->resume_timer, resume_cb, 1, 0);
    return true;
}

static void reader_end(void* data, int err)
{
    struct app* a = data;
    a->mounted = err == 0 ? false : a->mounted;
    begin_shutdown(a, err == 0 ? "unmounted" : strerror(-err));
}

static void reader_async_cb(uv_async_t* h)
{
    struct app* a = h->data;
    fs_reader_drain(a->fs);
}

/* No request is read any more: a notify blocked on a page that a pending
 * WRITE holds would keep the process from ever exiting (seen after a
 * `member remove` + SIGTERM under load, issue 13). Abort the connection
 * then: the pending requests fail, the notify returns. */
static void stop_notifier(struct app* a)
{
    if (fs_stop_notifier(a->fs, NOTIFIER_STOP_MS) != -ETIMEDOUT) {
        return;
    }
    int rv = a->conn != 0 ? fuseconn_abort(a->conn) : -ENOENT;
    cli_log(&a->log, RAFT_TRACE_WARN,
            "the kernel-cache notifier is blocked by a request nobody "
            "will answer: %s FUSE connection %u%s%s",
            rv == 0 ? "aborted" : "cannot abort", a->conn, rv == 0 ? "" : ": ",
            rv == 0 ? "" : strerror(-rv));
}

static void node_stopped_cb(void* data)
{
    struct app* a = data;
    a->node = NULL;
    uv_stop(&a->loop);
}

/* Deferred truncations are committed and writes in flight answered. */
static void fs_quiesced_cb(void* data)
{
    struct app* a = data;
    node_stop(a->node, node_stopped_cb, a);
}

static void begin_shutdown(struct app* a, const char* why)
{
    if (a->shutting_down) {
        return;
    }
    a->shutting_down = true;
    cli_log(&a->log, RAFT_TRACE_INFO, "shutting down (%s)", why);
    sdnotify_stopping(&a->sdn, why);
    if (a->fs != NULL) {
        fs_reader_close(a->fs);
    }
    uv_timer_stop(&a->resume_timer);
    uv_signal_stop(&a->sigterm);
    uv_signal_stop(&a->sigint);
    metrics_http_stop(a->http);
    a->http = NULL;
    if (a->ctl != NULL) {
        ctl_close(a->ctl);
        a->ctl = NULL;
    }
    node_retention_close(a->retention);
    a->retention = NULL;
    if (a->fs != NULL) {
        fs_quiesce(a->fs, fs_quiesced_cb, a); /* then the node stops */
        return;
    }
    node_stop(a->node, node_stopped_cb, a);
}

static void signal_cb(uv_signal_t* s, int signum)
{
    begin_shutdown(s->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* The FUSE session with our options and the -o ones (NULL: bad options,
 * libfuse said which). */
static struct fuse_session* new_session(const char* extra, void* data)
{
    char opts[1024], fsname[64];
    fuseconn_fsname(fsname, sizeof(fsname));
    snprintf(opts, sizeof(opts),
             "default_permissions,fsname=%s,subtype=quorumfs%s%s", fsname,
             extra != NULL ? "," : "", extra != NULL ? extra : "");
    char* argv[] = {"quorumfs", "-o", opts, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    struct fuse_session* se = fuse_session_new(
        &args, fs_lowlevel_ops(), sizeof(struct fuse_lowlevel_ops), data);
    fuse_opt_free_args(&args);
    return se;
}

static void quiet_log(enum fuse_log_level level, const char* fmt, va_list ap)
{
}

int mount_check_fuse_opt(const char* opt)
{
    fuse_set_log_func(quiet_log);
    struct fuse_session* se = new_session(opt, NULL);
    fuse_set_log_func(NULL);
    if (se == NULL) {
        return -EINVAL;
    }
    fuse_session_destroy(se);
    return 0;
}

/* Every -o option is one libfuse takes: checked before anything is
 * written (exit status 2 naming the option). */
static int check_fuse_opts(const char* opts)
{
    char buf[1024];
    if (opts == NULL) {
        return 0;
    }
    if (strlen(opts) >= sizeof(buf)) {
        fprintf(stderr, "quorumfs mount: -o: options too long\n");
        return 2;
    }
    snprintf(buf, sizeof(buf), "%s", opts);
    char* save = NULL;
    for (char* o = strtok_r(buf, ",", &save); o != NULL;
         o = strtok_r(NULL, ",", &save)) {
        if (mount_check_fuse_opt(o) != 0) {
            fprintf(stderr,
                    "quorumfs mount: -o %s: not a FUSE mount option (see "
                    "`man 8 fuse`)\nTry `quorumfs mount --help`.\n",
                    o);
            return 2;
        }
    }
    return 0;
}

static int mount_fuse(struct app* a)
{
    a->se = new_session(a->mo->fuse_opts, a->fs);
    if (a->se == NULL) {
        cli_log(&a->log, RAFT_TRACE_ERROR,
                "cannot create the FUSE session (options '%s')",
                a->mo->fuse_opts != NULL ? a->mo->fuse_opts : "");
        return -EINVAL;
    }
    if (fuse_session_mount(a->se, a->mo->mountpoint) != 0) {
        cli_log(&a->log, RAFT_TRACE_ERROR, "cannot mount on %s",
                a->mo->mountpoint);
        fuse_session_destroy(a->se);
        a->se = NULL;
        return -EIO;
    }
    a->mounted = true;
    unsigned conn;
    if (fuseconn_record(a->mo->mountpoint, a->mo->node.data_dir, &conn) == 0) {
        a->conn = conn;
        fs_set_conn(a->fs, conn);
        fuseconn_watchdog_arm(&a->wd, conn, a->mo->mountpoint);
    } else {
        cli_log(&a->log, RAFT_TRACE_WARN,
                "cannot record the FUSE connection of %s: a restart after "
                "kill -9 will not clear the mount by itself",
                a->mo->mountpoint);
    }
    int rv = fs_metrics_attach(a->fs, a->se);
    if (rv != 0) {
        cli_log(&a->log, RAFT_TRACE_ERROR,
                "cannot set the FUSE session's I/O: %s", strerror(-rv));
        return rv;
    }
    rv = fs_start_notifier(a->fs, a->se);
    if (rv == 0) {
        rv = uv_poll_init(&a->loop, &a->fuse_poll, fuse_session_fd(a->se));
    }
    if (rv == 0) {
        const struct fs_reader_hooks hooks = {
            .paused = reader_paused,
            .on_end = reader_end,
            .data = a,
        };
        rv = fs_reader_start(a->fs, a->se, &a->reader_async, &a->fuse_poll,
                             &hooks);
    }
    return rv;
}

static void tell_parent(struct app* a, char status)
{
    if (a->ready_fd >= 0) {
        if (write(a->ready_fd, &status, 1) != 1) {
            /* the parent is gone: nothing to tell */
        }
        close(a->ready_fd);
        a->ready_fd = -1;
    }
}

/* Without -f, in the child, before anything logs: stdio goes to
 * DATA_DIR/quorumfs.log (the data dir is made here if it is new), and the
 * parent's stderr is kept as a tee for warnings and errors until the mount
 * is ready (terminal_done). The parent waits on the ready pipe, not on
 * this fd, so it sees the lines before it exits. */
static void log_to_file(struct app* a)
{
    char path[PATH_MAX + 32];
    const char* dir = a->mo->node.data_dir;
    util_datadir_path(path, sizeof(path), dir, DATADIR_NODE_LOG);
    if (util_mkdir_parents(dir, 0700) == 0 && mkdir(dir, 0700) != 0 &&
        errno != EEXIST) {
        fprintf(stderr, "quorumfs: cannot create data dir %s: %s\n", dir,
                strerror(errno));
    }
    a->term_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    fuseconn_stdio_to(path);
    if (a->term_fd >= 0) {
        cli_log_tee(&a->log, a->term_fd, RAFT_TRACE_WARN);
        a->mo->node.log_tee_fd = a->term_fd; /* the node's, from its start */
        a->mo->node.log_tee_level = RAFT_TRACE_WARN;
    }
}

/* The tee to the parent's terminal ends: /dev/null takes the fd's place
 * (another thread may be writing a line to it right now). */
static void terminal_done(struct app* a)
{
    if (a->term_fd < 0) {
        return;
    }
    cli_log_tee(&a->log, -1, RAFT_TRACE_WARN);
    if (a->node != NULL) {
        node_log_tee(a->node, -1, RAFT_TRACE_WARN);
    }
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, a->term_fd);
        close(null);
    }
}

static void notify_async_cb(uv_async_t* h)
{
    struct app* a = h->data;
    fs_notified(a->fs);
}

static void app_on_change(void* data, const struct store_change* c)
{
    struct app* a = data;
    if (a->fs != NULL) {
        fs_on_change(a->fs, c);
    }
}

/* The node has applied what was committed when it started (or gave up
 * waiting): mount, open the control socket, tell the waiting parent. */
static void startup_ready_cb(void* data, int err)
{
    struct app* a = data;
    if (err != 0 && node_startup_needs_cluster(a->node) &&
        !a->mo->node.mount_stale) {
        cli_log(&a->log, RAFT_TRACE_ERROR,
                "could not catch up with the cluster within %u ms (%s): "
                "not mounting a tree that may be behind it. Start enough "
                "members for a quorum, raise --catch-up-timeout-ms, or "
                "mount the local state anyway with --mount-stale",
                a->mo->node.catch_up_timeout_ms, strerror(-err));
        sdnotify_status(&a->sdn,
                        "not mounted: could not catch up with the cluster "
                        "within %u ms",
                        a->mo->node.catch_up_timeout_ms);
        a->startup_failed = true;
        node_stop(a->node, node_stopped_cb, a);
        return;
    }
    if (err != 0) {
        cli_log(&a->log, RAFT_TRACE_WARN,
                "no quorum to confirm the latest state (%s): mounting the "
                "local state as it is%s",
                strerror(-err),
                node_startup_needs_cluster(a->node) ? " (--mount-stale)" : "");
    }
    a->fs = fs_new(a->node, &a->fo);
    if (a->fs == NULL) {
        cli_log(&a->log, RAFT_TRACE_ERROR, "out of memory");
        a->startup_failed = true;
        node_stop(a->node, node_stopped_cb, a);
        return;
    }
    if (mount_fuse(a) != 0) {
        a->startup_failed = true;
        node_stop(a->node, node_stopped_cb, a);
        return;
    }
    a->ctl = ctl_start(&a->loop, a->node, a->mo->node.data_dir, &a->log);
    a->retention = node_retention_start(&a->loop, a->node);
    uv_signal_init(&a->loop, &a->sigterm);
    uv_signal_init(&a->loop, &a->sigint);
    a->sigterm.data = a->sigint.data = a;
    uv_signal_start(&a->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&a->sigint, signal_cb, SIGINT);
    cli_log(&a->log, RAFT_TRACE_INFO, "quorumfs %s mounted on %s (data dir %s)",
            a->mo->node.name, a->mo->mountpoint, a->mo->node.data_dir);
    terminal_done(a);
    tell_parent(a, 'R');
    sdnotify_ready(&a->sdn, &a->loop, a->node);
}

/* The --listen-metrics answers, on the loop (metrics_http.h). */
static int http_answer(void* data,
                       enum metrics_http_what what,
                       char** body,
                       size_t* len)
{
    struct app* a = data;
    const char* why = NULL;
    char* text = NULL;

    if (a->node == NULL || a->shutting_down) {
        why = "shutting down";
    } else if (what == METRICS_HTTP_METRICS) {
        int rv = node_metrics_text(a->node, body, len);
        if (rv == 0) {
            return 200;
        }
        why = strerror(-rv);
    } else if (what == METRICS_HTTP_LIVEZ) {
        why = NULL; /* the loop answered */
    } else if (!a->mounted) {
        why = "not mounted (catching up with the cluster at start)";
    } else {
        node_ready(a->node, &why); /* why stays NULL when ready */
    }
    if (asprintf(&text, "%s\n", why != NULL ? why : "ok") < 0) {
        text = NULL;
    }
    *body = text;
    *len = text != NULL ? strlen(text) : 0;
    if (why == NULL) {
        return 200;
    }
    return what == METRICS_HTTP_METRICS && a->node != NULL ? 500 : 503;
}

/* The HTTP listener runs from the node's start: /livez answers and
 * /readyz says why not while the node catches up. */
static void start_http(struct app* a)
{
    if (a->mo->metrics_fd < 0) {
        return;
    }
    int rv = metrics_http_start(&a->loop, a->mo->metrics_fd, http_answer, a,
                                &a->http);
    a->mo->metrics_fd = -1; /* taken */
    if (rv != 0) {
        cli_log(&a->log, RAFT_TRACE_ERROR,
                "--listen-metrics %s: cannot serve: %s: no metrics "
                "listener",
                a->mo->listen_metrics, strerror(-rv));
        return;
    }
    cli_log(&a->log, RAFT_TRACE_INFO,
            "metrics on http://%s/metrics (and /livez, /readyz)",
            a->mo->listen_metrics);
}

/* Every handle the loop still has is closed (those closing already are
 * left to finish). */
static void close_handle(uv_handle_t* h, void* arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static int run_node(struct app* a)
{
    struct fs_options fo;
    int rv;

    uv_loop_init(&a->loop);
    uv_timer_init(&a->loop, &a->settle_timer);
    uv_async_init(&a->loop, &a->notify_async, notify_async_cb);
    a->notify_async.data = a;
    uv_timer_init(&a->loop, &a->resume_timer);
    uv_async_init(&a->loop, &a->reader_async, reader_async_cb);
    a->reader_async.data = a;
    fs_options_default(&fo);
    fo.settle_timer = &a->settle_timer;
    fo.notify_async = &a->notify_async;
    fo.linearizable = a->mo->linearizable;
    fo.reader_threads = (unsigned)a->mo->fuse_threads;
    if (a->mo->pending_bytes != 0) {
        fo.pending_bytes_max = a->mo->pending_bytes;
    }
    if (a->mo->reserve_set) {
        fo.quota_reserve_pct = (unsigned)a->mo->reserve_pct;
    }
    if (a->mo->node.store.file_size_max != 0) {
        fo.file_size_max = a->mo->node.store.file_size_max;
    } else {
        a->mo->node.store.file_size_max = fo.file_size_max;
    }
    /* The node replays its log inside node_start, before the fs exists:
     * changes are forwarded to the fs once it does (the kernel has cached
     * nothing before the mount anyway). */
    a->mo->node.on_change = app_on_change;
    a->mo->node.on_change_data = a;
    rv = node_start(&a->loop, &a->mo->node, &a->node);
    if (rv != 0) {
        cli_log(
            &a->log, RAFT_TRACE_ERROR, "cannot start the node: %s",
            rv == -EBUSY ? "data dir in use by another node" : strerror(-rv));
        return 1;
    }
    start_http(a);
    /* Mount only once the local store has caught up with what the cluster
     * (or, alone, this node's own log) had committed: a read barrier. A
     * member of a multi-node cluster that cannot within
     * --catch-up-timeout-ms does not mount (startup_ready_cb) unless
     * --mount-stale; a brand-new cluster gives up after the proposal
     * timeout and mounts the local state as it is, saying so. */
    a->fo = fo;
    sdnotify_status(&a->sdn,
                    "catching up with the cluster before mounting (up to "
                    "%u ms)",
                    a->mo->node.catch_up_timeout_ms);
    if (node_startup_needs_cluster(a->node)) {
        cli_log(&a->log, RAFT_TRACE_INFO,
                "waiting up to %u ms to apply what the cluster has "
                "committed before mounting (--catch-up-timeout-ms)",
                a->mo->node.catch_up_timeout_ms);
    }
    rv = node_startup_barrier(a->node, startup_ready_cb, a);
    if (rv != 0) {
        startup_ready_cb(a, rv);
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);
    metrics_http_stop(a->http); /* after a failed start (else done) */
    a->http = NULL;
    if (a->startup_failed) {
        return 1;
    }
    fuseconn_watchdog_disarm(&a->wd); /* an orderly exit from here on */
    stop_notifier(a);
    fs_reader_stop(a->fs);
    /* Also after an external unmount: it frees what fuse_session_mount
     * allocated (a poll on the dead fd tells it not to unmount again). */
    fuse_session_unmount(a->se);
    fs_free(a->fs);
    fuse_session_destroy(a->se);
    uv_walk(&a->loop, close_handle, NULL);
    uv_run(&a->loop, UV_RUN_DEFAULT);
    uv_loop_close(&a->loop);
    return 0;
}

/* Without -f: fork; the parent waits until the child says the mount is
 * ready (exit 0) or the child fails (exit 1, its message already printed). */
static int daemonize(struct app* a)
{
    int p[2];
    if (pipe(p) != 0) {
        perror("quorumfs: pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("quorumfs: fork");
        return -1;
    }
    if (pid > 0) {
        char c = 0;
        close(p[1]);
        ssize_t r;
        do {
            r = read(p[0], &c, 1);
        } while (r < 0 && errno == EINTR);
        if (r == 1 && c == 'R') {
            exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        exit(1);
    }
    close(p[0]);
    setsid();
    a->ready_fd = p[1];
    return 0;
}

/* Before the node starts any thread (fork). Without it the start-up
 * clean-up of the next start still frees a hung mount. */
static void start_watchdog(struct app* a)
{
    char path[PATH_MAX + 32];
    if (getenv("QFS_NO_WATCHDOG") != NULL) {
        a->wd.fd = -1; /* test hook: the start-up clean-up alone */
        return;
    }
    util_datadir_path(path, sizeof(path), a->mo->node.data_dir,
                      DATADIR_NODE_LOG);
    int rv = fuseconn_watchdog_start(&a->wd, a->mo->foreground ? NULL : path);
    if (rv != 0) {
        cli_log(&a->log, RAFT_TRACE_WARN, "no watchdog (%s)", strerror(-rv));
    }
}

int mount_command(int argc, char** argv)
{
    static struct mount_opts mo;
    static struct app a;
    int rv = mount_parse(argc, argv, &mo);

    if (rv == 0) {
        rv = check_fuse_opts(mo.fuse_opts);
    }
    if (rv != 0) {
        return rv;
    }
    /* A mount left by a dead node of this data dir (kill -9) is aborted
     * and unmounted first; nothing may stat the mountpoint before. */
    if (fuseconn_clear_stale(mo.mountpoint, mo.node.data_dir) != 0 ||
        check_mountpoint(mo.mountpoint) != 0) {
        return 1;
    }
    a.mo = &mo;
    cli_log_init(&a.log, mo.node.log_level, STDERR_FILENO);
    a.ready_fd = -1;
    a.term_fd = -1;
    a.wd.fd = -1;
    sdnotify_init(&a.sdn, mo.foreground, &a.log);
    signal(SIGPIPE, SIG_IGN);
    if (!mo.foreground) {
        if (daemonize(&a) != 0) {
            return 1;
        }
        log_to_file(&a);
    }
    start_watchdog(&a);
    rv = run_node(&a);
    tls_config_free(mo.node.peer_tls);
    fuseconn_watchdog_disarm(&a.wd);
    if (rv != 0 && a.term_fd >= 0) {
        char path[PATH_MAX + 32];
        util_datadir_path(path, sizeof(path), mo.node.data_dir,
                          DATADIR_NODE_LOG);
        cli_log(&a.log, RAFT_TRACE_ERROR, "not mounted; the whole log is in %s",
                path);
    }
    terminal_done(&a);
    tell_parent(&a, 'F');
    return rv;
}
