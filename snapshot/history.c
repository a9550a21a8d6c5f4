/* history.c - named snapshots as seen by readers: the list kept by the
 * store (replicated through STORE_OP_SNAP_CREATE / SNAP_DROP). */
#include <assert.h>
#include <errno.h>

#include "../store/store_int.h"
#include "snapshot.h"

static void info_of(const struct store_snap* sn, struct snap_info* out)
{
    memset(out, 0, sizeof(*out));
    size_t len = strlen(sn->name);
    assert(len < sizeof(out->name));
    memcpy(out->name, sn->name, len);
    out->revision = sn->revision;
    out->ctime_ns = sn->ctime_ns;
}

int snap_list(struct store* st,
              int (*cb)(void* data, const struct snap_info* s),
              void* data)
{
    assert(st != NULL && cb != NULL);
    for (size_t i = 0; i < st->s.nsnaps; i++) {
        struct snap_info info;
        info_of(&st->s.snaps[i], &info);
        int rv = cb(data, &info);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

int snap_get(struct store* st, const char* name, struct snap_info* out)
{
    assert(st != NULL && name != NULL && out != NULL);
    const struct store_snap* sn = store__snap_find(&st->s, name, strlen(name));
    if (sn == NULL) {
        return -ENOENT;
    }
    info_of(sn, out);
    return 0;
}
