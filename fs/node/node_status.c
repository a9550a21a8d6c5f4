/* node_status.c - the node's state as JSON and text, for /.cluster/ files
 * and the control socket (DESIGN §7). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node_state_internal.h"

/* A growing text buffer; every append is bounded by NODE_TEXT_MAX. */
enum { NODE_TEXT_MAX = 1u << 20 };

struct text {
    char* buf;
    size_t len, cap;
    int err;
};

static void tprintf(struct text* t, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void tprintf(struct text* t, const char* fmt, ...)
{
    va_list ap;
    if (t->err != 0) {
        return;
    }
    for (;;) {
        va_start(ap, fmt);
        int need = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (need < 0) {
            t->err = -EINVAL;
            return;
        }
        if ((size_t)need < t->cap - t->len) {
            t->len += (size_t)need;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)need + 64;
        if (cap > NODE_TEXT_MAX) {
            t->err = -E2BIG;
            return;
        }
        char* b = realloc(t->buf, cap);
        if (b == NULL) {
            t->err = -ENOMEM;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

static int text_begin(struct text* t)
{
    t->cap = 1024;
    t->len = 0;
    t->err = 0;
    t->buf = malloc(t->cap);
    return t->buf != NULL ? 0 : -ENOMEM;
}

static int text_end(struct text* t, char** out, size_t* len)
{
    if (t->err != 0) {
        free(t->buf);
        return t->err;
    }
    *out = t->buf;
    *len = t->len;
    return 0;
}

static const char* role_of(struct node* n)
{
    const struct raft_server* s =
        raft_conf_get(raft_conf_current(n->raft), n->id);
    if (s != NULL && s->role == RAFT_LEARNER) {
        return "learner";
    }
    switch (raft_role(n->raft)) {
    case RAFT_LEADER:
        return "leader";
    case RAFT_CANDIDATE:
    case RAFT_PRECANDIDATE:
        return "candidate";
    default:
        return "follower";
    }
}

static const char* leader_name(struct node* n)
{
    raft_id l = raft_leader(n->raft);
    const struct raft_server* s =
        l != 0 ? raft_conf_get(raft_conf_current(n->raft), l) : NULL;
    return s != NULL ? s->name : NULL;
}

static void member_json(struct node* n,
                        struct text* t,
                        const struct raft_server* s)
{
    raft_index match = 0;
    bool recent = false;
    bool leader = raft_role(n->raft) == RAFT_LEADER;

    if (s->id == n->id) {
        match = raft_last_index(n->raft);
        recent = true;
    } else if (leader) {
        raft_peer_progress(n->raft, s->id, &match, &recent);
    } else if (n->transport != NULL) {
        recent = transport_connected(n->transport, s->id);
    }
    tprintf(t,
            "{\"name\": \"%s\", \"id\": \"%016" PRIx64
            "\", \"addr\": \"%s\", \"voter\": %s, \"reachable\": %s, "
            "\"match_index\": %" PRIu64 "}",
            s->name, s->id, s->addr, s->role == RAFT_VOTER ? "true" : "false",
            recent ? "true" : "false", match);
}

int node_status_json(struct node* n, char** out, size_t* len)
{
    struct text t;
    struct store_stats ss;
    const struct raft_conf* c = raft_conf_current(n->raft);
    const char* leader = leader_name(n);

    if (text_begin(&t) != 0) {
        return -ENOMEM;
    }
    store_get_stats(n->store, &ss);
    tprintf(&t, "{\n  \"name\": \"%s\",\n  \"id\": \"%016" PRIx64 "\",\n",
            n->name, n->id);
    tprintf(&t, "  \"cluster_id\": \"%016" PRIx64 "\",\n", n->cluster_id);
    tprintf(&t, "  \"role\": \"%s\",\n  \"term\": %" PRIu64 ",\n", role_of(n),
            raft_current_term(n->raft));
    if (leader != NULL) {
        tprintf(&t, "  \"leader\": \"%s\",\n", leader);
    } else {
        tprintf(&t, "  \"leader\": null,\n");
    }
    tprintf(&t,
            "  \"commit_index\": %" PRIu64 ",\n  \"applied_index\": %" PRIu64
            ",\n  \"revision\": %" PRIu64 ",\n  \"compact_revision\": %" PRIu64
            ",\n",
            raft_commit_index(n->raft), ss.applied_index, ss.revision,
            ss.compact_revision);
    tprintf(&t, "  \"last_index\": %" PRIu64 ",\n  \"catching_up\": %s,\n",
            raft_last_index(n->raft),
            raft_catching_up(n->raft) ? "true" : "false");
    tprintf(&t, "  \"quorum\": %u,\n", raft_conf_voters(c) / 2 + 1);
    tprintf(&t,
            "  \"keys\": %" PRIu64 ",\n  \"live_bytes\": %" PRIu64
            ",\n  \"db_bytes\": %" PRIu64 ",\n",
            ss.keys, ss.live_bytes, ss.db_bytes);
    tprintf(&t,
            "  \"proposals\": %" PRIu64 ",\n  \"proposal_timeouts\": %" PRIu64
            ",\n  \"proposal_fences\": %" PRIu64
            ",\n  \"pending_proposals\": %" PRIu64 ",\n",
            n->proposals, n->timeouts, n->fences, n->n_waiters);
    uint64_t io_rounds, io_syncs, io_jobs;
    node__io_stats(&n->io, &io_rounds, &io_syncs, &io_jobs);
    tprintf(&t,
            "  \"io_rounds\": %" PRIu64 ",\n  \"io_syncs\": %" PRIu64
            ",\n  \"io_jobs\": %" PRIu64 ",\n",
            io_rounds, io_syncs, io_jobs);
    if (n->transport != NULL) {
        struct transport_stats ts;
        transport_get_stats(n->transport, &ts);
        tprintf(&t,
                "  \"transport\": {\"frames_in\": %" PRIu64
                ", \"frames_out\": %" PRIu64 ", \"rejected_frames\": %" PRIu64
                ", \"dropped_queue_full\": %" PRIu64 ", \"connects\": %" PRIu64
                ", \"disconnects\": %" PRIu64 "},\n",
                ts.frames_in, ts.frames_out, ts.rejected_frames,
                ts.dropped_queue_full, ts.connects, ts.disconnects);
    }
    tprintf(&t, "  \"disk_error\": %s,\n",
            n->sticky_err != 0 ? "true" : "false");
    if (n->status_extra != NULL) {
        char extra[512];
        extra[0] = '\0';
        n->status_extra(n->status_extra_data, true, extra, sizeof(extra));
        if (extra[0] != '\0') {
            tprintf(&t, "  %s,\n", extra);
        }
    }
    tprintf(&t, "  \"members\": [");
    for (unsigned i = 0; i < c->n; i++) {
        tprintf(&t, "%s\n    ", i == 0 ? "" : ",");
        member_json(n, &t, &c->servers[i]);
    }
    tprintf(&t, "\n  ]\n}\n");
    return text_end(&t, out, len);
}

void node_set_status_extra(struct node* n, node_status_extra_cb cb, void* data)
{
    n->status_extra = cb;
    n->status_extra_data = data;
}

int node_members_text(struct node* n, char** out, size_t* len)
{
    struct text t;
    const struct raft_conf* c = raft_conf_current(n->raft);
    raft_id leader = raft_leader(n->raft);

    if (text_begin(&t) != 0) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_server* s = &c->servers[i];
        tprintf(&t, "%s %016" PRIx64 " %s %s%s\n", s->name, s->id,
                s->addr[0] != '\0' ? s->addr : "-",
                s->role == RAFT_VOTER ? "voter" : "learner",
                s->id == leader ? " leader" : "");
    }
    return text_end(&t, out, len);
}

/* One member's view from here: match index (-1: unknown) and reachable. */
static void member_view(struct node* n,
                        const struct raft_server* s,
                        int64_t* match,
                        bool* reachable)
{
    raft_index m = 0;
    *match = -1;
    *reachable = false;
    if (s->id == n->id) {
        *match = (int64_t)raft_last_index(n->raft);
        *reachable = true;
    } else if (raft_role(n->raft) == RAFT_LEADER) {
        if (raft_peer_progress(n->raft, s->id, &m, reachable) == 0) {
            *match = (int64_t)m;
        }
    } else if (n->transport != NULL) {
        *reachable = transport_connected(n->transport, s->id);
    }
}

int node_member_list(struct node* n, bool json, char** out, size_t* len)
{
    struct text t;
    const struct raft_conf* c = raft_conf_current(n->raft);
    raft_id leader = raft_leader(n->raft);
    const char* lname = leader_name(n);
    unsigned voters = raft_conf_voters(c);

    if (text_begin(&t) != 0) {
        return -ENOMEM;
    }
    if (json) {
        tprintf(&t,
                "{\"node\": \"%s\", \"role\": \"%s\", \"cluster_id\": "
                "\"%016" PRIx64 "\", \"term\": %" PRIu64
                ", \"commit_index\": %" PRIu64 ", \"conf_index\": %" PRIu64
                ", \"voters\": %u, \"quorum\": %u, ",
                n->name, role_of(n), n->cluster_id, raft_current_term(n->raft),
                raft_commit_index(n->raft), raft_conf_index(n->raft), voters,
                voters / 2 + 1);
        if (lname != NULL) {
            tprintf(&t, "\"leader\": \"%s\", \"members\": [", lname);
        } else {
            tprintf(&t, "\"leader\": null, \"members\": [");
        }
    } else {
        tprintf(&t, "%-12s %-16s %-22s %-7s %-6s %-9s %s\n", "NAME", "ID",
                "ADDRESS", "ROLE", "LEADER", "REACHABLE", "MATCH");
    }
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_server* s = &c->servers[i];
        int64_t match;
        bool reachable;
        member_view(n, s, &match, &reachable);
        const char* role = s->role == RAFT_VOTER ? "voter" : "learner";
        if (json) {
            tprintf(&t,
                    "%s\n  {\"name\": \"%s\", \"id\": \"%016" PRIx64
                    "\", \"addr\": \"%s\", \"role\": \"%s\", \"voter\": %s, "
                    "\"leader\": %s, \"self\": %s, \"reachable\": %s, "
                    "\"match_index\": ",
                    i > 0 ? "," : "", s->name, s->id, s->addr, role,
                    s->role == RAFT_VOTER ? "true" : "false",
                    s->id == leader ? "true" : "false",
                    s->id == n->id ? "true" : "false",
                    reachable ? "true" : "false");
            if (match >= 0) {
                tprintf(&t, "%" PRId64 "}", match);
            } else {
                tprintf(&t, "null}");
            }
            continue;
        }
        char m[24];
        if (match >= 0) {
            snprintf(m, sizeof(m), "%" PRId64, match);
        } else {
            snprintf(m, sizeof(m), "-");
        }
        tprintf(&t, "%-12s %016" PRIx64 " %-22s %-7s %-6s %-9s %s\n", s->name,
                s->id, s->addr[0] != '\0' ? s->addr : "-", role,
                s->id == leader ? "*" : "", reachable ? "yes" : "no", m);
    }
    if (json) {
        tprintf(&t, "\n]}\n");
    } else {
        tprintf(&t,
                "cluster %016" PRIx64
                ": %u voters, quorum %u, leader %s; "
                "seen from %s (%s)%s\n",
                n->cluster_id, voters, voters / 2 + 1,
                lname != NULL ? lname : "(none)", n->name, role_of(n),
                raft_role(n->raft) == RAFT_LEADER
                    ? ""
                    : "; match indexes are known on the leader");
    }
    return text_end(&t, out, len);
}

int node_leader_text(struct node* n, char** out, size_t* len)
{
    struct text t;
    const char* leader = leader_name(n);

    if (text_begin(&t) != 0) {
        return -ENOMEM;
    }
    tprintf(&t, "%s\n", leader != NULL ? leader : "");
    return text_end(&t, out, len);
}

int node_status_text(struct node* n, char** out, size_t* len)
{
    struct text t;
    struct store_stats ss;
    const struct raft_conf* c = raft_conf_current(n->raft);
    const char* leader = leader_name(n);

    if (text_begin(&t) != 0) {
        return -ENOMEM;
    }
    store_get_stats(n->store, &ss);
    tprintf(&t,
            "name:        %s\nrole:        %s\nterm:        %" PRIu64
            "\nleader:      %s\n",
            n->name, role_of(n), raft_current_term(n->raft),
            leader != NULL ? leader : "(none)");
    tprintf(&t,
            "commit:      %" PRIu64 "\napplied:     %" PRIu64
            "\nrevision:    %" PRIu64 "\nkeys:        %" PRIu64
            "\ndb bytes:    %" PRIu64 "\nquorum:      %u of %u voters\n",
            raft_commit_index(n->raft), ss.applied_index, ss.revision, ss.keys,
            ss.db_bytes, raft_conf_voters(c) / 2 + 1, raft_conf_voters(c));
    if (n->status_extra != NULL) {
        char extra[512];
        extra[0] = '\0';
        n->status_extra(n->status_extra_data, false, extra, sizeof(extra));
        tprintf(&t, "%s", extra);
    }
    tprintf(&t, "members:\n");
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_server* s = &c->servers[i];
        tprintf(&t, "  %-12s %-22s %-7s%s\n", s->name,
                s->addr[0] != '\0' ? s->addr : "-",
                s->role == RAFT_VOTER ? "voter" : "learner",
                s->id == raft_leader(n->raft) ? " leader" : "");
    }
    return text_end(&t, out, len);
}
