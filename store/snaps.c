/* snaps.c - named snapshots as seen by readers (store_history.h): the list
 * kept in the replicated state (STORE_OP_SNAP_CREATE / SNAP_DROP). */
#include <assert.h>
#include <errno.h>

#include "store_internal.h"

_Static_assert(sizeof(((struct store_snap_info*)0)->name) > STORE_SNAP_NAME_MAX,
               "a snapshot name fits store_snap_info");

static void info_of(const struct store_snap* sn, struct store_snap_info* out)
{
    memset(out, 0, sizeof(*out));
    size_t len = strlen(sn->name);
    assert(len < sizeof(out->name));
    memcpy(out->name, sn->name, len);
    out->revision = sn->revision;
    out->ctime_ns = sn->ctime_ns;
}

int store_snap_list(struct store* st,
                    int (*cb)(void* data, const struct store_snap_info* s),
                    void* data)
{
    assert(st != NULL && cb != NULL);
    for (size_t i = 0; i < st->s.nsnaps; i++) {
        struct store_snap_info info;
        info_of(&st->s.snaps[i], &info);
        int rv = cb(data, &info);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

int store_snap_get(struct store* st,
                   const char* name,
                   struct store_snap_info* out)
{
    assert(st != NULL && name != NULL && out != NULL);
    const struct store_snap* sn = store__snap_find(&st->s, name, strlen(name));
    if (sn == NULL) {
        return -ENOENT;
    }
    info_of(sn, out);
    return 0;
}
