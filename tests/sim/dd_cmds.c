/* dd_cmds.c - the commands of sim_datadriven (datadriven.c): argument
 * parsing, one function per command and dd_run_command, which runs one
 * command line. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dd_internal.h"

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
    return v != NULL ? dd_eval(v) : def;
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
    dd_die("%s=%s: on or off expected", key, v);
    return def;
}

static void want_args(const struct args* a, unsigned min, unsigned max)
{
    if (a->n - 1 < min || a->n - 1 > max) {
        dd_die("%s: %u to %u arguments expected", a->tok[0], min, max);
    }
}

static raft_id arg_node(const struct args* a, unsigned i)
{
    raft_id id = dd_node_id(dd_eval(a->tok[i]));
    if (id > g_dd.n) {
        dd_die("%s: no node n%" PRIu64, a->tok[0], id);
    }
    return id;
}

static raft_id arg_live(const struct args* a, unsigned i)
{
    raft_id id = arg_node(a, i);
    if (!sim_alive(g_dd.s, id)) {
        dd_die("%s: n%" PRIu64 " is down", a->tok[0], id);
    }
    return id;
}

static void out_rc(int rc)
{
    g_dd.last_rc = rc;
    if (rc == 0) {
        dd_outf("ok\n");
    } else {
        dd_outf("error: %s\n", raft_errname(rc));
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
    dd_die("unknown message type %s", name);
    return 0;
}

static void cmd_add_nodes(struct args* a)
{
    struct dd* d = &g_dd;
    if (d->s != NULL) {
        dd_die("add-nodes: the cluster exists already");
    }
    struct sim_config c;
    sim_config_default(&c, (uint64_t)opt_num(a, "seed", 42));
    c.pre_vote = opt_bool(a, "pre-vote", c.pre_vote);
    c.check_quorum = opt_bool(a, "check-quorum", c.check_quorum);
    c.compact_every = (unsigned)opt_num(a, "compact-every", c.compact_every);
    c.heartbeat_ms = (unsigned)opt_num(a, "heartbeat", c.heartbeat_ms);
    c.election_ms = (unsigned)opt_num(a, "election", c.election_ms);
    want_args(a, 1, 1);
    int64_t n = dd_eval(a->tok[1]);
    if (n < 1 || n > 5) {
        dd_die("add-nodes: 1 to 5 voters");
    }
    c.n_voters = (unsigned)n;
    c.bug_commit_old_term = d->bug;
    c.trace = true;
    c.trace_out = d->trace ? stdout : NULL;
    d->s = sim_new(&c);
    d->n = c.n_voters;
    dd_outf("%u voters, seed %" PRIu64 ", pre-vote %s, check-quorum %s\n",
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
    int rc = dd_run(cond, (uint64_t)max);
    campaign_filters(id, false);
    if (rc == 0) {
        dd_outf("n%" PRIu64 " leads term %" PRIu64 "\n", id,
                raft_current_term(sim_raft(g_dd.s, id)));
    } else {
        dd_outf("n%" PRIu64 " not elected after %" PRId64 " ms\n", id, max);
    }
}

static void cmd_stabilize(struct args* a)
{
    struct sim* s = dd_need_sim();
    int64_t max = opt_num(a, "max", STABILIZE_MAX_MS);
    want_args(a, 0, 0);
    uint64_t quiet_ms = 3 * (uint64_t)s->cfg.election_ms;
    uint64_t start = sim_now(s), since = start, fp = dd_fingerprint();
    while (sim_now(s) - since < quiet_ms) {
        if (sim_now(s) - start >= (uint64_t)max) {
            dd_outf("not quiet after %" PRId64 " ms\n", max);
            break;
        }
        dd_run(NULL, STEP_MS);
        uint64_t f = dd_fingerprint();
        if (f != fp) {
            fp = f;
            since = sim_now(s);
        }
    }
    dd_state_lines();
}

static void cmd_propose(struct args* a)
{
    struct sim* s = dd_need_sim();
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
        dd_check_violation();
        g_dd.last_rc = rc;
        if (rc != 0 && may_fail) {
            dd_outf("error: %s\n", raft_errname(rc));
            return;
        }
        if (rc != 0) {
            dd_die("propose: %s at n%" PRIu64 " (error=ok allows it)",
                   raft_errname(rc), id);
        }
        first = i == 0 ? v : first;
        if (pace > 0 && i % pace == 0) {
            dd_run(NULL, 1);
        }
    }
    if (count == 1) {
        dd_outf("value %" PRIu64, v);
    } else {
        dd_outf("values %" PRIu64 "..%" PRIu64, first, v);
    }
    if (!wait) {
        dd_outf(" proposed at n%" PRIu64 "\n", id);
        return;
    }
    /* committed somewhere and applied on the proposing node */
    char cond[128];
    snprintf(cond, sizeof cond,
             "index(%" PRIu64 ") != 0 and applied(%" PRIu64
             ") >= index(%" PRIu64 ")",
             v, id, v);
    if (dd_run(cond, WAIT_MS) == 0) {
        dd_outf(" applied at %" PRIu64 "\n", sim_value_index(s, v));
    } else {
        dd_die("propose: value %" PRIu64 " not applied on n%" PRIu64
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
    dd_outf("n%" PRIu64 " log %" PRIu64 "..%" PRIu64 "\n", id, l->base + 1,
            l->base + l->n);
    for (unsigned i = 0; i < l->n;) {
        unsigned j = i;
        while (j + 1 < l->n && l->e[j + 1].term == l->e[i].term &&
               l->e[j + 1].type == l->e[i].type) {
            j++;
        }
        unsigned t = l->e[i].type <= 3 ? l->e[i].type : 0;
        dd_outf("  %" PRIu64 "..%" PRIu64 " term %" PRIu64 " %s\n",
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
    dd_outf("ok\n");
}

static void cmd_filter(struct args* a)
{
    want_args(a, 4, 4);
    bool on = strcmp(a->tok[4], "on") == 0;
    if (!on && strcmp(a->tok[4], "off") != 0) {
        dd_die("filter: on or off expected");
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
    dd_outf("ok\n");
}

static void cmd_let(struct args* a, const char* rest)
{
    struct dd* d = &g_dd;
    const char* eq = strchr(rest, '=');
    if (a->n < 2 || eq == NULL) {
        dd_die("let: NAME = EXPR expected");
    }
    const char* name = a->tok[1];
    size_t len = strcspn(name, " =");
    if (len == 0 || len >= NAME_MAX_LEN) {
        dd_die("let: bad name");
    }
    int64_t v = dd_eval(eq + 1);
    struct var* slot = NULL;
    for (unsigned i = 0; i < d->n_vars; i++) {
        if (strncmp(d->vars[i].name, name, len) == 0 &&
            d->vars[i].name[len] == '\0') {
            slot = &d->vars[i];
        }
    }
    if (slot == NULL) {
        if (d->n_vars == VARS_MAX) {
            dd_die("let: too many names");
        }
        slot = &d->vars[d->n_vars++];
        memcpy(slot->name, name, len);
        slot->name[len] = '\0';
    }
    slot->val = v;
    dd_outf("%s = %" PRId64 "\n", slot->name, v);
}

static void cmd_on(const char* rest)
{
    struct dd* d = &g_dd;
    const char* colon = strchr(rest, ':');
    if (colon == NULL || d->n_triggers == TRIGGERS_MAX) {
        dd_die("on: COND: COMMAND expected (at most %d)", TRIGGERS_MAX);
    }
    struct trigger* t = &d->triggers[d->n_triggers++];
    size_t len = (size_t)(colon - rest);
    if (len >= sizeof t->cond) {
        dd_die("on: condition too long");
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
    dd_outf("ok\n");
}

/* Split off a trailing max=MS from an expression line. */
static uint64_t take_max(char* rest, uint64_t def)
{
    char* m = strstr(rest, " max=");
    if (m == NULL) {
        return def;
    }
    *m = '\0';
    return (uint64_t)dd_eval(m + 5);
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
        dd_run_command(one);
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
        dd_die("%s: COND/COUNT: COMMAND expected", is_if ? "if" : "repeat");
    }
    char head[LINE_MAX_LEN];
    snprintf(head, sizeof head, "%.*s", (int)(colon - rest), rest);
    int64_t v = dd_eval(head);
    if (is_if && v == 0) {
        dd_outf("skipped\n");
    }
    for (int64_t i = 0; i < (is_if ? (v != 0) : v); i++) {
        run_body(colon + 1);
    }
}

void dd_run_command(char* line)
{
    struct dd* d = &g_dd;
    char copy[LINE_MAX_LEN];
    snprintf(copy, sizeof copy, "%s", line);
    struct args a = {.n = 0};
    for (char* t = strtok(line, " \t"); t != NULL; t = strtok(NULL, " \t")) {
        if (a.n == TOKENS_MAX) {
            dd_die("too many arguments");
        }
        a.tok[a.n++] = t;
    }
    if (a.n == 0) {
        dd_die("empty command");
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
    struct sim* s = dd_need_sim();
    if (strcmp(cmd, "campaign") == 0) {
        cmd_campaign(&a);
    } else if (strcmp(cmd, "stabilize") == 0) {
        cmd_stabilize(&a);
    } else if (strcmp(cmd, "tick") == 0) {
        want_args(&a, 1, 1);
        dd_run(NULL, (uint64_t)dd_eval(a.tok[1]));
        dd_outf("ok\n");
    } else if (strcmp(cmd, "run-until") == 0) {
        bool may_time_out = take_flag(rest, " timeout=ok");
        uint64_t max = take_max(rest, WAIT_MS);
        uint64_t t0 = sim_now(s);
        d->timed_out = dd_run(rest, max) != 0;
        if (!d->timed_out) {
            dd_outf("ok\n");
        } else if (may_time_out) {
            dd_outf("timeout after %" PRIu64 " ms\n", sim_now(s) - t0);
        } else {
            dd_die("run-until: timeout after %" PRIu64 " ms: %s", max, rest);
        }
    } else if (strcmp(cmd, "status") == 0) {
        want_args(&a, 0, 0);
        dd_state_lines();
    } else if (strcmp(cmd, "log") == 0) {
        cmd_log(&a);
    } else if (strcmp(cmd, "propose") == 0) {
        cmd_propose(&a);
    } else if (strcmp(cmd, "isolate") == 0) {
        want_args(&a, 1, TOKENS_MAX);
        for (unsigned i = 1; i < a.n; i++) {
            sim_isolate(s, arg_node(&a, i));
        }
        dd_outf("ok\n");
    } else if (strcmp(cmd, "partition") == 0) {
        cmd_partition(&a);
    } else if (strcmp(cmd, "heal") == 0) {
        want_args(&a, 0, 0);
        sim_heal(s);
        dd_outf("ok\n");
    } else if (strcmp(cmd, "connect") == 0 || strcmp(cmd, "disconnect") == 0) {
        want_args(&a, 2, 2);
        bool cut = cmd[0] == 'd';
        raft_id x = arg_node(&a, 1), y = arg_node(&a, 2);
        sim_block(s, x, y, cut);
        sim_block(s, y, x, cut);
        dd_outf("ok\n");
    } else if (strcmp(cmd, "block") == 0 || strcmp(cmd, "unblock") == 0) {
        want_args(&a, 2, 2);
        sim_block(s, arg_node(&a, 1), arg_node(&a, 2), cmd[0] == 'b');
        dd_outf("ok\n");
    } else if (strcmp(cmd, "filter") == 0) {
        cmd_filter(&a);
    } else if (strcmp(cmd, "crash") == 0) {
        want_args(&a, 1, 1);
        sim_crash(s, arg_live(&a, 1));
        dd_outf("ok\n");
    } else if (strcmp(cmd, "restart") == 0) {
        want_args(&a, 1, 1);
        raft_id id = arg_node(&a, 1);
        if (sim_alive(s, id)) {
            dd_die("restart: n%" PRIu64 " is up", id);
        }
        sim_restart(s, id);
        dd_outf("ok\n");
    } else if (strcmp(cmd, "wipe") == 0) {
        want_args(&a, 1, 1);
        sim_wipe(s, arg_node(&a, 1));
        dd_outf("ok\n");
    } else if (strcmp(cmd, "tear") == 0) {
        want_args(&a, 2, 2);
        sim_tear_tail(s, arg_node(&a, 1), (unsigned)dd_eval(a.tok[2]));
        dd_outf("ok\n");
    } else if (strcmp(cmd, "start") == 0) {
        want_args(&a, 1, 1);
        raft_id id = dd_node_id(dd_eval(a.tok[1]));
        if (id <= d->n && sim_alive(s, id)) {
            dd_die("start: n%" PRIu64 " is up", id);
        }
        d->n = id > d->n ? id : d->n;
        sim_start_fresh(s, id);
        dd_outf("ok\n");
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
            dd_die("conf-change: add-learner, promote or remove expected");
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
            dd_outf("read %" PRIu64 " at n%" PRIu64 "\n", ctx, id);
        }
    } else if (strcmp(cmd, "read-result") == 0) {
        want_args(&a, 1, 1);
        uint64_t ctx = (uint64_t)dd_eval(a.tok[1]);
        raft_index served = 0;
        int rc = sim_read_result(s, ctx, &served);
        if (rc != 0) {
            dd_outf("read %" PRIu64 " failed: %s\n", ctx, raft_errname(rc));
        } else if (served == 0) {
            dd_outf("read %" PRIu64 " pending\n", ctx);
        } else {
            dd_outf("read %" PRIu64 " served at %" PRIu64 "\n", ctx, served);
        }
    } else if (strcmp(cmd, "disk-delay") == 0) {
        want_args(&a, 2, 2);
        sim_set_disk_delay(s, arg_node(&a, 1), (unsigned)dd_eval(a.tok[2]));
        dd_outf("ok\n");
    } else if (strcmp(cmd, "faults") == 0) {
        unsigned drop = (unsigned)opt_num(&a, "drop", 0);
        unsigned dup = (unsigned)opt_num(&a, "dup", 0);
        want_args(&a, 0, 0);
        sim_set_faults(s, drop, dup);
        dd_outf("ok\n");
    } else if (strcmp(cmd, "expect") == 0) {
        if (dd_eval(rest) == 0) {
            dd_die("expect failed: %s", rest);
        }
        dd_outf("ok\n");
    } else if (strcmp(cmd, "print") == 0) {
        dd_outf("%" PRId64 "\n", dd_eval(rest));
    } else if (strcmp(cmd, "let") == 0) {
        cmd_let(&a, rest);
    } else if (strcmp(cmd, "on") == 0) {
        cmd_on(rest);
    } else if (strcmp(cmd, "if") == 0 || strcmp(cmd, "repeat") == 0) {
        cmd_if_repeat(cmd[0] == 'i', rest);
    } else {
        dd_die("unknown command %s", cmd);
    }
    dd_check_violation();
}
