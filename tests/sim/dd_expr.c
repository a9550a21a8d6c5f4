/* dd_expr.c - the expressions of sim_datadriven (datadriven.c): the
 * parser and evaluator of the numbers, conditions and values the commands
 * take (node ids, run-until, expect, print, let, on, if, repeat), with the
 * functions and names an expression can use. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dd_internal.h"

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

struct sim* dd_need_sim(void)
{
    if (g_dd.s == NULL) {
        dd_die("no cluster: run add-nodes first");
    }
    return g_dd.s;
}

raft_id dd_node_id(int64_t v)
{
    if (v < 1 || v > SIM_NODES_MAX) {
        dd_die("no node %" PRId64, v);
    }
    return (raft_id)v;
}

static struct raft* live(raft_id id)
{
    return sim_raft(dd_need_sim(), id);
}

static int64_t fn_agree(raft_id a, raft_id b)
{
    struct sim* s = dd_need_sim();
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
    struct sim* s = dd_need_sim();
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
        {"snap_starts", 2}, {"lost_vote", 1},
    };
    for (size_t i = 0; i < sizeof arity / sizeof arity[0]; i++) {
        if (strcmp(arity[i].name, name) == 0) {
            if (arity[i].args != n && arity[i].args != 0) {
                dd_die("%s() takes %u arguments: %s", name, arity[i].args,
                       ps->src);
            }
            goto known;
        }
    }
    dd_die("unknown function %s(): %s", name, ps->src);
known:;
    struct raft* r = NULL;
    if (strcmp(name, "index") != 0 && strcmp(name, "served") != 0 &&
        strcmp(name, "read_err") != 0 && strcmp(name, "other") != 0 &&
        strcmp(name, "converged") != 0) {
        r = live(dd_node_id(a[0]));
    }
    if (strcmp(name, "term") == 0) {
        return r != NULL ? (int64_t)raft_current_term(r) : 0;
    }
    if (strcmp(name, "commit") == 0) {
        return r != NULL ? (int64_t)raft_commit_index(r) : 0;
    }
    if (strcmp(name, "applied") == 0) {
        return (int64_t)sim_applied(s, dd_node_id(a[0]));
    }
    if (strcmp(name, "last") == 0) {
        return (int64_t)sim_log_last(s, dd_node_id(a[0]));
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
        return sim_alive(s, dd_node_id(a[0]));
    }
    if (strcmp(name, "hash") == 0) {
        return (int64_t)sim_sm_hash(s, dd_node_id(a[0]));
    }
    if (strcmp(name, "log_term") == 0) {
        return (int64_t)sim_log_term(s, dd_node_id(a[0]), (raft_index)a[1]);
    }
    if (strcmp(name, "catching_up") == 0) {
        return r != NULL && raft_catching_up(r);
    }
    if (strcmp(name, "lost_vote") == 0) {
        return r != NULL && raft_lost_vote(r);
    }
    if (strcmp(name, "match") == 0 || strcmp(name, "recent") == 0) {
        raft_index match = 0;
        bool recent = false;
        if (r == NULL ||
            raft_peer_progress(r, dd_node_id(a[1]), &match, &recent) != 0) {
            return -1;
        }
        return name[0] == 'm' ? (int64_t)match : recent;
    }
    if (strcmp(name, "member") == 0) {
        const struct raft_server* sv =
            r != NULL ? raft_conf_get(raft_conf_current(r), dd_node_id(a[1]))
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
        return (int64_t)sim_sent(s, dd_node_id(a[0]), dd_node_id(a[1]));
    }
    if (strcmp(name, "snap_starts") == 0) {
        return (int64_t)sim_snap_starts(s, dd_node_id(a[0]), dd_node_id(a[1]));
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
    return fn_agree(dd_node_id(a[0]), dd_node_id(a[1])); /* agree */
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
        return (int64_t)sim_leader(dd_need_sim());
    }
    if (strcmp(name, "stable_leader") == 0) {
        return (int64_t)sim_stable_leader(dd_need_sim());
    }
    if (strcmp(name, "now") == 0) {
        return (int64_t)sim_now(dd_need_sim());
    }
    if (strcmp(name, "installs") == 0) {
        return (int64_t)sim_installs(dd_need_sim());
    }
    if (strcmp(name, "last_value") == 0) {
        return (int64_t)dd_need_sim()->next_value - 1;
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
    dd_die("unknown name %s: %s", name, ps->src);
    return 0;
}

static int64_t parse_primary(struct parser* ps)
{
    skip_ws(ps);
    if (eat(ps, "(")) {
        int64_t v = parse_expr(ps);
        if (!eat(ps, ")")) {
            dd_die("missing ')': %s", ps->src);
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
        dd_die("expression expected at '%s': %s", ps->p, ps->src);
    }
    char name[NAME_MAX_LEN];
    size_t n = 0;
    while (isalnum((unsigned char)*ps->p) || *ps->p == '_') {
        if (n + 1 >= sizeof name) {
            dd_die("name too long: %s", ps->src);
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
                dd_die("too many arguments: %s", ps->src);
            }
            args[na++] = parse_expr(ps);
        } while (eat(ps, ","));
        if (!eat(ps, ")")) {
            dd_die("missing ')': %s", ps->src);
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
                dd_die("division by zero: %s", ps->src);
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

int64_t dd_eval(const char* src)
{
    struct parser ps = {src, src};
    int64_t v = parse_expr(&ps);
    skip_ws(&ps);
    if (*ps.p != '\0') {
        dd_die("trailing text '%s' in expression: %s", ps.p, src);
    }
    return v;
}
