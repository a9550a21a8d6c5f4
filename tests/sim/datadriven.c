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
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_internal.h"

enum {
    STEP_MS = 10,
    WAIT_MS = 5000,
    STABILIZE_MAX_MS = 10000,
    LINE_MAX_LEN = 1024,
    TOKENS_MAX = 32,
    VARS_MAX = 64,
    NAME_MAX_LEN = 32,
    TRIGGERS_MAX = 16,
};

struct var {
    char name[NAME_MAX_LEN];
    int64_t val;
};

struct trigger {
    char cond[LINE_MAX_LEN];
    char cmd[LINE_MAX_LEN];
    bool fired;
};

struct dd {
    const char* file;
    unsigned line; /* of the command being run */
    bool trace, bug, expect_failure;
    struct sim* s;
    unsigned n; /* highest node id in use */
    struct var vars[VARS_MAX];
    unsigned n_vars;
    struct trigger triggers[TRIGGERS_MAX];
    unsigned n_triggers;
    bool in_trigger;
    int last_rc;        /* of the last transfer, conf-change, compact, ... */
    bool timed_out;     /* the last run-until timed out */
    uint64_t last_read; /* ctx of the last read-index */
    char* out;          /* output of the current command */
    size_t out_len, out_cap;
};

static struct dd g_dd;

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

static void die(const char* fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

static void die(const char* fmt, ...)
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

static void outf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

static void outf(const char* fmt, ...)
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
static void check_violation(void)
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
    die("checker violation");
}

/* ---- expressions ----
 * expr := cmp {("and"|"or") cmp}; cmp := sum [op sum];
 * sum := prod {("+"|"-") prod}; prod := unary {("*"|"/") unary};
 * unary := ["-"|"!"] primary;
 * primary := number | "(" expr ")" | name | name "(" expr {"," expr} ")" */
struct parser {
    const char* p;
    const char* src;
};

static void skip_ws(struct parser* ps)
{
    while (*ps->p == ' ' || *ps->p == '\t') {
        ps->p++;
    }
}

static bool eat(struct parser* ps, const char* tok)
{
    skip_ws(ps);
    size_t n = strlen(tok);
    if (strncmp(ps->p, tok, n) != 0) {
        return false;
    }
    /* a word must not run on into a longer name */
    if (isalpha((unsigned char)tok[0]) &&
        (isalnum((unsigned char)ps->p[n]) || ps->p[n] == '_')) {
        return false;
    }
    ps->p += n;
    return true;
}

static int64_t parse_expr(struct parser* ps);

static struct sim* need_sim(void)
{
    if (g_dd.s == NULL) {
        die("no cluster: run add-nodes first");
    }
    return g_dd.s;
}

static raft_id node_id(int64_t v)
{
    if (v < 1 || v > SIM_NODES_MAX) {
        die("no node %" PRId64, v);
    }
    return (raft_id)v;
}

static struct raft* live(raft_id id)
{
    return sim_raft(need_sim(), id);
}

static int64_t fn_agree(raft_id a, raft_id b)
{
    struct sim* s = need_sim();
    if (sim_applied(s, a) != sim_applied(s, b) ||
        sim_sm_hash(s, a) != sim_sm_hash(s, b)) {
        return 0;
    }
    /* entry terms, where both logs still hold the entry (0: compacted) */
    for (raft_index i = 1; i <= sim_applied(s, b); i++) {
        raft_term ta = sim_log_term(s, a, i), tb = sim_log_term(s, b, i);
        if (ta != 0 && tb != 0 && ta != tb) {
            return 0;
        }
    }
    return 1;
}

static int64_t call(struct parser* ps,
                    const char* name,
                    const int64_t* a,
                    unsigned n)
{
    struct sim* s = need_sim();
    static const struct {
        const char* name;
        unsigned args;
    } arity[] = {
        {"term", 1},        {"commit", 1},      {"applied", 1},
        {"last", 1},        {"first", 1},       {"role", 1},
        {"leader_of", 1},   {"alive", 1},       {"hash", 1},
        {"log_term", 2},    {"catching_up", 1}, {"match", 2},
        {"recent", 2},      {"member", 2},      {"index", 1},
        {"served", 1},      {"read_err", 1},    {"sent", 2},
        {"agree", 2},       {"converged", 1},   {"other", 0},
        {"snap_starts", 2},
    };
    for (size_t i = 0; i < sizeof arity / sizeof arity[0]; i++) {
        if (strcmp(arity[i].name, name) == 0) {
            if (arity[i].args != n && arity[i].args != 0) {
                die("%s() takes %u arguments: %s", name, arity[i].args,
                    ps->src);
            }
            goto known;
        }
    }
    die("unknown function %s(): %s", name, ps->src);
known:;
    struct raft* r = NULL;
    if (strcmp(name, "index") != 0 && strcmp(name, "served") != 0 &&
        strcmp(name, "read_err") != 0 && strcmp(name, "other") != 0 &&
        strcmp(name, "converged") != 0) {
        r = live(node_id(a[0]));
    }
    if (strcmp(name, "term") == 0) {
        return r != NULL ? (int64_t)raft_current_term(r) : 0;
    }
    if (strcmp(name, "commit") == 0) {
        return r != NULL ? (int64_t)raft_commit_index(r) : 0;
    }
    if (strcmp(name, "applied") == 0) {
        return (int64_t)sim_applied(s, node_id(a[0]));
    }
    if (strcmp(name, "last") == 0) {
        return (int64_t)sim_log_last(s, node_id(a[0]));
    }
    if (strcmp(name, "first") == 0) {
        return r != NULL ? (int64_t)raft_first_index(r) : 0;
    }
    if (strcmp(name, "role") == 0) {
        return r != NULL ? raft_role(r) : 0;
    }
    if (strcmp(name, "leader_of") == 0) {
        return r != NULL ? (int64_t)raft_leader(r) : 0;
    }
    if (strcmp(name, "alive") == 0) {
        return sim_alive(s, node_id(a[0]));
    }
    if (strcmp(name, "hash") == 0) {
        return (int64_t)sim_sm_hash(s, node_id(a[0]));
    }
    if (strcmp(name, "log_term") == 0) {
        return (int64_t)sim_log_term(s, node_id(a[0]), (raft_index)a[1]);
    }
    if (strcmp(name, "catching_up") == 0) {
        return r != NULL && raft_catching_up(r);
    }
    if (strcmp(name, "match") == 0 || strcmp(name, "recent") == 0) {
        raft_index match = 0;
        bool recent = false;
        if (r == NULL ||
            raft_peer_progress(r, node_id(a[1]), &match, &recent) != 0) {
            return -1;
        }
        return name[0] == 'm' ? (int64_t)match : recent;
    }
    if (strcmp(name, "member") == 0) {
        const struct raft_server* sv =
            r != NULL ? raft_conf_get(raft_conf_current(r), node_id(a[1]))
                      : NULL;
        return sv != NULL ? sv->role : 0;
    }
    if (strcmp(name, "index") == 0) {
        return (int64_t)sim_value_index(s, (uint64_t)a[0]);
    }
    if (strcmp(name, "served") == 0 || strcmp(name, "read_err") == 0) {
        raft_index served = 0;
        int rc = sim_read_result(s, (uint64_t)a[0], &served);
        return name[0] == 's' ? (int64_t)served : rc;
    }
    if (strcmp(name, "sent") == 0) {
        return (int64_t)sim_sent(s, node_id(a[0]), node_id(a[1]));
    }
    if (strcmp(name, "snap_starts") == 0) {
        return (int64_t)sim_snap_starts(s, node_id(a[0]), node_id(a[1]));
    }
    if (strcmp(name, "other") == 0) {
        /* the lowest node id not among the arguments */
        for (raft_id i = 1; i <= g_dd.n; i++) {
            bool listed = false;
            for (unsigned k = 0; k < n; k++) {
                listed |= (int64_t)i == a[k];
            }
            if (!listed) {
                return (int64_t)i;
            }
        }
        return 0;
    }
    if (strcmp(name, "converged") == 0) {
        raft_id l = sim_stable_leader(s);
        return l != 0 && sim_converged(s, l, (raft_index)a[0]);
    }
    return fn_agree(node_id(a[0]), node_id(a[1])); /* agree */
}

static int64_t name_value(struct parser* ps, const char* name)
{
    static const struct {
        const char* name;
        int64_t val;
    } consts[] = {
        {"DOWN", 0},
        {"FOLLOWER", RAFT_FOLLOWER},
        {"PRECANDIDATE", RAFT_PRECANDIDATE},
        {"CANDIDATE", RAFT_CANDIDATE},
        {"LEADER", RAFT_LEADER},
        {"VOTER", RAFT_VOTER},
        {"LEARNER", RAFT_LEARNER},
        {"TIMEDOUT", -ETIMEDOUT},
    };
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++) {
        if (strcmp(consts[i].name, name) == 0) {
            return consts[i].val;
        }
    }
    for (unsigned i = 0; i < g_dd.n_vars; i++) {
        if (strcmp(g_dd.vars[i].name, name) == 0) {
            return g_dd.vars[i].val;
        }
    }
    if (strcmp(name, "leader") == 0) {
        return (int64_t)sim_leader(need_sim());
    }
    if (strcmp(name, "stable_leader") == 0) {
        return (int64_t)sim_stable_leader(need_sim());
    }
    if (strcmp(name, "now") == 0) {
        return (int64_t)sim_now(need_sim());
    }
    if (strcmp(name, "installs") == 0) {
        return (int64_t)sim_installs(need_sim());
    }
    if (strcmp(name, "last_value") == 0) {
        return (int64_t)need_sim()->next_value - 1;
    }
    if (strcmp(name, "last_read") == 0) {
        return (int64_t)g_dd.last_read;
    }
    if (strcmp(name, "rc") == 0) {
        return g_dd.last_rc;
    }
    if (strcmp(name, "timed_out") == 0) {
        return g_dd.timed_out;
    }
    die("unknown name %s: %s", name, ps->src);
    return 0;
}

static int64_t parse_primary(struct parser* ps)
{
    skip_ws(ps);
    if (eat(ps, "(")) {
        int64_t v = parse_expr(ps);
        if (!eat(ps, ")")) {
            die("missing ')': %s", ps->src);
        }
        return v;
    }
    if (isdigit((unsigned char)*ps->p)) {
        char* end;
        int64_t v = (int64_t)strtoll(ps->p, &end, 10);
        ps->p = end;
        return v;
    }
    if (!isalpha((unsigned char)*ps->p) && *ps->p != '_') {
        die("expression expected at '%s': %s", ps->p, ps->src);
    }
    char name[NAME_MAX_LEN];
    size_t n = 0;
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_') {
        if (n + 1 >= sizeof name) {
            die("name too long: %s", ps->src);
        }
        name[n++] = *ps->p++;
    }
    name[n] = '\0';
    if (!eat(ps, "(")) {
        return name_value(ps, name);
    }
    int64_t args[4];
    unsigned na = 0;
    if (!eat(ps, ")")) {
        do {
            if (na == 4) {
                die("too many arguments: %s", ps->src);
            }
            args[na++] = parse_expr(ps);
        } while (eat(ps, ","));
        if (!eat(ps, ")")) {
            die("missing ')': %s", ps->src);
        }
    }
    return call(ps, name, args, na);
}

static int64_t parse_unary(struct parser* ps)
{
    if (eat(ps, "-")) {
        return -parse_unary(ps);
    }
    if (eat(ps, "!")) {
        return !parse_unary(ps);
    }
    return parse_primary(ps);
}

static int64_t parse_prod(struct parser* ps)
{
    int64_t v = parse_unary(ps);
    for (;;) {
        if (eat(ps, "*")) {
            v *= parse_unary(ps);
        } else if (eat(ps, "/")) {
            int64_t d = parse_unary(ps);
            if (d == 0) {
                die("division by zero: %s", ps->src);
            }
            v /= d;
        } else {
            return v;
        }
    }
}

static int64_t parse_sum(struct parser* ps)
{
    int64_t v = parse_prod(ps);
    for (;;) {
        if (eat(ps, "+")) {
            v += parse_prod(ps);
        } else if (eat(ps, "-")) {
            v -= parse_prod(ps);
        } else {
            return v;
        }
    }
}

static int64_t parse_cmp(struct parser* ps)
{
    int64_t a = parse_sum(ps);
    if (eat(ps, "==")) {
        return a == parse_sum(ps);
    }
    if (eat(ps, "!=")) {
        return a != parse_sum(ps);
    }
    if (eat(ps, "<=")) {
        return a <= parse_sum(ps);
    }
    if (eat(ps, ">=")) {
        return a >= parse_sum(ps);
    }
    if (eat(ps, "<")) {
        return a < parse_sum(ps);
    }
    if (eat(ps, ">")) {
        return a > parse_sum(ps);
    }
    return a;
}

static int64_t parse_expr(struct parser* ps)
{
    int64_t v = parse_cmp(ps);
    for (;;) {
        if (eat(ps, "and")) {
            int64_t w = parse_cmp(ps); /* always evaluated: no side effects */
            v = v && w;
        } else if (eat(ps, "or")) {
            int64_t w = parse_cmp(ps);
            v = v || w;
        } else {
            return v;
        }
    }
}

static int64_t eval(const char* src)
{
    struct parser ps = {src, src};
    int64_t v = parse_expr(&ps);
    skip_ws(&ps);
    if (*ps.p != '\0') {
        die("trailing text '%s' in expression: %s", ps.p, src);
    }
    return v;
}

/* ---- running the simulation ---- */
static void run_command(char* line);

static void fire_triggers(void)
{
    struct dd* d = &g_dd;
    for (unsigned i = 0; i < d->n_triggers; i++) {
        struct trigger* t = &d->triggers[i];
        if (!t->fired && eval(t->cond) != 0) {
            t->fired = true;
            outf("on %s: %s\n", t->cond, t->cmd);
            char cmd[LINE_MAX_LEN];
            snprintf(cmd, sizeof cmd, "%s", t->cmd);
            d->in_trigger = true;
            run_command(cmd);
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
    return u->cond != NULL && eval(u->cond) != 0;
}

/* Run until cond holds (NULL: for max_ms). 0 when it held, -ETIMEDOUT. */
static int run(const char* cond, uint64_t max_ms)
{
    struct dd* d = &g_dd;
    struct sim* s = need_sim();
    if (d->in_trigger) {
        die("a triggered command cannot run the simulation");
    }
    struct until u = {cond};
    if (cond != NULL && until_pred(s, &u)) {
        return 0;
    }
    int rc = sim_run_until(s, until_pred, &u, max_ms);
    check_violation();
    return rc;
}

static void state_line(raft_id id)
{
    struct sim* s = g_dd.s;
    struct raft* r = sim_raft(s, id);
    if (r == NULL) {
        outf("n%" PRIu64 ": down\n", id);
        return;
    }
    raft_index last = sim_log_last(s, id);
    outf("n%" PRIu64 ": %s term %" PRIu64, id, raft_role_name(raft_role(r)),
         raft_current_term(r));
    if (raft_leader(r) != 0) {
        outf(" leader n%" PRIu64, raft_leader(r));
    } else {
        outf(" no leader");
    }
    outf(", log %" PRIu64 "..%" PRIu64 ", commit %" PRIu64 ", applied %" PRIu64
         "%s\n",
         raft_first_index(r), last, raft_commit_index(r), sim_applied(s, id),
         raft_catching_up(r) ? ", catching up" : "");
}

static void state_lines(void)
{
    for (raft_id id = 1; id <= g_dd.n; id++) {
        state_line(id);
    }
}

static uint64_t fingerprint(void)
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

/* ---- commands ---- */
struct args {
    char* tok[TOKENS_MAX];
    unsigned n;
};

static const char* opt(struct args* a, const char* key, const char* def)
{
    size_t k = strlen(key);
    for (unsigned i = 1; i < a->n; i++) {
        if (strncmp(a->tok[i], key, k) == 0 && a->tok[i][k] == '=') {
            const char* v = a->tok[i] + k + 1;
            /* consumed: drop it from the positional arguments */
            memmove(&a->tok[i], &a->tok[i + 1],
                    (a->n - i - 1) * sizeof a->tok[0]);
            a->n--;
            return v;
        }
    }
    return def;
}

static int64_t opt_num(struct args* a, const char* key, int64_t def)
{
    const char* v = opt(a, key, NULL);
    return v != NULL ? eval(v) : def;
}

static bool opt_bool(struct args* a, const char* key, bool def)
{
    const char* v = opt(a, key, NULL);
    if (v == NULL) {
        return def;
    }
    if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0) {
        return true;
    }
    if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0) {
        return false;
    }
    die("%s=%s: on or off expected", key, v);
    return def;
}

static void want_args(const struct args* a, unsigned min, unsigned max)
{
    if (a->n - 1 < min || a->n - 1 > max) {
        die("%s: %u to %u arguments expected", a->tok[0], min, max);
    }
}

static raft_id arg_node(const struct args* a, unsigned i)
{
    raft_id id = node_id(eval(a->tok[i]));
    if (id > g_dd.n) {
        die("%s: no node n%" PRIu64, a->tok[0], id);
    }
    return id;
}

static raft_id arg_live(const struct args* a, unsigned i)
{
    raft_id id = arg_node(a, i);
    if (!sim_alive(g_dd.s, id)) {
        die("%s: n%" PRIu64 " is down", a->tok[0], id);
    }
    return id;
}

static void out_rc(int rc)
{
    g_dd.last_rc = rc;
    if (rc == 0) {
        outf("ok\n");
    } else {
        outf("error: %s\n", raft_errname(rc));
    }
}

static int msg_type(const char* name)
{
    if (strcmp(name, "any") == 0) {
        return 0;
    }
    for (int t = 1; t <= RAFT_MSG_TYPE_MAX; t++) {
        if (strcmp(raft_msg_type_name(t), name) == 0) {
            return t;
        }
    }
    die("unknown message type %s", name);
    return 0;
}

static void cmd_add_nodes(struct args* a)
{
    struct dd* d = &g_dd;
    if (d->s != NULL) {
        die("add-nodes: the cluster exists already");
    }
    struct sim_config c;
    sim_config_default(&c, (uint64_t)opt_num(a, "seed", 42));
    c.pre_vote = opt_bool(a, "pre-vote", c.pre_vote);
    c.check_quorum = opt_bool(a, "check-quorum", c.check_quorum);
    c.compact_every = (unsigned)opt_num(a, "compact-every", c.compact_every);
    c.heartbeat_ms = (unsigned)opt_num(a, "heartbeat", c.heartbeat_ms);
    c.election_ms = (unsigned)opt_num(a, "election", c.election_ms);
    want_args(a, 1, 1);
    int64_t n = eval(a->tok[1]);
    if (n < 1 || n > 5) {
        die("add-nodes: 1 to 5 voters");
    }
    c.n_voters = (unsigned)n;
    c.bug_commit_old_term = d->bug;
    c.trace = true;
    c.trace_out = d->trace ? stdout : NULL;
    d->s = sim_new(&c);
    d->n = c.n_voters;
    outf("%u voters, seed %" PRIu64 ", pre-vote %s, check-quorum %s\n",
         c.n_voters, c.seed, c.pre_vote ? "on" : "off",
         c.check_quorum ? "on" : "off");
}

/* n's vote requests are the only ones delivered until n leads. */
static void campaign_filters(raft_id n, bool on)
{
    for (raft_id a = 1; a <= g_dd.n; a++) {
        for (raft_id b = 1; b <= g_dd.n; b++) {
            if (a != b && a != n) {
                sim_filter(g_dd.s, a, b, RAFT_MSG_VOTE, on);
                sim_filter(g_dd.s, a, b, RAFT_MSG_PREVOTE, on);
            }
        }
    }
}

static void cmd_campaign(struct args* a)
{
    int64_t max = opt_num(a, "max", WAIT_MS);
    want_args(a, 1, 1);
    raft_id id = arg_live(a, 1);
    char cond[64];
    snprintf(cond, sizeof cond, "role(%" PRIu64 ") == LEADER", id);
    campaign_filters(id, true);
    int rc = run(cond, (uint64_t)max);
    campaign_filters(id, false);
    if (rc == 0) {
        outf("n%" PRIu64 " leads term %" PRIu64 "\n", id,
             raft_current_term(sim_raft(g_dd.s, id)));
    } else {
        outf("n%" PRIu64 " not elected after %" PRId64 " ms\n", id, max);
    }
}

static void cmd_stabilize(struct args* a)
{
    struct sim* s = need_sim();
    int64_t max = opt_num(a, "max", STABILIZE_MAX_MS);
    want_args(a, 0, 0);
    uint64_t quiet_ms = 3 * (uint64_t)s->cfg.election_ms;
    uint64_t start = sim_now(s), since = start, fp = fingerprint();
    while (sim_now(s) - since < quiet_ms) {
        if (sim_now(s) - start >= (uint64_t)max) {
            outf("not quiet after %" PRId64 " ms\n", max);
            break;
        }
        run(NULL, STEP_MS);
        uint64_t f = fingerprint();
        if (f != fp) {
            fp = f;
            since = sim_now(s);
        }
    }
    state_lines();
}

static void cmd_propose(struct args* a)
{
    struct sim* s = need_sim();
    int64_t count = opt_num(a, "count", 1);
    int64_t pace = opt_num(a, "pace", 0);
    const char* err = opt(a, "error", "fail");
    bool may_fail = strcmp(err, "ok") == 0;
    bool wait = false;
    if (a->n >= 3 && strcmp(a->tok[a->n - 1], "wait") == 0) {
        wait = true;
        a->n--;
    }
    want_args(a, 1, 1);
    raft_id id = arg_live(a, 1);
    uint64_t first = 0, v = 0;
    for (int64_t i = 0; i < count; i++) {
        int rc = sim_propose(s, id, &v);
        check_violation();
        g_dd.last_rc = rc;
        if (rc != 0 && may_fail) {
            outf("error: %s\n", raft_errname(rc));
            return;
        }
        if (rc != 0) {
            die("propose: %s at n%" PRIu64 " (error=ok allows it)",
                raft_errname(rc), id);
        }
        first = i == 0 ? v : first;
        if (pace > 0 && i % pace == 0) {
            run(NULL, 1);
        }
    }
    if (count == 1) {
        outf("value %" PRIu64, v);
    } else {
        outf("values %" PRIu64 "..%" PRIu64, first, v);
    }
    if (!wait) {
        outf(" proposed at n%" PRIu64 "\n", id);
        return;
    }
    /* committed somewhere and applied on the proposing node */
    char cond[128];
    snprintf(cond, sizeof cond,
             "index(%" PRIu64 ") != 0 and applied(%" PRIu64
             ") >= index(%" PRIu64 ")",
             v, id, v);
    if (run(cond, WAIT_MS) == 0) {
        outf(" applied at %" PRIu64 "\n", sim_value_index(s, v));
    } else {
        die("propose: value %" PRIu64 " not applied on n%" PRIu64
            " after %d ms",
            v, id, WAIT_MS);
    }
}

static void cmd_log(struct args* a)
{
    want_args(a, 1, 1);
    raft_id id = arg_node(a, 1);
    const struct sim_log* l = &g_dd.s->nodes[id].shadow;
    static const char* const types[] = {"?", "normal", "noop", "conf"};
    outf("n%" PRIu64 " log %" PRIu64 "..%" PRIu64 "\n", id, l->base + 1,
         l->base + l->n);
    for (unsigned i = 0; i < l->n;) {
        unsigned j = i;
        while (j + 1 < l->n && l->e[j + 1].term == l->e[i].term &&
               l->e[j + 1].type == l->e[i].type) {
            j++;
        }
        unsigned t = l->e[i].type <= 3 ? l->e[i].type : 0;
        outf("  %" PRIu64 "..%" PRIu64 " term %" PRIu64 " %s\n",
             l->base + 1 + i, l->base + 1 + j, l->e[i].term, types[t]);
        i = j + 1;
    }
}

static void cmd_partition(struct args* a)
{
    /* partition A B | C D | ...: links across groups are cut */
    int group[SIM_NODES_MAX + 1] = {0};
    int g = 1;
    for (unsigned i = 1; i < a->n; i++) {
        if (strcmp(a->tok[i], "|") == 0) {
            g++;
        } else {
            group[arg_node(a, i)] = g;
        }
    }
    for (raft_id x = 1; x <= g_dd.n; x++) {
        for (raft_id y = 1; y <= g_dd.n; y++) {
            if (x != y) {
                sim_block(g_dd.s, x, y, group[x] != group[y]);
            }
        }
    }
    outf("ok\n");
}

static void cmd_filter(struct args* a)
{
    want_args(a, 4, 4);
    bool on = strcmp(a->tok[4], "on") == 0;
    if (!on && strcmp(a->tok[4], "off") != 0) {
        die("filter: on or off expected");
    }
    int type = msg_type(a->tok[3]);
    raft_id from_lo = 1, from_hi = g_dd.n, to_lo = 1, to_hi = g_dd.n;
    if (strcmp(a->tok[1], "*") != 0) {
        from_lo = from_hi = arg_node(a, 1);
    }
    if (strcmp(a->tok[2], "*") != 0) {
        to_lo = to_hi = arg_node(a, 2);
    }
    for (raft_id f = from_lo; f <= from_hi; f++) {
        for (raft_id t = to_lo; t <= to_hi; t++) {
            if (f != t) {
                sim_filter(g_dd.s, f, t, type, on);
            }
        }
    }
    outf("ok\n");
}

static void cmd_let(struct args* a, const char* rest)
{
    struct dd* d = &g_dd;
    const char* eq = strchr(rest, '=');
    if (a->n < 2 || eq == NULL) {
        die("let: NAME = EXPR expected");
    }
    const char* name = a->tok[1];
    size_t len = strcspn(name, " =");
    if (len == 0 || len >= NAME_MAX_LEN) {
        die("let: bad name");
    }
    int64_t v = eval(eq + 1);
    struct var* slot = NULL;
    for (unsigned i = 0; i < d->n_vars; i++) {
        if (strncmp(d->vars[i].name, name, len) == 0 &&
            d->vars[i].name[len] == '\0') {
            slot = &d->vars[i];
        }
    }
    if (slot == NULL) {
        if (d->n_vars == VARS_MAX) {
            die("let: too many names");
        }
        slot = &d->vars[d->n_vars++];
        memcpy(slot->name, name, len);
        slot->name[len] = '\0';
    }
    slot->val = v;
    outf("%s = %" PRId64 "\n", slot->name, v);
}

static void cmd_on(const char* rest)
{
    struct dd* d = &g_dd;
    const char* colon = strchr(rest, ':');
    if (colon == NULL || d->n_triggers == TRIGGERS_MAX) {
        die("on: COND: COMMAND expected (at most %d)", TRIGGERS_MAX);
    }
    struct trigger* t = &d->triggers[d->n_triggers++];
    size_t len = (size_t)(colon - rest);
    if (len >= sizeof t->cond) {
        die("on: condition too long");
    }
    while (len > 0 && rest[len - 1] == ' ') {
        len--;
    }
    memcpy(t->cond, rest, len);
    t->cond[len] = '\0';
    const char* cmd = colon + 1;
    while (*cmd == ' ') {
        cmd++;
    }
    snprintf(t->cmd, sizeof t->cmd, "%s", cmd);
    t->fired = false;
    outf("ok\n");
}

/* Split off a trailing max=MS from an expression line. */
static uint64_t take_max(char* rest, uint64_t def)
{
    char* m = strstr(rest, " max=");
    if (m == NULL) {
        return def;
    }
    *m = '\0';
    return (uint64_t)eval(m + 5);
}

/* Remove a trailing flag word from an expression line. */
static bool take_flag(char* rest, const char* flag)
{
    char* m = strstr(rest, flag);
    if (m == NULL) {
        return false;
    }
    memmove(m, m + strlen(flag), strlen(m + strlen(flag)) + 1);
    return true;
}

/* Run each ';'-separated command of body. */
static void run_body(const char* body)
{
    char buf[LINE_MAX_LEN];
    snprintf(buf, sizeof buf, "%s", body);
    char* p = buf;
    for (;;) {
        char* semi = strchr(p, ';');
        if (semi != NULL) {
            *semi = '\0';
        }
        while (*p == ' ') {
            p++;
        }
        char one[LINE_MAX_LEN];
        snprintf(one, sizeof one, "%s", p);
        run_command(one);
        if (semi == NULL) {
            return;
        }
        p = semi + 1;
    }
}

static void cmd_if_repeat(bool is_if, const char* rest)
{
    const char* colon = strchr(rest, ':');
    if (colon == NULL) {
        die("%s: COND/COUNT: COMMAND expected", is_if ? "if" : "repeat");
    }
    char head[LINE_MAX_LEN];
    snprintf(head, sizeof head, "%.*s", (int)(colon - rest), rest);
    int64_t v = eval(head);
    if (is_if && v == 0) {
        outf("skipped\n");
    }
    for (int64_t i = 0; i < (is_if ? (v != 0) : v); i++) {
        run_body(colon + 1);
    }
}

static void run_command(char* line)
{
    struct dd* d = &g_dd;
    char copy[LINE_MAX_LEN];
    snprintf(copy, sizeof copy, "%s", line);
    struct args a = {.n = 0};
    for (char* t = strtok(line, " \t"); t != NULL; t = strtok(NULL, " \t")) {
        if (a.n == TOKENS_MAX) {
            die("too many arguments");
        }
        a.tok[a.n++] = t;
    }
    if (a.n == 0) {
        die("empty command");
    }
    const char* cmd = a.tok[0];
    /* the rest of the line after the command word, for expressions */
    char* rest = copy + strlen(cmd);
    while (*rest == ' ' || *rest == '\t') {
        rest++;
    }
    if (strcmp(cmd, "add-nodes") == 0) {
        cmd_add_nodes(&a);
        return;
    }
    struct sim* s = need_sim();
    if (strcmp(cmd, "campaign") == 0) {
        cmd_campaign(&a);
    } else if (strcmp(cmd, "stabilize") == 0) {
        cmd_stabilize(&a);
    } else if (strcmp(cmd, "tick") == 0) {
        want_args(&a, 1, 1);
        run(NULL, (uint64_t)eval(a.tok[1]));
        outf("ok\n");
    } else if (strcmp(cmd, "run-until") == 0) {
        bool may_time_out = take_flag(rest, " timeout=ok");
        uint64_t max = take_max(rest, WAIT_MS);
        uint64_t t0 = sim_now(s);
        d->timed_out = run(rest, max) != 0;
        if (!d->timed_out) {
            outf("ok\n");
        } else if (may_time_out) {
            outf("timeout after %" PRIu64 " ms\n", sim_now(s) - t0);
        } else {
            die("run-until: timeout after %" PRIu64 " ms: %s", max, rest);
        }
    } else if (strcmp(cmd, "status") == 0) {
        want_args(&a, 0, 0);
        state_lines();
    } else if (strcmp(cmd, "log") == 0) {
        cmd_log(&a);
    } else if (strcmp(cmd, "propose") == 0) {
        cmd_propose(&a);
    } else if (strcmp(cmd, "isolate") == 0) {
        want_args(&a, 1, TOKENS_MAX);
        for (unsigned i = 1; i < a.n; i++) {
            sim_isolate(s, arg_node(&a, i));
        }
        outf("ok\n");
    } else if (strcmp(cmd, "partition") == 0) {
        cmd_partition(&a);
    } else if (strcmp(cmd, "heal") == 0) {
        want_args(&a, 0, 0);
        sim_heal(s);
        outf("ok\n");
    } else if (strcmp(cmd, "connect") == 0 || strcmp(cmd, "disconnect") == 0) {
        want_args(&a, 2, 2);
        bool cut = cmd[0] == 'd';
        raft_id x = arg_node(&a, 1), y = arg_node(&a, 2);
        sim_block(s, x, y, cut);
        sim_block(s, y, x, cut);
        outf("ok\n");
    } else if (strcmp(cmd, "block") == 0 || strcmp(cmd, "unblock") == 0) {
        want_args(&a, 2, 2);
        sim_block(s, arg_node(&a, 1), arg_node(&a, 2), cmd[0] == 'b');
        outf("ok\n");
    } else if (strcmp(cmd, "filter") == 0) {
        cmd_filter(&a);
    } else if (strcmp(cmd, "crash") == 0) {
        want_args(&a, 1, 1);
        sim_crash(s, arg_live(&a, 1));
        outf("ok\n");
    } else if (strcmp(cmd, "restart") == 0) {
        want_args(&a, 1, 1);
        raft_id id = arg_node(&a, 1);
        if (sim_alive(s, id)) {
            die("restart: n%" PRIu64 " is up", id);
        }
        sim_restart(s, id);
        outf("ok\n");
    } else if (strcmp(cmd, "wipe") == 0) {
        want_args(&a, 1, 1);
        sim_wipe(s, arg_node(&a, 1));
        outf("ok\n");
    } else if (strcmp(cmd, "tear") == 0) {
        want_args(&a, 2, 2);
        sim_tear_tail(s, arg_node(&a, 1), (unsigned)eval(a.tok[2]));
        outf("ok\n");
    } else if (strcmp(cmd, "start") == 0) {
        want_args(&a, 1, 1);
        raft_id id = node_id(eval(a.tok[1]));
        if (id <= d->n && sim_alive(s, id)) {
            die("start: n%" PRIu64 " is up", id);
        }
        d->n = id > d->n ? id : d->n;
        sim_start_fresh(s, id);
        outf("ok\n");
    } else if (strcmp(cmd, "compact") == 0) {
        raft_index keep = (raft_index)opt_num(&a, "keep-from", 0);
        want_args(&a, 1, 1);
        out_rc(sim_compact(s, arg_live(&a, 1), keep));
    } else if (strcmp(cmd, "transfer") == 0) {
        want_args(&a, 2, 2);
        out_rc(sim_transfer(s, arg_live(&a, 1), arg_node(&a, 2)));
    } else if (strcmp(cmd, "conf-change") == 0) {
        want_args(&a, 3, 3);
        int op = strcmp(a.tok[2], "add-learner") == 0 ? RAFT_CONF_ADD_LEARNER
                 : strcmp(a.tok[2], "promote") == 0   ? RAFT_CONF_PROMOTE
                 : strcmp(a.tok[2], "remove") == 0    ? RAFT_CONF_REMOVE
                                                      : 0;
        if (op == 0) {
            die("conf-change: add-learner, promote or remove expected");
        }
        out_rc(sim_conf_change(s, arg_live(&a, 1), op, arg_node(&a, 3)));
    } else if (strcmp(cmd, "read-index") == 0) {
        want_args(&a, 1, 1);
        raft_id id = arg_live(&a, 1);
        uint64_t ctx = 0;
        int rc = sim_read(s, id, &ctx);
        d->last_read = ctx;
        d->last_rc = rc;
        if (rc != 0) {
            out_rc(rc);
        } else {
            outf("read %" PRIu64 " at n%" PRIu64 "\n", ctx, id);
        }
    } else if (strcmp(cmd, "read-result") == 0) {
        want_args(&a, 1, 1);
        uint64_t ctx = (uint64_t)eval(a.tok[1]);
        raft_index served = 0;
        int rc = sim_read_result(s, ctx, &served);
        if (rc != 0) {
            outf("read %" PRIu64 " failed: %s\n", ctx, raft_errname(rc));
        } else if (served == 0) {
            outf("read %" PRIu64 " pending\n", ctx);
        } else {
            outf("read %" PRIu64 " served at %" PRIu64 "\n", ctx, served);
        }
    } else if (strcmp(cmd, "disk-delay") == 0) {
        want_args(&a, 2, 2);
        sim_set_disk_delay(s, arg_node(&a, 1), (unsigned)eval(a.tok[2]));
        outf("ok\n");
    } else if (strcmp(cmd, "faults") == 0) {
        unsigned drop = (unsigned)opt_num(&a, "drop", 0);
        unsigned dup = (unsigned)opt_num(&a, "dup", 0);
        want_args(&a, 0, 0);
        sim_set_faults(s, drop, dup);
        outf("ok\n");
    } else if (strcmp(cmd, "expect") == 0) {
        if (eval(rest) == 0) {
            die("expect failed: %s", rest);
        }
        outf("ok\n");
    } else if (strcmp(cmd, "print") == 0) {
        outf("%" PRId64 "\n", eval(rest));
    } else if (strcmp(cmd, "let") == 0) {
        cmd_let(&a, rest);
    } else if (strcmp(cmd, "on") == 0) {
        cmd_on(rest);
    } else if (strcmp(cmd, "if") == 0 || strcmp(cmd, "repeat") == 0) {
        cmd_if_repeat(cmd[0] == 'i', rest);
    } else {
        die("unknown command %s", cmd);
    }
    check_violation();
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
        run_command(cmd);
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
