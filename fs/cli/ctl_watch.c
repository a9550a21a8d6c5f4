/* ctl_watch.c - `quorumfs watch [PATH] [--since REV] [--json]` and
 * `quorumfs watch PATH --exec CMD [--debounce MS]`, the client side of
 * the control socket's watch request (ctl.c, "Watchers"; docs/operations.md,
 * "Watch"). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../raft/util/datadir.h"
#include "ctl.h"
#include "ctl_internal.h"

enum {
    WATCH_LINE_MAX = 4 * 65537 + 128, /* two escaped paths and the rest */
    WATCH_RECONNECT_MS = 500,         /* --exec: retry a lost node */
    WATCH_CHILD_POLL_MS = 50,         /* --exec: a running CMD is checked */
};

struct watch_state {
    const struct ctl_watch_opts* o;
    int fd;
    char* buf; /* WATCH_LINE_MAX: the line being read */
    size_t len;
    uint64_t last_rev; /* last change seen (0: none) */
    uint64_t next_since;
    /* --exec */
    bool dirty; /* changes since CMD last started */
    uint64_t dirty_rev;
    char dirty_path[PATH_MAX];
    uint64_t deadline_ms;
    pid_t child;
    uint64_t child_rev;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Connect to the node and send the watch request; quiet: no message
 * when the node is not there (reconnecting). -1: failed. */
static int watch_connect(const struct ctl_watch_opts* o,
                         uint64_t since,
                         bool quiet)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char req[CTL_REQUEST_MAX];

    if (util_datadir_path(sa.sun_path, sizeof(sa.sun_path), o->dir,
                          DATADIR_CTL_SOCK) != 0) {
        fprintf(stderr, "quorumfs watch: data dir path too long\n");
        return -1;
    }
    int n =
        snprintf(req, sizeof(req), "watch\t%" PRIu64 "\t%s\n", since, o->tree);
    if (n < 0 || (size_t)n >= sizeof(req)) {
        fprintf(stderr, "quorumfs watch: PATH too long\n");
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr*)&sa, sizeof(sa)) != 0) {
        if (!quiet) {
            fprintf(stderr,
                    "quorumfs watch: no node running with data dir %s (%s: "
                    "%s)\n",
                    o->dir, sa.sun_path, strerror(errno));
        }
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (write(fd, req, (size_t)n) != n) {
        fprintf(stderr, "quorumfs watch: control socket: %s\n",
                strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* s with \\, \t, \n unescaped in place. */
static void unescape(char* s)
{
    char* d = s;
    for (; *s != '\0'; s++) {
        if (*s == '\\' && s[1] != '\0') {
            s++;
            char c = *s;
            if (c == 't') {
                c = '\t';
            } else if (c == 'n') {
                c = '\n';
            }
            *d++ = c;
        } else {
            *d++ = *s;
        }
    }
    *d = '\0';
}

static void print_event(const struct ctl_watch_opts* o,
                        uint64_t rev,
                        const char* op,
                        char* path,
                        char* path2)
{
    if (!o->json) {
        /* Paths stay escaped: one line per change whatever the names. */
        printf("%" PRIu64 " %s %s", rev, op, path);
        if (path2 != NULL) {
            printf(" %s %s", strcmp(op, "exchange") == 0 ? "<->" : "->", path2);
        }
        printf("\n");
        return;
    }
    unescape(path);
    printf("{\"revision\":%" PRIu64 ",\"op\":", rev);
    ctl__print_json_string(op);
    printf(",\"path\":");
    ctl__print_json_string(path);
    if (path2 != NULL) {
        unescape(path2);
        printf(",\"new_path\":");
        ctl__print_json_string(path2);
    }
    printf("}\n");
}

/* ---- --exec ---- */

static void exec_start(struct watch_state* w)
{
    const struct ctl_watch_opts* o = w->o;
    char rev[32];

    snprintf(rev, sizeof(rev), "%" PRIu64, w->dirty_rev);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "quorumfs watch: fork: %s (retrying)\n",
                strerror(errno));
        w->deadline_ms = now_ms() + o->debounce_ms;
        return;
    }
    if (pid == 0) {
        setenv("QUORUMFS_REVISION", rev, 1);
        setenv("QUORUMFS_PATH", w->dirty_path, 1);
        setenv("QUORUMFS_WATCH_PATH", o->tree, 1);
        execl("/bin/sh", "sh", "-c", o->exec, (char*)NULL);
        fprintf(stderr, "quorumfs watch: /bin/sh: %s\n", strerror(errno));
        _exit(127);
    }
    w->child = pid;
    w->child_rev = w->dirty_rev;
    w->dirty = false;
}

static void exec_reap(struct watch_state* w)
{
    int status;
    if (w->child == 0 || waitpid(w->child, &status, WNOHANG) != w->child) {
        return;
    }
    w->child = 0;
    if (WIFEXITED(status)) {
        fprintf(stderr,
                "quorumfs watch: revision %" PRIu64
                ": command exited with status %d\n",
                w->child_rev, WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        fprintf(stderr,
                "quorumfs watch: revision %" PRIu64
                ": command killed by signal %d\n",
                w->child_rev, WTERMSIG(status));
    }
}

/* A change under PATH: run CMD once they have settled. */
static void exec_note(struct watch_state* w, uint64_t rev, const char* path)
{
    w->dirty = true;
    w->dirty_rev = rev;
    snprintf(w->dirty_path, sizeof(w->dirty_path), "%s", path);
    unescape(w->dirty_path);
    w->deadline_ms = now_ms() + w->o->debounce_ms;
}

/* How long poll may sleep (-1: until the socket has something). */
static int exec_timeout(const struct watch_state* w)
{
    if (w->child != 0) {
        return WATCH_CHILD_POLL_MS;
    }
    if (!w->dirty) {
        return -1;
    }
    uint64_t now = now_ms();
    return w->deadline_ms > now ? (int)(w->deadline_ms - now) : 0;
}

static void exec_tick(struct watch_state* w)
{
    exec_reap(w);
    if (w->dirty && w->child == 0 && now_ms() >= w->deadline_ms) {
        exec_start(w);
    }
}

/* ---- the stream ---- */

enum line_result { LINE_OK, LINE_END, LINE_BEHIND };

/* One line from the node. LINE_END: an error was printed (exit 1). */
static enum line_result handle_line(struct watch_state* w, char* line)
{
    const struct ctl_watch_opts* o = w->o;

    if (strncmp(line, "ok ", 3) == 0) {
        return LINE_OK;
    }
    if (strncmp(line, "error: ", 7) == 0) {
        fprintf(stderr, "quorumfs watch: %s\n", line + 7);
        return LINE_END;
    }
    if (strncmp(line, "fell behind", 11) == 0) {
        if (o->exec == NULL) {
            fprintf(stderr, "quorumfs watch: %s\n", line);
        }
        char* p = strstr(line, "--since ");
        w->next_since = p != NULL ? strtoull(p + 8, NULL, 10) : 0;
        return LINE_BEHIND;
    }
    char* save = NULL;
    char* rev_s = strtok_r(line, "\t", &save);
    char* op = strtok_r(NULL, "\t", &save);
    char* path = strtok_r(NULL, "\t", &save);
    char* path2 = strtok_r(NULL, "\t", &save);
    if (rev_s == NULL || op == NULL || path == NULL) {
        fprintf(stderr, "quorumfs watch: malformed line from the node\n");
        return LINE_END;
    }
    uint64_t rev = strtoull(rev_s, NULL, 10);
    w->last_rev = rev;
    w->next_since = rev + 1;
    if (o->exec != NULL) {
        exec_note(w, rev, path);
    } else {
        print_event(o, rev, op, path, path2);
    }
    return LINE_OK;
}

/* Read what the node sent and handle its complete lines. 1: more to
 * come; 0: the node closed the stream; -1: stop (error printed);
 * 2: fell behind. */
static int read_lines(struct watch_state* w)
{
    ssize_t r = read(w->fd, w->buf + w->len, WATCH_LINE_MAX - 1 - w->len);
    if (r < 0 && errno == EINTR) {
        return 1;
    }
    if (r <= 0) {
        return 0;
    }
    w->len += (size_t)r;
    w->buf[w->len] = '\0';
    char* start = w->buf;
    char* nl;
    int rv = 1;
    while (rv == 1 && (nl = strchr(start, '\n')) != NULL) {
        *nl = '\0';
        enum line_result lr = handle_line(w, start);
        rv = lr == LINE_END ? -1 : lr == LINE_BEHIND ? 2 : 1;
        start = nl + 1;
    }
    w->len -= (size_t)(start - w->buf);
    memmove(w->buf, start, w->len);
    if (w->len >= WATCH_LINE_MAX - 1) {
        fprintf(stderr, "quorumfs watch: line too long from the node\n");
        return -1;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "quorumfs watch: stdout: %s\n", strerror(errno));
        return -1;
    }
    return rv;
}

/* The stream until it ends: the return value of read_lines. */
static int stream(struct watch_state* w)
{
    for (;;) {
        struct pollfd p = {.fd = w->fd, .events = POLLIN};
        int timeout = w->o->exec != NULL ? exec_timeout(w) : -1;
        int n = poll(&p, 1, timeout);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "quorumfs watch: poll: %s\n", strerror(errno));
            return -1;
        }
        if (n > 0) {
            int rv = read_lines(w);
            if (rv != 1) {
                return rv;
            }
        }
        if (w->o->exec != NULL) {
            exec_tick(w);
        }
    }
}

/* --exec: the node went away (or this watcher fell behind): wait for it
 * (running CMD meanwhile as due), then watch again from the next revision;
 * too old for the node's ring (it restarted): CMD runs once, and the
 * watch goes on from the node's next change. */
static int reconnect(struct watch_state* w)
{
    bool said = false;
    for (;;) {
        exec_tick(w);
        int fd = watch_connect(w->o, w->next_since, true);
        if (fd >= 0) {
            char line[1024];
            size_t got = 0;
            while (got + 1 < sizeof(line)) {
                ssize_t r = read(fd, line + got, 1);
                if (r <= 0 || line[got] == '\n') {
                    break;
                }
                got++;
            }
            line[got] = '\0';
            if (strncmp(line, "ok ", 3) == 0) {
                w->fd = fd;
                w->len = 0;
                fprintf(stderr, "quorumfs watch: watching again (%s)\n",
                        line + 3);
                return 0;
            }
            close(fd);
            if (strstr(line, "older than this node can replay") != NULL) {
                fprintf(stderr,
                        "quorumfs watch: %s; running the command and "
                        "watching from now\n",
                        line + 7);
                w->dirty = true;
                w->dirty_rev = w->next_since > 0 ? w->next_since - 1 : 0;
                w->deadline_ms = now_ms();
                w->next_since = 0;
                continue;
            }
        }
        if (!said) {
            fprintf(stderr,
                    "quorumfs watch: lost the node; retrying every %d ms "
                    "(from revision %" PRIu64 ")\n",
                    WATCH_RECONNECT_MS, w->next_since);
            said = true;
        }
        usleep(WATCH_RECONNECT_MS * 1000);
    }
}

int ctl__watch(const struct ctl_watch_opts* o)
{
    struct watch_state w = {.o = o, .next_since = o->since};
    int rv;

    signal(SIGPIPE, SIG_IGN);
    w.buf = malloc(WATCH_LINE_MAX);
    if (w.buf == NULL) {
        fprintf(stderr, "quorumfs watch: out of memory\n");
        return 1;
    }
    w.fd = watch_connect(o, o->since, false);
    if (w.fd < 0) {
        free(w.buf);
        return 1;
    }
    for (;;) {
        rv = stream(&w);
        close(w.fd);
        w.fd = -1;
        if (rv < 0 || o->exec == NULL) {
            break;
        }
        reconnect(&w);
    }
    free(w.buf);
    if (rv == 0) {
        fprintf(stderr,
                "quorumfs watch: the node closed the stream (stopped?); "
                "resume with --since %" PRIu64 "\n",
                w.next_since);
    }
    return 1;
}
