/* ctl.h - the control socket of a running node (DATA_DIR/ctl.sock, mode
 * 0600) and the `quorumfs` subcommands that
 * talk to a node (or, for `snapshot status|restore`, work offline).
 *
 * Who may talk: root (uid 0) and the node's own effective uid, checked at
 * accept (SO_PEERCRED) whatever the socket file's mode; anyone else reads
 * "error: permission denied (...)" and is closed. A client has 2 s from
 * its connect to send its request line; with 64 clients served a new
 * connection closes the oldest one still sending (ctl.c).
 *
 * Protocol: the client sends one request line (at most CTL_REQUEST_MAX
 * bytes, fields separated by tabs), the node answers and closes the
 * connection (a watch streams instead). Requests:
 *   status json | status text | members | leader      text
 *   health                 one line per member (node_health_text)
 *   restore\tNAME\tPATH    one STORE_OP_RESTORE proposal; "ok ..." or
 *                          "error: ..." once applied
 *   compact\tREV           one STORE_OP_COMPACT proposal (REV 0: current
 *                          revision minus --history-revisions)
 *   snapshot save          "ok CONF_LEN IMAGE_LEN\n", then the encoded
 *                          raft_conf, then the store image (binary)
 *   member list json | member list text
 *   member\tadd\tNAME\tADDR | member\tpromote\tNAME | member\tremove\tNAME
 *                          node_conf_change(); "ok committed" once this
 *                          node sees the change committed
 *   member\tupdate\tNAME\tADDR\tSECRET\tCERT\tKEY\tCA\tINSECURE
 *                          this node (NAME) starts its peer listener on
 *                          ADDR with those files (absolute paths, or
 *                          empty; INSECURE 0 or 1) and records ADDR
 *                          (RAFT_CONF_SET_ADDR); "ok committed" as above
 *   transfer\tNAME         start a leadership transfer (leader only)
 *   watch\tSINCE\tPATH     "ok watching from revision R", then one line
 *                          per change under PATH as it is applied, until
 *                          the client hangs up (ctl.c, "Watchers")
 * A reply that is not "ok" starts with "error: ".
 */
#ifndef QFS_CTL_H
#define QFS_CTL_H

#include <stdbool.h>
#include <stdio.h>
#include <uv.h>

#include "cli_log.h"
#include "node.h"

enum {
    CTL_REQUEST_MAX = 8192, /* request line, incl. NUL */
};

struct ctl;

/* Listen on data_dir/ctl.sock (a stale socket file is replaced). When the
 * socket cannot be created it is logged (to log, borrowed until ctl is
 * freed) and the node runs without it. NULL: out of memory. */
struct ctl* ctl_start(uv_loop_t* loop,
                      struct node* n,
                      const char* data_dir,
                      const struct cli_log* log);
/* Close the listener; frees ctl once closed. Clients with a
 * proposal in flight get their answer when its callback runs (the node
 * fails pending proposals when it stops). */
void ctl_close(struct ctl* c);

/* Run a client subcommand (argv[0] is its name). Returns the exit status,
 * or -ENOSYS for an unknown subcommand. */
int ctl_command(int argc, char** argv);
/* The usage of client subcommand cmd, to out; false when cmd is not one. */
bool ctl_usage(const char* cmd, FILE* out);
/* The subcommand (mount and help included) nearest to word, at most two
 * edits away (a swap of neighbours is one), or NULL. */
const char* ctl_nearest_command(const char* word);

#endif /* QFS_CTL_H */
