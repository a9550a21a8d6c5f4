/* identity.c - node ids, cluster ids and the identity file (identity.h). */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "../../raft/util/datadir.h"
#include "../../raft/util/fileio.h"

#define IDENTITY_HASH_SEED 14695981039346656037ULL

static uint64_t fnv1a(const void* p, size_t len, uint64_t h)
{
    const unsigned char* b = p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

raft_id identity_node_id(const char* name)
{
    uint64_t h = fnv1a(name, strlen(name), IDENTITY_HASH_SEED);
    return h != 0 ? h : 1;
}

int identity_parse_cluster(const char* list,
                           struct node_peer* peers,
                           unsigned* n)
{
    char buf[IDENTITY_LIST_MAX];
    char* save = NULL;

    if (strlen(list) >= sizeof(buf)) {
        return -ENAMETOOLONG;
    }
    strcpy(buf, list);
    *n = 0;
    for (char* tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        char* eq = strchr(tok, '=');
        if (eq == NULL || eq == tok || eq[1] == '\0' ||
            *n >= RAFT_SERVERS_MAX) {
            return -EINVAL;
        }
        *eq = '\0';
        struct node_peer* p = &peers[(*n)++];
        if (strlen(tok) >= sizeof(p->name) ||
            strlen(eq + 1) >= sizeof(p->addr)) {
            return -ENAMETOOLONG;
        }
        strcpy(p->name, tok);
        strcpy(p->addr, eq + 1);
    }
    return *n > 0 ? 0 : -EINVAL;
}

int identity_initial(const char* name,
                     const struct node_peer* peers,
                     unsigned n,
                     struct raft_conf* conf)
{
    bool member = n == 0;

    memset(conf, 0, sizeof(*conf));
    if (n == 0) {
        conf->n = 1;
        conf->servers[0].id = identity_node_id(name);
        conf->servers[0].role = RAFT_VOTER;
        snprintf(conf->servers[0].name, RAFT_NAME_MAX, "%s", name);
        return 0;
    }
    for (unsigned i = 0; i < n && i < RAFT_SERVERS_MAX; i++) {
        struct raft_server* s = &conf->servers[conf->n++];
        s->id = identity_node_id(peers[i].name);
        s->role = RAFT_VOTER;
        snprintf(s->name, RAFT_NAME_MAX, "%s", peers[i].name);
        snprintf(s->addr, RAFT_ADDR_MAX, "%s", peers[i].addr);
        member = member || strcmp(peers[i].name, name) == 0;
    }
    return member ? 0 : -EINVAL;
}

bool identity_makes_cluster_id(const char* name,
                               const struct node_peer* peers,
                               unsigned n)
{
    return n == 0 || strcmp(peers[0].name, name) == 0;
}

int identity_new_cluster_id(uint64_t* cluster_id)
{
    uint64_t v = 0;
    while (v == 0) {
        ssize_t r = getrandom(&v, sizeof(v), 0);
        if (r < 0 && errno != EINTR) {
            return -errno;
        }
        if (r != (ssize_t)sizeof(v)) {
            v = 0;
        }
    }
    *cluster_id = v;
    return 0;
}

int identity_write(const char* dir,
                   const char* name,
                   uint64_t cluster_id,
                   const char* initial)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    util_datadir_path(path, sizeof(path), dir, DATADIR_IDENTITY);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE* f = fopen(tmp, "w");
    if (f == NULL) {
        return -errno;
    }
    fprintf(f,
            "quorumfs-identity 1\nname=%s\nid=%016" PRIx64
            "\ncluster=%016" PRIx64 "\n",
            name, identity_node_id(name), cluster_id);
    if (initial != NULL && initial[0] != '\0') {
        fprintf(f, "initial=%s\n", initial);
    }
    int rv = fflush(f) == 0 && fsync(fileno(f)) == 0 ? 0 : -errno;
    fclose(f);
    if (rv == 0 && rename(tmp, path) != 0) {
        rv = -errno;
    }
    return rv != 0 ? rv : util_fsync_dir(dir);
}

int identity_read(const char* dir,
                  char* name,
                  size_t name_cap,
                  raft_id* id,
                  uint64_t* cluster_id,
                  char* initial,
                  size_t initial_cap)
{
    char path[PATH_MAX], line[IDENTITY_LIST_MAX + 16];
    util_datadir_path(path, sizeof(path), dir, DATADIR_IDENTITY);
    FILE* f = fopen(path, "r");
    if (f == NULL) {
        return -errno;
    }
    name[0] = '\0';
    if (initial != NULL && initial_cap > 0) {
        initial[0] = '\0';
    }
    *id = *cluster_id = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "name=", 5) == 0) {
            snprintf(name, name_cap, "%s", line + 5);
        } else if (strncmp(line, "id=", 3) == 0) {
            *id = strtoull(line + 3, NULL, 16);
        } else if (strncmp(line, "cluster=", 8) == 0) {
            *cluster_id = strtoull(line + 8, NULL, 16);
        } else if (strncmp(line, "initial=", 8) == 0 && initial != NULL &&
                   initial_cap > 0) {
            snprintf(initial, initial_cap, "%s", line + 8);
        }
    }
    fclose(f);
    return 0;
}

int identity_format_cluster(const struct node_peer* peers,
                            unsigned n,
                            char* out,
                            size_t cap)
{
    size_t pos = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < n; i++) {
        int k = snprintf(out + pos, cap - pos, "%s%s=%s", i > 0 ? "," : "",
                         peers[i].name, peers[i].addr);
        if (k < 0 || (size_t)k >= cap - pos) {
            out[0] = '\0';
            return -ENAMETOOLONG;
        }
        pos += (size_t)k;
    }
    return 0;
}
