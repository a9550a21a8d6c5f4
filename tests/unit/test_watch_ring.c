/* test_watch_ring.c - the watch ring (fs/node/node_watch.h): events kept
 * in order and numbered, the oldest dropped past the event and byte
 * bounds (from_rev follows), lookup by revision, and which events concern
 * a watched subtree. */
#include <errno.h>
#include <stdio.h>

#include "../../fs/node/node_watch.h"
#include "check.h"

static int add(struct watch_ring* r,
               uint64_t rev,
               uint8_t op,
               const char* p,
               const char* p2)
{
    struct watch_event ev = {.revision = rev, .op = op, .path = p, .path2 = p2};
    return watch_ring_append(r, &ev);
}

static void test_order_and_eviction(void)
{
    struct watch_ring* r = watch_ring_new(16, 1 << 20, 10);
    struct watch_event ev;
    char p[32];

    CHECK(r != NULL);
    CHECK_EQ(watch_ring_from_rev(r), 10);
    CHECK_EQ(watch_ring_next_rev(r), 10);
    CHECK_EQ(add(r, 9, WATCH_WRITE, "/old", NULL), -EINVAL);
    for (uint64_t rev = 10; rev < 40; rev += 2) { /* 15 events, gaps */
        snprintf(p, sizeof(p), "/f%u", (unsigned)rev);
        CHECK_EQ(add(r, rev, WATCH_WRITE, p, NULL), 0);
    }
    CHECK(!watch_ring_full(r));
    CHECK_EQ(watch_ring_count(r), 15);
    CHECK_EQ(add(r, 40, WATCH_RENAME, "/a", "/b"), 0);
    CHECK_EQ(add(r, 41, WATCH_UNLINK, "/b", NULL), 0); /* drops rev 10 */
    CHECK(watch_ring_full(r));
    CHECK_EQ(watch_ring_count(r), 16);
    CHECK_EQ(watch_ring_first_seq(r), 1);
    CHECK_EQ(watch_ring_from_rev(r), 11);
    CHECK(!watch_ring_get(r, 0, &ev));
    CHECK(watch_ring_get(r, 1, &ev));
    CHECK_EQ(ev.revision, 12);
    CHECK(strcmp(ev.path, "/f12") == 0 && ev.path2 == NULL);
    CHECK(watch_ring_get(r, 15, &ev));
    CHECK(ev.op == WATCH_RENAME && strcmp(ev.path2, "/b") == 0);
    CHECK_EQ(watch_ring_seq_of(r, 13), 2); /* the first at or after 13 */
    CHECK_EQ(watch_ring_seq_of(r, 14), 2);
    CHECK_EQ(watch_ring_seq_of(r, 41), 16);
    CHECK_EQ(watch_ring_seq_of(r, 99), watch_ring_next_seq(r));
    watch_ring_free(r);
}

/* A change of a file with several names (hard links): one event per name,
 * all of one revision (watch_ring_append_more). */
static void test_events_of_one_revision(void)
{
    struct watch_ring* r = watch_ring_new(16, 1 << 20, 5);
    struct watch_event ev = {.revision = 5, .op = WATCH_WRITE, .path = "/a"};

    CHECK(r != NULL);
    CHECK_EQ(watch_ring_append_more(r, &ev), -EINVAL); /* none yet */
    CHECK_EQ(watch_ring_append(r, &ev), 0);
    ev.path = "/d/b";
    CHECK_EQ(watch_ring_append_more(r, &ev), 0);
    ev.path = "/c";
    CHECK_EQ(watch_ring_append_more(r, &ev), 0);
    CHECK_EQ(watch_ring_append(r, &ev), -EINVAL); /* not a new revision */
    ev.revision = 4;
    CHECK_EQ(watch_ring_append_more(r, &ev), -EINVAL); /* not the last's */
    CHECK_EQ(watch_ring_count(r), 3);
    CHECK_EQ(watch_ring_next_rev(r), 6);
    CHECK_EQ(watch_ring_seq_of(r, 5), 0); /* the first of them */
    struct watch_event got;
    CHECK(watch_ring_get(r, 1, &got));
    CHECK(got.revision == 5 && strcmp(got.path, "/d/b") == 0);
    /* dropping one of them makes the revision unreplayable */
    for (uint64_t rev = 6; rev < 20; rev++) {
        ev.revision = rev;
        ev.path = "/x";
        CHECK_EQ(watch_ring_append(r, &ev), 0);
    }
    CHECK_EQ(watch_ring_first_seq(r), 1);
    CHECK_EQ(watch_ring_from_rev(r), 6);
    watch_ring_free(r);
}

static void test_byte_bound(void)
{
    /* Room for two events of this size (a path of 100 bytes + overhead). */
    size_t one = 101 + WATCH_EVENT_OVERHEAD;
    struct watch_ring* r = watch_ring_new(1000, 2 * one, 1);
    char p[101];
    memset(p, 'x', 100);
    p[0] = '/';
    p[100] = '\0';
    for (uint64_t rev = 1; rev <= 5; rev++) {
        CHECK_EQ(add(r, rev, WATCH_CREATE, p, NULL), 0);
    }
    CHECK_EQ(watch_ring_count(r), 2);
    CHECK_EQ(watch_ring_from_rev(r), 4);
    watch_ring_free(r);
}

static void test_matches(void)
{
    struct watch_event w = {
        .revision = 1, .op = WATCH_WRITE, .path = "/app/x.conf"};
    CHECK(watch_event_matches(&w, "/"));
    CHECK(watch_event_matches(&w, "/app"));
    CHECK(watch_event_matches(&w, "/app/"));
    CHECK(watch_event_matches(&w, "/app/x.conf"));
    CHECK(!watch_event_matches(&w, "/ap"));
    CHECK(!watch_event_matches(&w, "/app/x"));
    CHECK(!watch_event_matches(&w, "/app/x.conf/y"));
    struct watch_event mv = {.revision = 2,
                             .op = WATCH_RENAME,
                             .path = "/tmp/new",
                             .path2 = "/app/x.conf"};
    CHECK(watch_event_matches(&mv, "/app")); /* moved in */
    CHECK(watch_event_matches(&mv, "/tmp"));
    CHECK(!watch_event_matches(&mv, "/apple"));
    struct watch_event dir = {
        .revision = 3, .op = WATCH_RENAME, .path = "/app", .path2 = "/old"};
    CHECK(watch_event_matches(&dir, "/app/sub")); /* its parent moved */
    struct watch_event reset = {.revision = 4, .op = WATCH_RESET, .path = "/"};
    CHECK(watch_event_matches(&reset, "/anything/below"));
    struct watch_event mk = {.revision = 5, .op = WATCH_MKDIR, .path = "/a"};
    CHECK(!watch_event_matches(&mk, "/a/b")); /* not a change below */
    CHECK(strcmp(watch_op_name(WATCH_EXCHANGE), "exchange") == 0);
    CHECK(strcmp(watch_op_name(200), "unknown") == 0);
}

int main(void)
{
    RUN(test_order_and_eviction);
    RUN(test_byte_bound);
    RUN(test_events_of_one_revision);
    RUN(test_matches);
    return 0;
}
