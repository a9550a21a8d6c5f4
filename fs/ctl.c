/* ctl.c - control socket server (on the node's loop) and the client side of
 * the `quorumfs status` family of subcommands. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"
#include "node_internal.h"

enum { CTL_CLIENTS_MAX = 64 };

struct ctl {
    uv_loop_t* loop;
    struct node* node;
    uv_pipe_t server;
    unsigned clients;
    char path[PATH_MAX];
};

struct ctl_client {
    uv_pipe_t pipe;
    struct ctl* ctl;
    char req[CTL_REQUEST_MAX];
    size_t len;
    uv_write_t wreq;
    char* reply;
};

static void client_closed_cb(uv_handle_t* h)
{
    struct ctl_client* cl = h->data;
    cl->ctl->clients--;
    free(cl->reply);
    free(cl);
}

static void client_written_cb(uv_write_t* w, int status)
{
    struct ctl_client* cl = w->data;
    (void)status;
    uv_close((uv_handle_t*)&cl->pipe, client_closed_cb);
}

static int build_reply(struct ctl_client* cl, char** out, size_t* len)
{
    struct node* n = cl->ctl->node;
    if (strcmp(cl->req, "status json") == 0) {
        return node_status_json(n, out, len);
    }
    if (strcmp(cl->req, "status text") == 0) {
        return node_status_text(n, out, len);
    }
    if (strcmp(cl->req, "members") == 0) {
        return node_members_text(n, out, len);
    }
    if (strcmp(cl->req, "leader") == 0) {
        return node_leader_text(n, out, len);
    }
    *out = strdup("error: unknown request\n");
    *len = *out != NULL ? strlen(*out) : 0;
    return *out != NULL ? 0 : -ENOMEM;
}

static void answer(struct ctl_client* cl)
{
    size_t len = 0;
    uv_read_stop((uv_stream_t*)&cl->pipe);
    if (build_reply(cl, &cl->reply, &len) != 0) {
        uv_close((uv_handle_t*)&cl->pipe, client_closed_cb);
        return;
    }
    uv_buf_t b = uv_buf_init(cl->reply, (unsigned)len);
    cl->wreq.data = cl;
    if (uv_write(&cl->wreq, (uv_stream_t*)&cl->pipe, &b, 1,
                 client_written_cb) != 0) {
        uv_close((uv_handle_t*)&cl->pipe, client_closed_cb);
    }
}

static void alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf)
{
    struct ctl_client* cl = h->data;
    (void)suggested;
    *buf = uv_buf_init(cl->req + cl->len,
                       (unsigned)(sizeof(cl->req) - 1 - cl->len));
}

static void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf)
{
    struct ctl_client* cl = s->data;
    (void)buf;
    if (nread < 0) {
        uv_close((uv_handle_t*)&cl->pipe, client_closed_cb);
        return;
    }
    cl->len += (size_t)nread;
    cl->req[cl->len] = '\0';
    char* nl = strchr(cl->req, '\n');
    if (nl != NULL) {
        *nl = '\0';
        answer(cl);
    } else if (cl->len >= sizeof(cl->req) - 1) {
        uv_close((uv_handle_t*)&cl->pipe, client_closed_cb); /* too long */
    }
}

static void connection_cb(uv_stream_t* server, int status)
{
    struct ctl* c = server->data;
    if (status != 0) {
        return;
    }
    struct ctl_client* cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        return;
    }
    cl->ctl = c;
    uv_pipe_init(c->loop, &cl->pipe, 0);
    cl->pipe.data = cl;
    c->clients++;
    if (uv_accept(server, (uv_stream_t*)&cl->pipe) != 0 ||
        c->clients > CTL_CLIENTS_MAX) {
        uv_close((uv_handle_t*)&cl->pipe, client_closed_cb);
        return;
    }
    uv_read_start((uv_stream_t*)&cl->pipe, alloc_cb, read_cb);
}

struct ctl* ctl_start(uv_loop_t* loop, struct node* n, const char* data_dir)
{
    struct ctl* c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->loop = loop;
    c->node = n;
    snprintf(c->path, sizeof(c->path), "%s/ctl.sock", data_dir);
    unlink(c->path); /* stale from a crash; we hold the data dir lock */
    uv_pipe_init(loop, &c->server, 0);
    c->server.data = c;
    mode_t old = umask(0077);
    int rv = uv_pipe_bind(&c->server, c->path);
    umask(old);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t*)&c->server, 16, connection_cb);
    }
    if (rv != 0) {
        node__log(RAFT_TRACE_WARN, "control socket %s: %s", c->path,
                  uv_strerror(rv));
        uv_close((uv_handle_t*)&c->server, (uv_close_cb)free);
        return NULL;
    }
    chmod(c->path, 0600);
    return c;
}

static void server_closed_cb(uv_handle_t* h)
{
    free(h->data);
}

void ctl_close(struct ctl* c)
{
    unlink(c->path);
    uv_close((uv_handle_t*)&c->server, server_closed_cb);
}

/* ---- client ---- */

static int ctl_request(const char* data_dir, const char* req)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char buf[4096];
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/ctl.sock", data_dir);
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
        fprintf(stderr, "quorumfs: data dir path too long\n");
        return 1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr*)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "quorumfs: no node running with data dir %s (%s: %s)\n",
                data_dir, sa.sun_path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return 1;
    }
    size_t len = strlen(req);
    if (write(fd, req, len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
        fprintf(stderr, "quorumfs: control socket: %s\n", strerror(errno));
        close(fd);
        return 1;
    }
    ssize_t r;
    while ((r = read(fd, buf, sizeof(buf))) > 0) {
        fwrite(buf, 1, (size_t)r, stdout);
    }
    close(fd);
    return r < 0 ? 1 : 0;
}

int ctl_command(int argc, char** argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"data-dir", required_argument, NULL, 'd'},
        {"name", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char* cmd = argv[0];
    const char *dir = NULL, *name = "default";
    bool json = false;
    char def[PATH_MAX];
    int c;

    if (strcmp(cmd, "status") != 0 && strcmp(cmd, "members") != 0 &&
        strcmp(cmd, "leader") != 0) {
        return -ENOSYS;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'h':
            printf(
                "Usage: quorumfs %s [--json] [--data-dir D | --name N]\n"
                "Asks the node running on data dir D (default\n"
                "/var/lib/quorumfs/NAME) through D/ctl.sock.\n",
                cmd);
            return 0;
        default:
            return 2;
        }
    }
    if (dir == NULL) {
        snprintf(def, sizeof(def), "/var/lib/quorumfs/%s", name);
        dir = def;
    }
    if (strcmp(cmd, "status") == 0) {
        return ctl_request(dir, json ? "status json" : "status text");
    }
    return ctl_request(dir, cmd);
}
