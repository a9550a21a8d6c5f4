/* node_members.c - membership changes asked on this node (node.h,
 * node_conf_change): the core appends them on the leader and forwards them
 * from a follower; this file waits until the change shows committed here,
 * or until the leader refuses it, or until the proposal timeout. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "identity.h"
#include "node_state_internal.h"

static const char* op_name(uint8_t op)
{
    switch (op) {
    case RAFT_CONF_ADD_LEARNER:
        return "add learner";
    case RAFT_CONF_PROMOTE:
        return "promote";
    case RAFT_CONF_SET_ADDR:
        return "set the peer address of";
    default:
        return "remove";
    }
}

static struct node_conf_req* req_free_slot(struct node* n)
{
    for (unsigned i = 0; i < NODE_CONF_REQS_MAX; i++) {
        if (!n->conf_reqs[i].used) {
            return &n->conf_reqs[i];
        }
    }
    return NULL;
}

static void req_done(struct node_conf_req* q, int err)
{
    node_conf_cb cb = q->cb;
    void* data = q->data;
    q->used = false;
    cb(data, err);
}

/* Whether the current configuration shows q's change (appended, maybe
 * not committed yet). */
static bool req_shown(struct node* n, const struct node_conf_req* q)
{
    const struct raft_conf* c = raft_conf_current(n->raft);
    const struct raft_server* s = raft_conf_get(c, q->server.id);
    bool shown = false;
    switch (q->op) {
    case RAFT_CONF_ADD_LEARNER:
        shown = s != NULL;
        break;
    case RAFT_CONF_PROMOTE:
        shown = s != NULL && s->role == RAFT_VOTER;
        break;
    case RAFT_CONF_REMOVE:
        shown = s == NULL;
        break;
    case RAFT_CONF_SET_ADDR:
        shown = s != NULL && strcmp(s->addr, q->server.addr) == 0;
        break;
    default:
        break;
    }
    return shown;
}

/* Whether the current configuration shows q's change, committed here. */
static bool req_committed(struct node* n, const struct node_conf_req* q)
{
    return req_shown(n, q) &&
           raft_commit_index(n->raft) >= raft_conf_index(n->raft);
}

/* Steps q's change into the core: the leader appends it, a follower
 * forwards it to the leader it knows. */
static int req_step(struct node* n, struct node_conf_req* q)
{
    struct raft_event ev = {.type = RAFT_EV_CONF_CHANGE};
    ev.conf.op = q->op;
    ev.conf.server = q->server;
    ev.conf.ctx = q->ctx;
    q->leader = raft_leader(n->raft);
    return node__step(n, &ev);
}

int node_conf_change(struct node* n,
                     uint8_t op,
                     const char* name,
                     const char* addr,
                     node_conf_cb cb,
                     void* data)
{
    const struct raft_conf* c = raft_conf_current(n->raft);
    struct raft_server server;

    if (n->stopping) {
        return -ESHUTDOWN;
    }
    if (strlen(name) >= RAFT_NAME_MAX ||
        (addr != NULL && strlen(addr) >= RAFT_ADDR_MAX)) {
        return -ENAMETOOLONG;
    }
    memset(&server, 0, sizeof(server));
    server.id = identity_node_id(name);
    server.role = RAFT_LEARNER;
    snprintf(server.name, sizeof(server.name), "%s", name);
    snprintf(server.addr, sizeof(server.addr), "%s", addr != NULL ? addr : "");
    const struct raft_server* s = NULL;
    for (unsigned i = 0; i < c->n; i++) {
        if (strcmp(c->servers[i].name, name) == 0 ||
            c->servers[i].id == server.id) {
            s = &c->servers[i];
        }
    }
    switch (op) {
    case RAFT_CONF_ADD_LEARNER:
        if (s != NULL) {
            return -EEXIST;
        }
        if (n->transport == NULL) {
            return -EOPNOTSUPP; /* nobody could reach the new member */
        }
        for (unsigned i = 0; i < c->n; i++) {
            if (c->servers[i].addr[0] == '\0') {
                return -EDESTADDRREQ; /* the new member could not reach it */
            }
        }
        for (unsigned i = 0; addr != NULL && i < c->n; i++) {
            if (strcmp(c->servers[i].addr, addr) == 0) {
                return -EADDRINUSE;
            }
        }
        if (c->n >= RAFT_SERVERS_MAX) {
            return -ENOSPC;
        }
        break;
    case RAFT_CONF_PROMOTE:
        if (s == NULL) {
            return -ENOENT;
        }
        if (s->role == RAFT_VOTER) {
            return -EALREADY;
        }
        break;
    case RAFT_CONF_REMOVE:
        if (s == NULL) {
            return -ENOENT;
        }
        if (s->id == n->id && raft_role(n->raft) != RAFT_LEADER) {
            return -EPERM;
        }
        break;
    case RAFT_CONF_SET_ADDR:
        if (s == NULL) {
            return -ENOENT;
        }
        if (addr == NULL || addr[0] == '\0') {
            return -EINVAL;
        }
        if (n->transport == NULL) {
            return -EOPNOTSUPP;
        }
        if (strcmp(s->addr, addr) == 0) {
            return -EALREADY;
        }
        for (unsigned i = 0; i < c->n; i++) {
            if (&c->servers[i] != s && strcmp(c->servers[i].addr, addr) == 0) {
                return -EADDRINUSE;
            }
        }
        server.id = s->id;
        break;
    default:
        return -EINVAL;
    }
    struct node_conf_req* q = req_free_slot(n);
    if (q == NULL) {
        return -EAGAIN;
    }
    uint64_t ctx = NODE_CONF_CTX_BIT | ++n->next_conf_ctx;
    /* Registered first: the update of this very step may complete it. */
    *q = (struct node_conf_req){
        .used = true,
        .op = op,
        .ctx = ctx,
        .deadline_ms = uv_now(n->loop) + n->opts.proposal_timeout_ms,
        .server = server,
        .cb = cb,
        .data = data};
    node__log(n, RAFT_TRACE_INFO,
              "membership: %s %s (id %016" PRIx64 ")%s%s asked here",
              op_name(op), name, server.id, addr != NULL ? " at " : "",
              addr != NULL ? addr : "");
    q->cb = NULL; /* not completed from inside this call */
    int rv = req_step(n, q);
    if (rv != 0) {
        q->used = false;
        return rv;
    }
    q->cb = cb;
    return 0;
}

bool node__conf_failed(struct node* n, uint64_t ctx, int err)
{
    if ((ctx & NODE_CONF_CTX_BIT) == 0) {
        return false;
    }
    for (unsigned i = 0; i < NODE_CONF_REQS_MAX; i++) {
        struct node_conf_req* q = &n->conf_reqs[i];
        if (!q->used || q->ctx != ctx || q->cb == NULL) {
            continue;
        }
        if (node__retryable(err)) {
            q->leader = 0; /* sent again once a leader is known */
        } else if (!req_shown(n, q)) {
            /* A refusal of a change already in the configuration is of a
             * copy sent again (node__conf_retry): it waits for the
             * commit. */
            req_done(q, err);
        }
    }
    return true;
}

void node__conf_retry(struct node* n)
{
    if (n->raft == NULL || raft_leader(n->raft) == 0) {
        return;
    }
    raft_id leader = raft_leader(n->raft);
    for (unsigned i = 0; i < NODE_CONF_REQS_MAX; i++) {
        struct node_conf_req* q = &n->conf_reqs[i];
        if (q->used && q->cb != NULL && q->leader != leader &&
            !req_shown(n, q)) {
            /* Sent to a leader that is gone (or refused for want of one):
             * the new leader gets it. A refusal waits for its answer. */
            node__log(n, RAFT_TRACE_INFO,
                      "membership: change for %s sent again to the new "
                      "leader",
                      q->server.name);
            (void)req_step(n, q);
        }
    }
}

void node__conf_check(struct node* n)
{
    if (n->raft == NULL) {
        return;
    }
    uint64_t now = uv_now(n->loop);
    node__drop_peers(n);
    for (unsigned i = 0; i < NODE_CONF_REQS_MAX; i++) {
        struct node_conf_req* q = &n->conf_reqs[i];
        if (!q->used || q->cb == NULL) {
            continue;
        }
        if (req_committed(n, q)) {
            node__log(n, RAFT_TRACE_INFO,
                      "membership: %s %s committed at %" PRIu64 " (%u voters)",
                      op_name(q->op), q->server.name, raft_conf_index(n->raft),
                      raft_conf_voters(raft_conf_current(n->raft)));
            req_done(q, 0);
        } else if (now >= q->deadline_ms) {
            req_done(q, -ETIMEDOUT);
        }
    }
}

void node__conf_fail_all(struct node* n, int err)
{
    for (unsigned i = 0; i < NODE_CONF_REQS_MAX; i++) {
        struct node_conf_req* q = &n->conf_reqs[i];
        if (q->used && q->cb != NULL) {
            req_done(q, err);
        }
    }
}

void node__conf_log(struct node* n)
{
    const struct raft_conf* c = raft_conf_current(n->raft);
    char line[RAFT_SERVERS_MAX * (RAFT_NAME_MAX + 12) + 1];
    size_t pos = 0;
    line[0] = '\0';
    for (unsigned i = 0; i < c->n && pos < sizeof(line); i++) {
        int k = snprintf(line + pos, sizeof(line) - pos, "%s%s%s",
                         i > 0 ? ", " : "", c->servers[i].name,
                         c->servers[i].role == RAFT_VOTER ? "" : " (learner)");
        pos += k > 0 ? (size_t)k : 0;
    }
    raft_index at = raft_conf_index(n->raft);
    if (at == n->logged_conf_index && at != 0) {
        return;
    }
    n->logged_conf_index = at;
    unsigned voters = raft_conf_voters(c);
    node__log(n, RAFT_TRACE_INFO,
              "membership at index %" PRIu64 ": %s; %u voters, quorum %u", at,
              line, voters, voters / 2 + 1);
}
