/* ctl.h - the control socket of a running node (DATA_DIR/ctl.sock, mode
 * 0600) and the `quorumfs` subcommands that talk to it.
 *
 * Protocol: the client sends one request line ("status json", "status
 * text", "members", "leader"; at most CTL_REQUEST_MAX bytes), the node
 * answers with text and closes the connection. */
#ifndef QFS_CTL_H
#define QFS_CTL_H

#include <uv.h>

#include "node.h"

enum { CTL_REQUEST_MAX = 256 };

struct ctl;

/* Listen on data_dir/ctl.sock (a stale socket file is replaced). Returns
 * NULL (logged) when the socket cannot be created: the node runs without. */
struct ctl* ctl_start(uv_loop_t* loop, struct node* n, const char* data_dir);
/* Close the listener and every client; frees ctl once closed. */
void ctl_close(struct ctl* c);

/* Run a client subcommand (argv[0] is its name). Returns the exit status,
 * or -ENOSYS for an unknown subcommand. */
int ctl_command(int argc, char** argv);

#endif /* QFS_CTL_H */
