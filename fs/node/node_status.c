/* node_status.c - the node's state as JSON and text, for /.cluster/ files
 * and the control socket (DESIGN §7). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../raft/tls.h"
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

const char* node_role_name(struct node* n)
{
    return role_of(n);
}

const char* node_leader_name(struct node* n)
{
    return leader_name(n);
}

/* A member's health as seen from this node: on the leader from the core's
 * progress (answered within an election timeout, match index, time since
 * last heard), elsewhere from the transport (connected or not). */
struct member_health {
    const struct raft_server* s;
    bool self;
    bool leader;
    bool reachable;
    int64_t match;    /* -1: unknown here */
    int64_t lag;      /* entries behind the leader's log (on a follower,
                         for itself: entries the leader has committed that
                         it has not applied); -1: unknown */
    int64_t heard_ms; /* ms since the leader last heard from it; -1 */
};

struct health {
    bool from_leader;
    unsigned members, reachable, voters, voters_reachable, quorum;
    const char* state; /* healthy | degraded | unavailable */
    const char* why;   /* for unavailable */
};

static void member_health(struct node* n,
                          const struct raft_server* s,
                          struct member_health* m)
{
    raft_index match = 0;
    uint64_t heard = 0;
    bool leader = raft_role(n->raft) == RAFT_LEADER;

    memset(m, 0, sizeof(*m));
    m->s = s;
    m->self = s->id == n->id;
    m->leader = s->id == raft_leader(n->raft);
    m->match = m->lag = m->heard_ms = -1;
    if (m->self) {
        m->reachable = true;
        m->match = (int64_t)raft_last_index(n->raft);
        raft_index lc = raft_leader_commit_index(n->raft);
        raft_index applied = store_applied_index(n->store);
        if (leader) {
            m->lag = 0;
        } else if (lc != 0) {
            m->lag = lc > applied ? (int64_t)(lc - applied) : 0;
        }
    } else if (leader) {
        if (raft_peer_progress(n->raft, s->id, &match, &m->reachable) == 0) {
            m->match = (int64_t)match;
            raft_index last = raft_last_index(n->raft);
            m->lag = last > match ? (int64_t)(last - match) : 0;
        }
        if (raft_peer_last_heard(n->raft, s->id, &heard) == 0) {
            m->heard_ms = (int64_t)heard;
        }
    } else if (n->transport != NULL) {
        m->reachable = transport_connected(n->transport, s->id);
    }
}

static void health_of(struct node* n, struct health* h)
{
    const struct raft_conf* c = raft_conf_current(n->raft);
    struct member_health m;

    memset(h, 0, sizeof(*h));
    h->from_leader = raft_role(n->raft) == RAFT_LEADER;
    h->members = c->n;
    h->voters = raft_conf_voters(c);
    h->quorum = h->voters / 2 + 1;
    for (unsigned i = 0; i < c->n; i++) {
        member_health(n, &c->servers[i], &m);
        if (m.reachable) {
            h->reachable++;
            h->voters_reachable += c->servers[i].role == RAFT_VOTER ? 1 : 0;
        }
    }
    if (raft_leader(n->raft) == 0) {
        h->state = "unavailable";
        h->why = "no leader known";
    } else if (h->voters_reachable < h->quorum) {
        h->state = "unavailable";
        h->why = "fewer voters reachable than a quorum";
    } else if (h->reachable < h->members) {
        h->state = "degraded";
    } else {
        h->state = "healthy";
    }
}

static void member_json(struct node* n,
                        struct text* t,
                        const struct raft_server* s)
{
    struct member_health m;

    member_health(n, s, &m);
    tprintf(t,
            "{\"name\": \"%s\", \"id\": \"%016" PRIx64
            "\", \"addr\": \"%s\", \"voter\": %s, \"leader\": %s, "
            "\"self\": %s, \"reachable\": %s, \"match_index\": %" PRIu64,
            s->name, s->id, s->addr, s->role == RAFT_VOTER ? "true" : "false",
            m.leader ? "true" : "false", m.self ? "true" : "false",
            m.reachable ? "true" : "false",
            m.match >= 0 ? (uint64_t)m.match : 0);
    if (m.lag >= 0) {
        tprintf(t, ", \"lag_entries\": %" PRId64, m.lag);
    } else {
        tprintf(t, ", \"lag_entries\": null");
    }
    if (m.heard_ms >= 0) {
        tprintf(t, ", \"last_heard_ms\": %" PRId64 "}", m.heard_ms);
    } else {
        tprintf(t, ", \"last_heard_ms\": null}");
    }
}

/* s as a JSON string (quotes included). */
static void json_string(struct text* t, const char* s)
{
    tprintf(t, "\"");
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            tprintf(t, "\\%c", ch);
        } else if (ch < 0x20) {
            tprintf(t, "\\u%04x", ch);
        } else {
            tprintf(t, "%c", ch);
        }
    }
    tprintf(t, "\"");
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
    /* The peer listener and its security (`member add` prints the flags a
     * new member needs from them): "none" without a listener. */
    const struct tls_config* tls =
        n->own_tls != NULL ? n->own_tls : n->opts.peer_tls;
    if (n->transport != NULL) {
        tprintf(&t, "  \"peer_listen\": \"%s\",\n", n->listen_addr);
    } else {
        tprintf(&t, "  \"peer_listen\": null,\n");
    }
    tprintf(&t, "  \"peer_security\": \"%s\",\n",
            n->transport == NULL ? "none"
            : tls != NULL        ? tls_config_mode(tls)
                                 : "insecure");
    /* Absolute: `quorumfs status MOUNTPOINT` finds the control socket by
     * it (fs/cli/ctl_client.c). */
    char dir[PATH_MAX];
    tprintf(&t, "  \"data_dir\": ");
    json_string(&t, realpath(n->data_dir, dir) != NULL ? dir : n->data_dir);
    tprintf(&t, ",\n");
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
    tprintf(&t,
            "  \"last_index\": %" PRIu64
            ",\n  \"catching_up\": %s,\n  \"lost_vote\": %s,\n",
            raft_last_index(n->raft),
            raft_catching_up(n->raft) ? "true" : "false",
            raft_lost_vote(n->raft) ? "true" : "false");
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
                ", \"disconnects\": %" PRIu64
                ", \"refused_handshakes\": %" PRIu64 ", \"evicted\": %" PRIu64
                ", \"rate_limited\": %" PRIu64
                ", \"provisional_dropped\": %" PRIu64 "},\n",
                ts.frames_in, ts.frames_out, ts.rejected_frames,
                ts.dropped_queue_full, ts.connects, ts.disconnects,
                ts.refused_handshakes, ts.evicted, ts.rate_limited,
                ts.provisional_dropped);
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
    struct health h;
    health_of(n, &h);
    tprintf(&t,
            "  \"health\": {\"state\": \"%s\", \"seen_from\": \"%s\", "
            "\"members\": %u, \"reachable\": %u, \"voters\": %u, "
            "\"voters_reachable\": %u, \"quorum\": %u},\n",
            h.state, h.from_leader ? "leader" : "follower", h.members,
            h.reachable, h.voters, h.voters_reachable, h.quorum);
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
        struct member_health mh;
        member_health(n, s, &mh);
        int64_t match = mh.match;
        bool reachable = mh.reachable;
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

static void fmt_ms(char* buf, size_t cap, int64_t ms)
{
    if (ms < 0) {
        snprintf(buf, cap, "-");
    } else {
        snprintf(buf, cap, "%" PRId64 ".%" PRId64 " s ago", ms / 1000,
                 ms % 1000 / 100);
    }
}

static void health_line(struct text* t, const struct health* h)
{
    if (h->why != NULL) {
        tprintf(t,
                "%s (%s; %u of %u members reachable, quorum %u of %u "
                "voters)\n",
                h->state, h->why, h->reachable, h->members, h->quorum,
                h->voters);
    } else {
        tprintf(t, "%s (%u of %u members reachable, quorum %u)\n", h->state,
                h->reachable, h->members, h->quorum);
    }
}

int node_status_text(struct node* n, char** out, size_t* len)
{
    struct text t;
    struct store_stats ss;
    struct health h;
    const struct raft_conf* c = raft_conf_current(n->raft);
    const char* leader = leader_name(n);

    if (text_begin(&t) != 0) {
        return -ENOMEM;
    }
    store_get_stats(n->store, &ss);
    health_of(n, &h);
    tprintf(&t,
            "name:        %s\nrole:        %s\nterm:        %" PRIu64
            "\nleader:      %s\nhealth:      ",
            n->name, role_of(n), raft_current_term(n->raft),
            leader != NULL ? leader : "(none)");
    health_line(&t, &h);
    if (raft_lost_vote(n->raft)) {
        tprintf(&t,
                "vote:        LOST: this node was a voter before it lost "
                "its storage and does not vote; replace it (member "
                "remove, wipe, member add, promote)\n");
    }
    for (unsigned i = 0; i < c->n; i++) {
        struct member_health m;
        member_health(n, &c->servers[i], &m);
        if (!m.reachable) {
            char heard[32];
            fmt_ms(heard, sizeof(heard), m.heard_ms);
            tprintf(&t, "member %s: UNREACHABLE", m.s->name);
            if (m.heard_ms >= 0) {
                tprintf(&t, " (last heard %s)\n", heard);
            } else {
                tprintf(&t, " (not connected to %s)\n", n->name);
            }
        }
    }
    tprintf(&t,
            "commit:      %" PRIu64 "\napplied:     %" PRIu64
            "\nrevision:    %" PRIu64 "\nkeys:        %" PRIu64
            "\ndb bytes:    %" PRIu64 "\nquorum:      %u of %u voters\n",
            raft_commit_index(n->raft), ss.applied_index, ss.revision, ss.keys,
            ss.db_bytes, h.quorum, h.voters);
    if (n->status_extra != NULL) {
        char extra[512];
        extra[0] = '\0';
        n->status_extra(n->status_extra_data, false, extra, sizeof(extra));
        tprintf(&t, "%s", extra);
    }
    tprintf(&t, "members (seen from %s, %s):\n", n->name,
            h.from_leader ? "the leader"
                          : "not the leader: reachable means connected; its "
                            "own lag is what the leader committed that it "
                            "has not applied; the others' lag and last "
                            "heard are known on the leader");
    tprintf(&t, "  %-12s %-22s %-7s %-12s %-8s %s\n", "NAME", "ADDRESS", "ROLE",
            "STATE", "LAG", "LAST HEARD");
    for (unsigned i = 0; i < c->n; i++) {
        struct member_health m;
        char lag[24], heard[32];
        member_health(n, &c->servers[i], &m);
        const char* state = !m.reachable ? "UNREACHABLE"
                            : m.self     ? (m.leader ? "leader,self" : "self")
                            : m.leader   ? "leader"
                                         : "reachable";
        if (m.lag >= 0) {
            snprintf(lag, sizeof(lag), "%" PRId64, m.lag);
        } else {
            snprintf(lag, sizeof(lag), "-");
        }
        fmt_ms(heard, sizeof(heard), m.self ? -1 : m.heard_ms);
        tprintf(&t, "  %-12s %-22s %-7s %-12s %-8s %s\n", m.s->name,
                m.s->addr[0] != '\0' ? m.s->addr : "-",
                m.s->role == RAFT_VOTER ? "voter" : "learner", state, lag,
                heard);
    }
    return text_end(&t, out, len);
}

int node_health_text(struct node* n, char** out, size_t* len)
{
    struct text t;
    struct health h;
    const struct raft_conf* c = raft_conf_current(n->raft);
    const char* leader = leader_name(n);

    if (text_begin(&t) != 0) {
        return -ENOMEM;
    }
    health_of(n, &h);
    /* Line 1: STATE SEEN_FROM NODE LEADER MEMBERS REACHABLE VOTERS
     * VOTERS_REACHABLE QUORUM; then one line per member: NAME ADDR ROLE
     * REACHABLE(0|1) LEADER(0|1) SELF(0|1) LAG HEARD_MS (-1: unknown).
     * Tab-separated. */
    tprintf(&t, "%s\t%s\t%s\t%s\t%u\t%u\t%u\t%u\t%u\n", h.state,
            h.from_leader ? "leader" : "follower", n->name,
            leader != NULL ? leader : "-", h.members, h.reachable, h.voters,
            h.voters_reachable, h.quorum);
    for (unsigned i = 0; i < c->n; i++) {
        struct member_health m;
        member_health(n, &c->servers[i], &m);
        tprintf(&t, "%s\t%s\t%s\t%d\t%d\t%d\t%" PRId64 "\t%" PRId64 "\n",
                m.s->name, m.s->addr[0] != '\0' ? m.s->addr : "-",
                m.s->role == RAFT_VOTER ? "voter" : "learner",
                m.reachable ? 1 : 0, m.leader ? 1 : 0, m.self ? 1 : 0, m.lag,
                m.heard_ms);
    }
    return text_end(&t, out, len);
}
