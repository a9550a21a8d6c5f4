/* node_boot.c - opening a node's data dir (lock, identity, log, db),
 * starting the raft core and the transport, following membership.
 *
 * Data dir layout (docs/architecture.md):
 *   LOCK          flock()ed by the running node; holds its pid
 *   identity      name, node id, cluster id, initial members (text)
 *   log/          raft log segments + meta (raft/log.c)
 *   db            the store's append-only db file (store/)
 *   ctl.sock      control socket (mode 0600)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../raft/util/datadir.h"
#include "../../raft/tls.h"
#include "../../raft/util/fileio.h"
#include "identity.h"
#include "node_state_internal.h"

/* path and its missing parents, as directories (mode); path must end up
 * a directory. */
static int mkdir_p(const char* path, mode_t mode)
{
    int rv = util_mkdir_parents(path, mode);
    if (rv != 0) {
        return rv;
    }
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        return -errno;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        return -errno;
    }
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int take_lock(struct node* n)
{
    char path[PATH_MAX + 8];
    char pid[32];

    util_datadir_path(path, sizeof(path), n->data_dir, DATADIR_LOCK);
    n->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (n->lock_fd < 0) {
        int err = -errno;
        node__log(n, RAFT_TRACE_ERROR, "cannot open %s: %s", path,
                  strerror(-err));
        return err;
    }
    if (flock(n->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        ssize_t r = pread(n->lock_fd, pid, sizeof(pid) - 1, 0);
        pid[r > 0 ? r : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0'; /* the file ends with one */
        node__log(n, RAFT_TRACE_ERROR,
                  "data dir %s is in use by another quorumfs node (pid %s)",
                  n->data_dir, pid[0] != '\0' ? pid : "unknown");
        close(n->lock_fd);
        n->lock_fd = -1;
        return -EBUSY;
    }
    int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(n->lock_fd, 0) != 0 ||
        pwrite(n->lock_fd, pid, (size_t)len, 0) != len) {
        node__log(n, RAFT_TRACE_WARN, "cannot write pid to %s", path);
    }
    return 0;
}

/* The data dir's identity: its name must be ours; its cluster id is kept
 * (a value made when the cluster was bootstrapped, or learned at the first
 * handshake), and --cluster-id must agree with it. A data dir without one
 * gets one: --cluster-id, a new random id when this node bootstraps a new
 * cluster and is the first member of its list (or alone), else 0 (learned
 * from the first peer that knows it: node__cluster_learned). */
static int check_identity(struct node* n)
{
    char name[256];
    raft_id id;
    uint64_t cluster;
    uint64_t flag = n->opts.cluster_id;

    int rv = identity_read(n->data_dir, name, sizeof(name), &id, &cluster,
                           n->identity_list, sizeof(n->identity_list));
    if (rv == -ENOENT) {
        rv =
            identity_format_cluster(n->opts.initial, n->opts.n_initial,
                                    n->identity_list, sizeof(n->identity_list));
        if (rv != 0) {
            return rv;
        }
        if (n->opts.n_initial == 0) {
            strcpy(n->identity_list, IDENTITY_LIST_SINGLE);
        }
        n->cluster_id = flag;
        if (flag == 0 && !n->opts.cluster_existing &&
            identity_makes_cluster_id(n->name, n->opts.initial,
                                      n->opts.n_initial)) {
            rv = identity_new_cluster_id(&n->cluster_id);
            if (rv != 0) {
                return rv;
            }
            node__log(n, RAFT_TRACE_INFO,
                      "new cluster: made cluster id %016" PRIx64,
                      n->cluster_id);
        }
        return identity_write(n->data_dir, n->name, n->cluster_id,
                              n->identity_list);
    }
    if (rv != 0) {
        return rv;
    }
    if (n->identity_list[0] != '\0') {
        struct node_peer peers[RAFT_SERVERS_MAX];
        unsigned k = 0;
        bool single = strcmp(n->identity_list, IDENTITY_LIST_SINGLE) == 0;
        if ((!single &&
             identity_parse_cluster(n->identity_list, peers, &k) != 0) ||
            identity_initial(n->name, peers, k, &n->recorded_conf) != 0) {
            node__log(n, RAFT_TRACE_ERROR,
                      "data dir %s: bad member list in its identity file: "
                      "refusing to start",
                      n->data_dir);
            return -EINVAL;
        }
        n->have_recorded_conf = true;
    }
    if (strcmp(name, n->name) != 0 || id != n->id) {
        node__log(n, RAFT_TRACE_ERROR,
                  "data dir %s belongs to node '%s', not '%s' (--name): "
                  "refusing to start",
                  n->data_dir, name, n->name);
        return -EINVAL;
    }
    if (cluster != 0 && flag != 0 && cluster != flag) {
        node__log(n, RAFT_TRACE_ERROR,
                  "data dir %s belongs to cluster %016" PRIx64
                  ", --cluster-id gives %016" PRIx64 ": refusing to start",
                  n->data_dir, cluster, flag);
        return -EINVAL;
    }
    n->cluster_id = cluster != 0 ? cluster : flag;
    if (cluster == 0 && flag != 0) {
        return identity_write(n->data_dir, n->name, flag, n->identity_list);
    }
    return 0;
}

int node__cluster_learned(struct node* n, uint64_t cluster_id)
{
    int rv = identity_write(n->data_dir, n->name, cluster_id, n->identity_list);
    if (rv != 0) {
        node__log(n, RAFT_TRACE_ERROR, "cannot record cluster id in %s: %s",
                  n->data_dir, strerror(-rv));
        return rv;
    }
    n->cluster_id = cluster_id;
    node__log(n, RAFT_TRACE_INFO, "learned cluster id %016" PRIx64 " (stored)",
              cluster_id);
    return 0;
}

/* --initial-cluster against the configuration the data dir records.
 * While the log holds no membership change of its own (conf index 0: the
 * configuration is the one the data dir was made with), the list must
 * name the same members at the same addresses. Afterwards a member only
 * one of the two names, or one at another address (removed and added
 * again elsewhere under its name), is the history of membership changes,
 * not a conflict: the recorded configuration wins, with a warning, so
 * that a member killed around a change starts again with the flags it
 * had (issue 13). */
static int check_conf_conflict(struct node* n, const struct raft_conf* c)
{
    bool changed = raft_conf_index(n->raft) != 0;
    for (unsigned i = 0; i < n->opts.n_initial; i++) {
        const struct node_peer* p = &n->opts.initial[i];
        const struct raft_server* s =
            raft_conf_get(c, identity_node_id(p->name));
        if (s == NULL || s->addr[0] == '\0' || strcmp(s->addr, p->addr) == 0) {
            continue;
        }
        if (changed) {
            node__log(n, RAFT_TRACE_WARN,
                      "--initial-cluster gives %s=%s, but the configuration "
                      "in data dir %s has %s=%s since a membership change: "
                      "using the configuration (update the start command: "
                      "`quorumfs member list` on a running member)",
                      p->name, p->addr, n->data_dir, s->name, s->addr);
            continue;
        }
        node__log(n, RAFT_TRACE_ERROR,
                  "--initial-cluster gives %s=%s, but the configuration "
                  "in data dir %s has %s=%s: refusing to start (give "
                  "the current members: `quorumfs member list` on a "
                  "running member)",
                  p->name, p->addr, n->data_dir, s->name, s->addr);
        return -EINVAL;
    }
    if (n->opts.n_initial == 0 || changed) {
        return 0;
    }
    bool same = c->n == n->opts.n_initial;
    for (unsigned i = 0; same && i < n->opts.n_initial; i++) {
        same =
            raft_conf_get(c, identity_node_id(n->opts.initial[i].name)) != NULL;
    }
    if (!same) {
        char have[IDENTITY_LIST_MAX];
        size_t pos = 0;
        have[0] = '\0';
        for (unsigned i = 0; i < c->n && pos < sizeof(have); i++) {
            int k = snprintf(have + pos, sizeof(have) - pos, "%s%s",
                             i > 0 ? "," : "", c->servers[i].name);
            pos += k > 0 ? (size_t)k : 0;
        }
        node__log(n, RAFT_TRACE_ERROR,
                  "--initial-cluster names other members than data dir %s "
                  "was made with (%s), and no membership change was made "
                  "since: refusing to start (give the list it was started "
                  "with; change the membership with `quorumfs member`)",
                  n->data_dir, have);
        return -EINVAL;
    }
    return 0;
}

/* A node whose configuration has other members and gives it a peer
 * address is one they reach there (a cluster's member, or a single node
 * grown with `quorumfs member update` and `member add`): started without
 * --listen-peer it would never hear them. It is refused, naming the flags
 * to add: the peer security is the operator's to give again (the data dir
 * records no secret and no path to one). Alone in its configuration, it
 * may run without a listener. */
static int check_listener(struct node* n, const struct raft_conf* c)
{
    const struct raft_server* self = raft_conf_get(c, n->id);
    if (n->opts.listen_peer != NULL || c->n < 2 || self == NULL ||
        self->addr[0] == '\0') {
        return 0;
    }
    char list[IDENTITY_LIST_MAX];
    size_t pos = 0;
    list[0] = '\0';
    for (unsigned i = 0; i < c->n && pos < sizeof(list); i++) {
        int k =
            snprintf(list + pos, sizeof(list) - pos, "%s%s=%s",
                     i > 0 ? "," : "", c->servers[i].name,
                     c->servers[i].addr[0] != '\0' ? c->servers[i].addr : "?");
        pos += k > 0 ? (size_t)k : 0;
    }
    node__log(n, RAFT_TRACE_ERROR,
              "data dir %s records this node as %s=%s, a member of the "
              "cluster %s: started without --listen-peer it could not hear "
              "them; refusing to start (give --listen-peer %s "
              "--initial-cluster %s and the peer security flags: "
              "--peer-secret-file FILE, or --peer-cert-file, "
              "--peer-key-file and --peer-trusted-ca-file, or "
              "--peer-insecure)",
              n->data_dir, self->name, self->addr, list, self->addr, list);
    return -EINVAL;
}

/* Members of c with no peer address get the one --initial-cluster gives
 * them: a single node (made without a list, so its configuration names it
 * with no address) restarted with a peer listener, whose configuration is
 * the recorded one or a snapshot's. The address reaches the others with
 * the first membership change, which encodes the whole configuration. */
static void fill_addrs(const struct node* n, struct raft_conf* c)
{
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_server* f =
            raft_conf_get(&n->initial_conf, c->servers[i].id);
        if (c->servers[i].addr[0] == '\0' && f != NULL) {
            snprintf(c->servers[i].addr, sizeof(c->servers[i].addr), "%s",
                     f->addr);
        }
    }
}

/* DATA_DIR/CATCHING-UP: this node lost its storage (or never had it) and
 * joins a cluster that exists: it must not vote before it has caught up
 * (raft_options.catch_up_first, docs/raft.md). The file outlives restarts
 * until then. Order: write -> fsync(file) -> fsync(dir), before the core
 * starts, so no vote can go out without it. */
static int catch_up_marker(struct node* n, bool create)
{
    char path[PATH_MAX + 16];
    util_datadir_path(path, sizeof(path), n->data_dir, DATADIR_CATCHING_UP);
    if (!create) {
        n->catching_up = access(path, F_OK) == 0;
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fsync(fd) != 0) {
        int err = -errno;
        node__log(n, RAFT_TRACE_ERROR, "cannot write %s: %s", path,
                  strerror(-err));
        if (fd >= 0) {
            close(fd);
        }
        return err;
    }
    close(fd);
    (void)util_fsync_dir(n->data_dir);
    n->catching_up = true;
    return 0;
}

void node__catch_up_check(struct node* n)
{
    if (!n->catching_up || n->raft == NULL || raft_catching_up(n->raft) ||
        raft_lost_vote(n->raft)) {
        /* Lost its vote: the marker stays, so a restart checks again. */
        return;
    }
    char path[PATH_MAX + 16];
    util_datadir_path(path, sizeof(path), n->data_dir, DATADIR_CATCHING_UP);
    if (unlink(path) != 0 && errno != ENOENT) {
        node__log(n, RAFT_TRACE_WARN, "cannot remove %s: %s", path,
                  strerror(errno));
        return;
    }
    n->catching_up = false;
    node__log(n, RAFT_TRACE_INFO,
              "caught up with the cluster (commit %" PRIu64
              "): this node votes again",
              raft_commit_index(n->raft));
}

int node__open_disk(struct node* n)
{
    char path[PATH_MAX + 16], db[PATH_MAX + 16];
    struct store_recovery rec;
    struct rlog_options lo;
    int rv;

    n->lock_fd = -1;
    snprintf(n->data_dir, sizeof(n->data_dir), "%s", n->opts.data_dir);
    snprintf(n->name, sizeof(n->name), "%s", n->opts.name);
    n->id = identity_node_id(n->name);
    rv = identity_initial(n->name, n->opts.initial, n->opts.n_initial,
                          &n->initial_conf);
    if (rv != 0) {
        node__log(n, RAFT_TRACE_ERROR,
                  "name '%s' is not in --initial-cluster: refusing to start",
                  n->name);
        return rv;
    }
    node__names_learn(&n->initial_conf);
    rv = mkdir_p(n->data_dir, 0700);
    if (rv != 0) {
        node__log(n, RAFT_TRACE_ERROR, "cannot create data dir %s: %s",
                  n->data_dir, strerror(-rv));
        return rv;
    }
    rv = take_lock(n);
    if (rv != 0) {
        return rv;
    }
    rv = check_identity(n);
    if (rv != 0) {
        goto err_after_lock;
    }
    n->opts.store.tracer =
        (struct store_tracer){.data = &n->logger.store,
                              .emit = node__store_tracer_emit,
                              .level = n->opts.log_level};
    util_datadir_path(db, sizeof(db), n->data_dir, DATADIR_DB);
    memset(&rec, 0, sizeof(rec));
    n->opts.store.keep_torn_tail = true; /* dropped by node__check_disk */
    rv = store_open(db, &n->opts.store, &n->store, &rec);
    if (rv != 0) {
        node__log(n, RAFT_TRACE_ERROR, "cannot open db %s: %s%s%s", db,
                  strerror(-rv), rec.torn_reason[0] != '\0' ? ": " : "",
                  rec.torn_reason);
        goto err_after_lock;
    }
    rlog_options_default(&lo);
    lo.tracer = (struct raft_tracer){.data = &n->logger.rlog,
                                     .emit = node__tracer_emit,
                                     .level = n->opts.log_level};
    util_datadir_path(path, sizeof(path), n->data_dir, DATADIR_LOG);
    rv = rlog_open(path, &lo, &n->log, &n->loaded);
    if (rv != 0) {
        node__log(n, RAFT_TRACE_ERROR, "cannot open raft log %s: %s", path,
                  strerror(-rv));
        goto err_after_store;
    }
    if (n->loaded.torn_bytes > 0) {
        node__log(n, RAFT_TRACE_WARN,
                  "raft log %s: dropped a torn tail of %" PRIu64 " bytes", path,
                  n->loaded.torn_bytes);
    }
    rv = node__check_disk(n, db, &rec, &n->loaded);
    if (rv != 0) {
        goto err_after_log;
    }
    return 0;

err_after_log:
    rlog_close(n->log);
    n->log = NULL;

err_after_store:
    store_close(n->store);
    n->store = NULL;
err_after_lock:
    close(n->lock_fd);
    n->lock_fd = -1;
    return rv;
}

void node__close_disk(struct node* n)
{
    if (n->log != NULL) {
        rlog_close(n->log);
        n->log = NULL;
    }
    if (n->store != NULL) {
        store_close(n->store);
        n->store = NULL;
    }
    if (n->lock_fd >= 0) {
        close(n->lock_fd); /* releases the flock */
        n->lock_fd = -1;
    }
}

int node__start_raft(struct node* n)
{
    struct raft_options ro;
    struct raft_conf conf;
    struct timespec ts;
    int rv;

    raft_options_default(&ro);
    clock_gettime(CLOCK_REALTIME, &ts);
    ro.id = n->id;
    ro.seed = n->id ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    ro.heartbeat_ms = n->opts.heartbeat_ms;
    ro.election_ms = n->opts.election_ms;
    ro.tracer = (struct raft_tracer){.data = &n->logger.raft,
                                     .emit = node__tracer_emit,
                                     .level = n->opts.log_level};
    n->bootstrapped = n->loaded.fresh && !n->opts.cluster_existing;
    rv = catch_up_marker(n, n->loaded.fresh && n->opts.cluster_existing &&
                                n->initial_conf.n > 1);
    if (rv != 0) {
        return rv;
    }
    if (n->catching_up) {
        node__log(n, RAFT_TRACE_WARN,
                  "this node starts with no log of its own in a cluster "
                  "that exists: it will not vote before it has caught up "
                  "with a leader");
    }
    ro.catch_up_first = n->catching_up;
    n->raft = raft_new(&ro);
    if (n->raft == NULL) {
        return -ENOMEM;
    }
    rv = node__driver_attach(n);
    if (rv != 0) {
        node__raft_free(n);
        return rv;
    }
    conf = n->initial_conf;
    uv_update_time(n->loop);
    if (n->bootstrapped) {
        rv = raft_bootstrap(n->raft, &conf, uv_now(n->loop));
        n->applied_conf = conf;
    } else {
        struct raft_snapshot_meta snap = n->loaded.snap;
        if (snap.conf.n == 0 && snap.index == 0) {
            /* the log has no configuration of its own */
            snap.conf = n->have_recorded_conf ? n->recorded_conf : conf;
        }
        fill_addrs(n, &snap.conf);
        /* The recorded commit may lag (it is written lazily) or, after a
         * torn tail, point past what survived: clamp it to what we have. */
        struct raft_hard_state hs = n->loaded.hs;
        raft_index last = snap.index + n->loaded.n_entries;
        if (hs.commit < snap.index) {
            hs.commit = snap.index;
        }
        if (hs.commit > last) {
            hs.commit = last;
        }
        rv = raft_restore(n->raft, &hs, &snap, n->loaded.entries,
                          n->loaded.n_entries, uv_now(n->loop));
        if (rv == 0 && (check_conf_conflict(n, raft_conf_current(n->raft)) ||
                        check_listener(n, raft_conf_current(n->raft)))) {
            node__raft_free(n);
            return -EINVAL;
        }
        n->applied_term = snap.term;
        n->applied_conf = snap.conf;
        n->applied_conf_index = snap.conf_index;
        n->last_compact_index = snap.index;
        n->need_image = snap.index > 0;
        n->restored_commit =
            n->loaded.hs.commit > snap.index ? n->loaded.hs.commit : snap.index;
        node__log(n, RAFT_TRACE_INFO,
                  "restored term %" PRIu64 ", commit %" PRIu64
                  ", snapshot %" PRIu64 ", %u log entries, db applied %" PRIu64,
                  n->loaded.hs.term, n->loaded.hs.commit, snap.index,
                  n->loaded.n_entries, store_applied_index(n->store));
    }
    if (rv != 0) {
        node__log(n, RAFT_TRACE_ERROR, "raft start: %s", raft_strerror(rv));
        node__raft_free(n);
        return -EINVAL;
    }
    return 0; /* db and log were checked by node__check_disk */
}

static void on_peer_message(void* data, const struct raft_message* m)
{
    struct node* n = data;
    if (n->stopping || n->raft == NULL) {
        return;
    }
    struct raft_event ev = {.type = RAFT_EV_RECEIVE};
    ev.msg = m;
    node__step(n, &ev);
}

/* A peer restarted (a new incarnation in its HELLO): a leader probes it
 * again, so a log that went backwards is found at once. */
static void on_peer_restart(void* data, raft_id id)
{
    struct node* n = data;
    if (n->stopping || n->raft == NULL) {
        return;
    }
    struct raft_event ev = {.type = RAFT_EV_PEER_RESTARTED};
    ev.peer.id = id;
    node__step(n, &ev);
}

static int on_cluster_id(void* data, uint64_t cluster_id)
{
    struct node* n = data;
    if (n->stopping || n->cluster_id != 0) {
        return -EINVAL;
    }
    return node__cluster_learned(n, cluster_id);
}

/* The transport, listening on addr with tls (NULL: in the clear). */
static int start_transport(struct node* n,
                           const char* addr,
                           struct tls_config* tls)
{
    /* This process's incarnation: the wall clock at start, which differs
     * from the previous run's, mixed with the pid; never 0. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t inc = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
                   ((uint64_t)getpid() << 48);
    struct transport_options to = {
        .self = n->id,
        .cluster_id = n->cluster_id,
        .listen_addr = addr,
        .on_message = on_peer_message,
        .incarnation = inc != 0 ? inc : 1,
        .on_peer_restart = on_peer_restart,
        .on_cluster_id = on_cluster_id,
        .data = n,
        .tracer = {.data = &n->logger.transport,
                   .emit = node__tracer_emit,
                   .level = n->opts.log_level},
        .tls = tls,
        .name_id = identity_node_id,
    };
    int rv = transport_start(n->loop, &to, &n->transport);
    if (rv != 0) {
        n->transport = NULL;
        node__log(n, RAFT_TRACE_ERROR, "cannot listen on %s: %s", addr,
                  strerror(-rv));
        return rv;
    }
    snprintf(n->listen_addr, sizeof(n->listen_addr), "%s", addr);
    node__sync_peers(n);
    return 0;
}

int node__start_transport(struct node* n)
{
    if (n->opts.listen_peer == NULL) {
        return 0;
    }
    return start_transport(n, n->opts.listen_peer, n->opts.peer_tls);
}

int node_peer_listen(struct node* n, const char* addr, struct tls_config* tls)
{
    if (n->stopping || n->raft == NULL) {
        return -ESHUTDOWN;
    }
    if (n->transport != NULL) {
        return strcmp(n->listen_addr, addr) == 0 ? -EALREADY : -EEXIST;
    }
    if (strlen(addr) >= RAFT_ADDR_MAX) {
        return -ENAMETOOLONG;
    }
    int rv = start_transport(n, addr, tls);
    if (rv != 0) {
        return rv;
    }
    n->own_tls = tls;
    node__log(n, RAFT_TRACE_INFO,
              "peer listener started at run time on %s (%s)", addr,
              tls != NULL ? tls_config_mode(tls) : "insecure: no TLS");
    return 0;
}

const char* node_peer_addr(const struct node* n)
{
    return n->transport != NULL ? n->listen_addr : NULL;
}

void node__sync_peers(struct node* n)
{
    const struct raft_conf* c = raft_conf_current(n->raft);
    node__names_learn(c);
    if (n->transport == NULL) {
        return;
    }
    for (unsigned i = 0; i < c->n; i++) {
        if (c->servers[i].id != n->id && c->servers[i].addr[0] != '\0' &&
            transport_set_peer(n->transport, c->servers[i].id,
                               c->servers[i].name, c->servers[i].addr) == 0 &&
            raft_conf_get(&n->peers_conf, c->servers[i].id) == NULL &&
            n->peers_conf.n < RAFT_SERVERS_MAX) {
            n->peers_conf.servers[n->peers_conf.n++] = c->servers[i];
        }
    }
    node__drop_peers(n);
}

/* A member that left is dropped from the transport (its connections
 * close; from then on it is a provisional peer at most, whose messages
 * other than a leader's appends are dropped) once its removal is committed
 * here and it
 * is not the leader: a removed leader replicates until then, and the
 * acknowledgements it needs go back over those connections. */
void node__drop_peers(struct node* n)
{
    const struct raft_conf* c = raft_conf_current(n->raft);
    if (n->transport == NULL ||
        raft_commit_index(n->raft) < raft_conf_index(n->raft)) {
        return;
    }
    for (unsigned i = 0; i < n->peers_conf.n;) {
        raft_id id = n->peers_conf.servers[i].id;
        if (raft_conf_get(c, id) == NULL && id != raft_leader(n->raft)) {
            transport_remove_peer(n->transport, id);
            n->peers_conf.servers[i] = n->peers_conf.servers[--n->peers_conf.n];
        } else {
            i++;
        }
    }
}

void node__role_changed(struct node* n)
{
    raft_id leader = raft_leader(n->raft);
    if (leader != n->last_leader) {
        char now[NODE_NAME_BUF], was[NODE_NAME_BUF];
        const char* was_name = node__name(n->last_known_leader, was);
        if (leader != 0) {
            node__log(
                n, RAFT_TRACE_INFO,
                "leader is now %s%s at term %" PRIu64
                " (was %s; this node %s, commit index %" PRIu64 ")",
                node__name(leader, now), leader == n->id ? " (this node)" : "",
                raft_current_term(n->raft), was_name,
                raft_role_name(raft_role(n->raft)), raft_commit_index(n->raft));
            n->last_known_leader = leader;
        } else {
            node__log(n, RAFT_TRACE_INFO,
                      "no leader at term %" PRIu64
                      " (last leader %s; this "
                      "node %s, commit index %" PRIu64 ")",
                      raft_current_term(n->raft), was_name,
                      raft_role_name(raft_role(n->raft)),
                      raft_commit_index(n->raft));
        }
        n->last_leader = leader;
        n->leader_changed_since_propose = true;
        n->counters.leader_changes++;
    }
    if (leader != 0) {
        n->retry_pending = true; /* run by step() once the update is done */
    }
}
