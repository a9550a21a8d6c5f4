/* conf3.h - a membership of three servers for tests that need one to save
 * and read back (test_snapshot_file.c, and the fuzz seed generator
 * tests/fuzz/gen_seeds.c, which includes it by path): ids 100..102, names
 * n1..n3, addresses 127.0.0.1..3 on ports port0..port0+2, the third a
 * learner. Static inline, no test framework: both harnesses can use it. */
#ifndef QFS_TEST_CONF3_H
#define QFS_TEST_CONF3_H

#include <stdio.h>
#include <string.h>

#include "../../raft/raft.h"

static inline void test_conf3(struct raft_conf* c, unsigned port0)
{
    memset(c, 0, sizeof(*c));
    c->n = 3;
    for (unsigned i = 0; i < 3; i++) {
        c->servers[i].id = 100 + i;
        c->servers[i].role = i == 2 ? RAFT_LEARNER : RAFT_VOTER;
        snprintf(c->servers[i].name, RAFT_NAME_MAX, "n%u", i + 1);
        snprintf(c->servers[i].addr, RAFT_ADDR_MAX, "127.0.0.%u:%u", i + 1,
                 port0 + i);
    }
}

#endif /* QFS_TEST_CONF3_H */
