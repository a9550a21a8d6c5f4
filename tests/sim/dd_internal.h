/* dd_internal.h - what the files of sim_datadriven share: the runner's
 * state (g_dd, defined in datadriven.c), the output and failure helpers
 * and the running of the simulation (datadriven.c), the expressions
 * (dd_expr.c) and the commands (dd_cmds.c). */
#ifndef QFS_DD_INTERNAL_H
#define QFS_DD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

extern struct dd g_dd;

/* datadriven.c */
void dd_die(const char* fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void dd_outf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void dd_check_violation(void);
int dd_run(const char* cond, uint64_t max_ms);
void dd_state_lines(void);
uint64_t dd_fingerprint(void);

/* dd_expr.c */
struct sim* dd_need_sim(void);
raft_id dd_node_id(int64_t v);
int64_t dd_eval(const char* src);

/* dd_cmds.c */
void dd_run_command(char* line);

#endif /* QFS_DD_INTERNAL_H */
