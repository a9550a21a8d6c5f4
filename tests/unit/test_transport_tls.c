/* test_transport_tls.c - the transport's defences with TLS on (raft/tls.h,
 * docs/security.md): bad configurations are refused naming the flag; a
 * node with another secret never connects; a HELLO in the clear and
 * garbage are refused before any frame is read; unfinished handshakes are
 * evicted past the per-address cap; a stranger's address past its accept
 * rate is closed at accept; the members' own connection keeps working
 * throughout. (The exchange tests over TLS are in test_transport.c.) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "transport_env.h"

/* raft/transport_internal.h's UNAUTH_PER_ADDR_MAX, ACCEPT_BURST and
 * ACCEPT_RATE_PER_S */
#define UNAUTH_PER_ADDR_MAX_TEST 8
#define ACCEPT_BURST_TEST 32
#define ACCEPT_RATE_TEST 16

/* Each bad configuration is refused with a reason that names the flag. */
static void test_tls_config_errors(void)
{
    struct {
        struct tls_config_options o;
        const char* says;
    } bad[] = {
        {{.secret_file = secret_file("open", "0123456789abcdef0123", 0644)},
         "chmod 600"},
        {{.secret_file = secret_file("short", "0123456789\n", 0600)},
         "at least 16"},
        {{.secret_file = "/nonexistent/secret"}, "--peer-secret-file"},
        {{.secret_file = tmpdir}, "not a regular file"},
        {{.secret_file = secret_file("ok", "0123456789abcdef", 0600),
          .cert_file = "/etc/hostname"},
         "exclusive"},
        {{.cert_file = "/etc/hostname"}, "all three"},
        {{.cert_file = "/etc/hostname",
          .key_file = "/etc/hostname",
          .ca_file = "/etc/hostname"},
         "--peer-cert-file"},
        {{0}, "no certificate"},
    };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct tls_config* c = (struct tls_config*)&bad; /* not touched */
        char err[TLS_ERROR_MAX + 128];
        err[0] = '\0';
        CHECK_EQ(tls_config_new(&bad[i].o, &c, err, sizeof(err)), -EINVAL);
        CHECK(c == NULL);
        if (strstr(err, bad[i].says) == NULL) {
            fprintf(stderr, "case %u: '%s' does not say '%s'\n", i, err,
                    bad[i].says);
            CHECK(false);
        }
    }
}

/* A node with another secret never gets a connection up, in either
 * direction, and nothing it sends is delivered; both sides count the
 * refused handshakes. */
static void test_tls_wrong_secret(void)
{
    struct node a, b;
    node_init(&a, 1, "127.0.0.1");
    node_init(&b, 2, "127.0.0.2");
    a.tls = secret_config("a", "the members' secret, 32 bytes...");
    b.tls = secret_config("b", "an outsider's guess at it.......");
    node_start(&a, CLUSTER, 0);
    node_start(&b, CLUSTER, 0);
    CHECK_EQ(transport_set_peer(a.t, 2, "b", b.addr), 0);
    CHECK_EQ(transport_set_peer(b.t, 1, "a", a.addr), 0);
    struct raft_message m = {
        .type = RAFT_MSG_TIMEOUT_NOW, .from = 2, .to = 1, .term = 7};
    CHECK_EQ(transport_send(b.t, &m), 0);
    run_for(1500);
    CHECK(!transport_connected(a.t, 2));
    CHECK(!transport_connected(b.t, 1));
    CHECK_EQ(a.n_recv, 0);
    CHECK_EQ(b.n_recv, 0);
    CHECK(stats(&a).refused_handshakes > 0);
    CHECK(stats(&b).refused_handshakes > 0);
    struct node* all[] = {&a, &b, NULL};
    close_nodes(all);
    tls_config_free(a.tls);
    tls_config_free(b.tls);
}

/* Members a (id 1, 127.0.0.1) and b (id 2, 127.0.0.2) sharing a secret,
 * connected. */
static void members_start(struct node* a, struct node* b, const char* name)
{
    node_init(a, 1, "127.0.0.1");
    node_init(b, 2, "127.0.0.2");
    tls_default = secret_config(name, "0123456789abcdef0123456789abcdef");
    node_start(a, CLUSTER, 0);
    node_start(b, CLUSTER, 0);
    CHECK_EQ(transport_set_peer(a->t, 2, "b", b->addr), 0);
    CHECK_EQ(transport_set_peer(b->t, 1, "a", a->addr), 0);
    struct link l = {b, 1};
    CHECK(run_until(is_connected, &l, WAIT_MS));
}

/* b's next message reaches a, over b's connection still up. */
static void member_still_heard(struct node* a, struct node* b)
{
    struct raft_message m = {
        .type = RAFT_MSG_TIMEOUT_NOW, .from = 2, .to = 1, .term = 3};
    CHECK_EQ(transport_send(b->t, &m), 0);
    wait_recv(a, a->n_recv + 1);
    CHECK(transport_connected(b->t, 1));
}

static void members_stop(struct node* a, struct node* b)
{
    struct node* all[] = {a, b, NULL};
    close_nodes(all);
    tls_config_free(tls_default);
    tls_default = NULL;
}

/* A TLS node: a HELLO in the clear (the forged-member attack of an
 * outsider) is refused before any frame is read, and so is garbage;
 * connections that never finish a handshake are evicted past the
 * per-address cap while the members' own connection keeps working. */
static void test_tls_refuses_strangers(void)
{
    struct node a, b;
    members_start(&a, &b, "shared2");

    static struct raw r[UNAUTH_PER_ADDR_MAX_TEST + 4];
    memset(&r[0], 0, sizeof(r[0])); /* a member's HELLO, in the clear */
    r[0].out_len = make_hello_v2(r[0].out, CLUSTER, 2, 42);
    uint64_t refused = stats(&a).refused_handshakes;
    raw_open(&a, &r[0]);
    CHECK(run_until(raw_done, &r[0], WAIT_MS));
    CHECK_EQ(stats(&a).refused_handshakes, refused + 1);
    raw_close(&r[0]);

    /* Idle strangers: past the cap the oldest are evicted. */
    unsigned n = sizeof(r) / sizeof(r[0]);
    for (unsigned i = 0; i < n; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].out_len = 0;
        raw_open(&a, &r[i]);
        run_for(20);
    }
    run_for(200);
    CHECK(stats(&a).evicted >= n - UNAUTH_PER_ADDR_MAX_TEST);
    for (unsigned i = 0; i < n - UNAUTH_PER_ADDR_MAX_TEST; i++) {
        CHECK(r[i].eof); /* the oldest went first */
    }
    member_still_heard(&a, &b);
    for (unsigned i = 0; i < n; i++) {
        raw_close(&r[i]);
    }
    CHECK_EQ(a.n_recv, 1);
    members_stop(&a, &b);
}

/* A stranger's address may connect ACCEPT_RATE_PER_S times a second
 * after a burst of ACCEPT_BURST; past that its connections are closed at
 * accept (counted in rate_limited), while a member's host is never
 * limited and the members' own connection keeps working. */
static void test_accept_rate(void)
{
    enum { N = ACCEPT_BURST_TEST + 16 }; /* under the listen backlog (64) */
    static struct raw r[N];
    struct node a, b;
    members_start(&a, &b, "rate");

    /* From b's host: many connections, none limited. */
    for (unsigned i = 0; i < N; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        raw_open_from(&a, &r[i], "127.0.0.2");
    }
    run_for(200);
    CHECK_EQ(stats(&a).rate_limited, 0);
    for (unsigned i = 0; i < N; i++) {
        raw_close(&r[i]);
    }

    /* From a stranger's: the burst passes, then about the rate. */
    uint64_t t0 = uv_now(&loop);
    for (unsigned i = 0; i < N; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        raw_open(&a, &r[i]);
    }
    run_for(200);
    uint64_t secs_x1000 = uv_now(&loop) - t0 + 1;
    uint64_t passed_max =
        ACCEPT_BURST_TEST + ACCEPT_RATE_TEST * secs_x1000 / 1000 + 1;
    CHECK(stats(&a).rate_limited >= N - passed_max);
    CHECK(stats(&a).rate_limited <= N - ACCEPT_BURST_TEST);
    unsigned closed = 0;
    for (unsigned i = 0; i < N; i++) {
        closed += r[i].eof ? 1 : 0;
    }
    CHECK(closed >= stats(&a).rate_limited);

    member_still_heard(&a, &b);
    for (unsigned i = 0; i < N; i++) {
        raw_close(&r[i]);
    }
    members_stop(&a, &b);
}

int main(void)
{
    CHECK_EQ(uv_loop_init(&loop), 0);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/qfs-transport-tls-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    RUN(test_tls_config_errors);
    RUN(test_tls_wrong_secret);
    RUN(test_tls_refuses_strangers);
    RUN(test_accept_rate);
    CHECK_EQ(uv_loop_close(&loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    CHECK_EQ(system(cmd), 0);
    return 0;
}
