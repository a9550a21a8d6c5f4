/* datadriven.c - sim scenarios written as data files (tests/sim/testdata),
 * in the style of etcd-io/raft's datadriven interaction tests.
 *
 *   sim_datadriven [--rewrite] [--trace] [--bug [--expect-failure]] FILE
 *
 * A file is a list of directives. Each is one command line, a line "----",
 * then the output the command is expected to print, ended by a blank line.
 * Lines starting with '#' and blank lines between directives are comments.
 * The runner executes the commands on one simulated cluster (sim.h; every
 * event and every update is checked by checker.c) and compares what each
 * command prints with the file: a mismatch is reported as a diff and the
 * run fails. `--rewrite` writes the actual output back into FILE instead.
 * A failed `expect`, a malformed command or a checker violation fails the
 * run even with --rewrite (nothing is written then).
 *
 * `--bug` plants the Figure-8 bug (bug_commit_old_term); with
 * `--expect-failure` the run passes only if the checker reports a safety
 * violation (election safety, log matching, leader completeness, state
 * machine safety). The command set is described in docs/raft.md,
 * "Writing a scenario".
 *
 * This file holds main, the reading and walking of the file, the output
 * and failure helpers and the running of the simulation; the
 * expressions are in dd_expr.c, the commands in dd_cmds.c (shared
 * declarations: dd_internal.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dd_internal.h"

struct dd g_dd;

static void xfail(const char* what) __attribute__((noreturn));

static void xfail(const char* what)
{
    fprintf(stderr, "sim_datadriven: %s\n", what);
    exit(1);
}

static void* xrealloc_or_die(void* p, size_t n)
{
    void* q = realloc(p, n);
    if (q == NULL) {
        xfail("out of memory");
    }
    return q;
}

void dd_die(const char* fmt, ...)
{
    struct dd* d = &g_dd;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%u: ", d->file, d->line);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (d->s != NULL) {
        const char* v = sim_failed(d->s);
        if (v != NULL) {
            fprintf(stderr, "checker: %s\n", v);
            sim_trace_dump(d->s, stderr, 40);
        }
    }
    exit(1);
}

void dd_outf(const char* fmt, ...)
{
    struct dd* d = &g_dd;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = d->out_cap - d->out_len;
        int n = vsnprintf(d->out + d->out_len, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            xfail("vsnprintf failed");
        }
        if ((size_t)n < room) {
            d->out_len += (size_t)n;
            return;
        }
        d->out_cap = 2 * d->out_cap + (size_t)n;
        d->out = xrealloc_or_die(d->out, d->out_cap);
    }
}

/* A checker violation ends the run: a failure, or with --expect-failure a
 * pass when it is one of the safety properties. */
void dd_check_violation(void)
{
    struct dd* d = &g_dd;
    const char* v = d->s != NULL ? sim_failed(d->s) : NULL;
    if (v == NULL) {
        return;
    }
    if (d->expect_failure) {
        static const char* const safety[] = {"election safety", "log matching",
                                             "leader completeness",
                                             "state machine safety"};
        for (size_t i = 0; i < sizeof safety / sizeof safety[0]; i++) {
            if (strstr(v, safety[i]) != NULL) {
                printf("%s:%u: checker caught the planted bug: %s\n", d->file,
                       d->line, v);
                exit(0);
            }
        }
    }
    dd_die("checker violation");
}

/* ---- running the simulation ---- */

static void fire_triggers(void)
{
    struct dd* d = &g_dd;
    for (unsigned i = 0; i < d->n_triggers; i++) {
        struct trigger* t = &d->triggers[i];
        if (!t->fired && dd_eval(t->cond) != 0) {
            t->fired = true;
            dd_outf("on %s: %s\n", t->cond, t->cmd);
            char cmd[LINE_MAX_LEN];
            snprintf(cmd, sizeof cmd, "%s", t->cmd);
            d->in_trigger = true;
            dd_run_command(cmd);
            d->in_trigger = false;
        }
    }
}

struct until {
    const char* cond; /* NULL: run for the whole time */
};

static bool until_pred(struct sim* s, void* arg)
{
    (void)s;
    const struct until* u = arg;
    fire_triggers();
    return u->cond != NULL && dd_eval(u->cond) != 0;
}

/* Run until cond holds (NULL: for max_ms). 0 when it held, -ETIMEDOUT. */
int dd_run(const char* cond, uint64_t max_ms)
{
    struct dd* d = &g_dd;
    struct sim* s = dd_need_sim();
    if (d->in_trigger) {
        dd_die("a triggered command cannot run the simulation");
    }
    struct until u = {cond};
    if (cond != NULL && until_pred(s, &u)) {
        return 0;
    }
    int rc = sim_run_until(s, until_pred, &u, max_ms);
    dd_check_violation();
    return rc;
}

static void state_line(raft_id id)
{
    struct sim* s = g_dd.s;
    struct raft* r = sim_raft(s, id);
    if (r == NULL) {
        dd_outf("n%" PRIu64 ": down\n", id);
        return;
    }
    raft_index last = sim_log_last(s, id);
    dd_outf("n%" PRIu64 ": %s term %" PRIu64, id, raft_role_name(raft_role(r)),
            raft_current_term(r));
    if (raft_leader(r) != 0) {
        dd_outf(" leader n%" PRIu64, raft_leader(r));
    } else {
        dd_outf(" no leader");
    }
    dd_outf(", log %" PRIu64 "..%" PRIu64 ", commit %" PRIu64
            ", applied %" PRIu64 "%s\n",
            raft_first_index(r), last, raft_commit_index(r), sim_applied(s, id),
            raft_catching_up(r) ? ", catching up"
            : raft_lost_vote(r) ? ", lost its vote"
                                : "");
}

void dd_state_lines(void)
{
    for (raft_id id = 1; id <= g_dd.n; id++) {
        state_line(id);
    }
}

uint64_t dd_fingerprint(void)
{
    struct sim* s = g_dd.s;
    uint64_t h = 0;
    for (raft_id id = 1; id <= g_dd.n; id++) {
        struct raft* r = sim_raft(s, id);
        uint64_t v[7] = {id, 0, 0, 0, 0, 0, 0};
        if (r != NULL) {
            v[1] = (uint64_t)raft_role(r);
            v[2] = raft_current_term(r);
            v[3] = raft_leader(r);
            v[4] = raft_commit_index(r);
            v[5] = sim_applied(s, id);
            v[6] = sim_log_last(s, id);
        }
        h = sim__hash(h, v, sizeof v);
    }
    return h;
}

/* ---- the file ---- */
struct text {
    char** line;
    unsigned n, cap;
};

static void text_add(struct text* t, const char* s, size_t len)
{
    if (t->n == t->cap) {
        t->cap = t->cap != 0 ? 2 * t->cap : 256;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of char* */
        t->line = xrealloc_or_die(t->line, t->cap * sizeof *t->line);
    }
    char* c = xrealloc_or_die(NULL, len + 1);
    memcpy(c, s, len);
    c[len] = '\0';
    t->line[t->n++] = c;
}

static void read_lines(const char* path, struct text* t)
{
    FILE* f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "sim_datadriven: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    char buf[LINE_MAX_LEN];
    while (fgets(buf, sizeof buf, f) != NULL) {
        size_t len = strlen(buf);
        if (len > 0 && buf[len - 1] == '\n') {
            len--;
        } else if (!feof(f)) {
            fprintf(stderr, "%s:%u: line too long\n", path, t->n + 1);
            exit(2);
        }
        text_add(t, buf, len);
    }
    fclose(f);
}

static void diff(unsigned line,
                 const char* cmd,
                 const char* want,
                 const char* got)
{
    fprintf(stderr,
            "%s:%u: output of '%s' differs:\n--- expected\n+++ actual\n",
            g_dd.file, line, cmd);
    /* line by line: unchanged lines once, changed ones as -/+ */
    const char *w = want, *g = got;
    while (*w != '\0' || *g != '\0') {
        size_t wl = strcspn(w, "\n"), gl = strcspn(g, "\n");
        if (*w != '\0' && *g != '\0' && wl == gl && memcmp(w, g, wl) == 0) {
            fprintf(stderr, " %.*s\n", (int)wl, w);
        } else {
            if (*w != '\0') {
                fprintf(stderr, "-%.*s\n", (int)wl, w);
            }
            if (*g != '\0') {
                fprintf(stderr, "+%.*s\n", (int)gl, g);
            }
        }
        w += wl + (w[wl] == '\n');
        g += gl + (g[gl] == '\n');
    }
}

static void text_free(struct text* t)
{
    for (unsigned i = 0; i < t->n; i++) {
        free(t->line[i]);
    }
    free((void*)t->line);
}

/* Run the directives of path (read into in); the file with the actual
 * outputs is built in res. Returns the exit code. */
static int walk(const char* path,
                bool rewrite,
                struct text* in,
                struct text* res)
{
    struct dd* d = &g_dd;
    read_lines(path, in);
    unsigned mismatches = 0, directives = 0;
    for (unsigned i = 0; i < in->n;) {
        const char* l = in->line[i];
        if (l[0] == '\0' || l[0] == '#') {
            text_add(res, l, strlen(l));
            i++;
            continue;
        }
        unsigned cmd_line = i;
        if (i + 1 >= in->n || strcmp(in->line[i + 1], "----") != 0) {
            fprintf(stderr, "%s:%u: '----' expected after the command\n", path,
                    i + 2);
            return 2;
        }
        size_t wl = 0;
        char* want = xrealloc_or_die(NULL, 1);
        want[0] = '\0';
        for (i += 2; i < in->n && in->line[i][0] != '\0'; i++) {
            size_t n = strlen(in->line[i]);
            want = xrealloc_or_die(want, wl + n + 2);
            memcpy(want + wl, in->line[i], n);
            wl += n;
            want[wl++] = '\n';
            want[wl] = '\0';
        }
        d->line = cmd_line + 1;
        d->out_len = 0;
        d->out[0] = '\0';
        char cmd[LINE_MAX_LEN];
        snprintf(cmd, sizeof cmd, "%s", in->line[cmd_line]);
        dd_run_command(cmd);
        directives++;
        if (strcmp(want, d->out) != 0) {
            mismatches++;
            if (!rewrite && !d->expect_failure) {
                diff(cmd_line + 1, in->line[cmd_line], want, d->out);
            }
        }
        free(want);
        text_add(res, in->line[cmd_line], strlen(in->line[cmd_line]));
        text_add(res, "----", 4);
        for (const char* o = d->out; *o != '\0';) {
            size_t n = strcspn(o, "\n");
            text_add(res, o, n);
            o += n + (o[n] == '\n');
        }
        /* the blank line that ends the directive */
        text_add(res, "", 0);
        i += i < in->n ? 1 : 0;
    }
    if (d->expect_failure) {
        fprintf(stderr, "%s: no safety violation caught with --bug\n", path);
        return 1;
    }
    if (rewrite) {
        FILE* f = fopen(path, "w");
        if (f == NULL) {
            fprintf(stderr, "sim_datadriven: %s: %s\n", path, strerror(errno));
            return 2;
        }
        unsigned n = res->n;
        while (n > 0 && res->line[n - 1][0] == '\0') {
            n--; /* no blank line at the end of the file */
        }
        for (unsigned i = 0; i < n; i++) {
            fprintf(f, "%s\n", res->line[i]);
        }
        if (fclose(f) != 0) {
            fprintf(stderr, "sim_datadriven: %s: write failed\n", path);
            return 2;
        }
        printf("%s: %u directives, %u rewritten\n", path, directives,
               mismatches);
        return 0;
    }
    if (mismatches != 0) {
        fprintf(stderr,
                "%s: %u of %u directives differ (--rewrite updates "
                "the file)\n",
                path, mismatches, directives);
        return 1;
    }
    printf("%s: %u directives ok\n", path, directives);
    return 0;
}

int main(int argc, char** argv)
{
    struct dd* d = &g_dd;
    bool rewrite = false;
    const char* path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rewrite") == 0) {
            rewrite = true;
        } else if (strcmp(argv[i], "--trace") == 0) {
            d->trace = true;
        } else if (strcmp(argv[i], "--bug") == 0) {
            d->bug = true;
        } else if (strcmp(argv[i], "--expect-failure") == 0) {
            d->expect_failure = true;
        } else if (path == NULL && argv[i][0] != '-') {
            path = argv[i];
        } else {
            path = NULL;
            break;
        }
    }
    if (path == NULL || (d->expect_failure && rewrite)) {
        fprintf(stderr,
                "usage: sim_datadriven [--rewrite] [--trace] "
                "[--bug [--expect-failure]] FILE\n");
        return 2;
    }
    d->file = path;
    d->out_cap = 4096;
    d->out = xrealloc_or_die(NULL, d->out_cap);
    struct text in = {0}, res = {0};
    int rc = walk(path, rewrite, &in, &res);
    text_free(&in);
    text_free(&res);
    free(d->out);
    if (d->s != NULL) {
        sim_free(d->s);
    }
    return rc;
}
