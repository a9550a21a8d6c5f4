/* datadir.c - paths in a data directory (datadir.h). */
#include "datadir.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>

int util_datadir_path(char* buf, size_t cap, const char* dir, const char* name)
{
    assert(buf != NULL && cap > 0 && dir != NULL && name != NULL);
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < cap ? 0 : -ENAMETOOLONG;
}
