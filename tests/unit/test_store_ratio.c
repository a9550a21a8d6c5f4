/* test_store_ratio.c - how well the db file compresses config-like data:
 * generated JSON, YAML, INI and shell files of realistic shape (keys from a
 * vocabulary, varying values, nesting, comments), written through the store
 * and sealed in frames of a few hundred commands, as the node does. Prints
 * the ratios and asserts the db is smaller than the records it holds. */
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../store/store.h"
#include "check.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static const char* const words[] = {
    "server",          "port",      "host",      "timeout",   "retries",
    "enabled",         "log_level", "database",  "user",      "password",
    "max_connections", "cache",     "ttl",       "region",    "replicas",
    "endpoint",        "path",      "tls",       "cert_file", "key_file",
    "buffer_size",     "workers",   "listen",    "upstream",  "backoff",
    "interval",        "threshold", "namespace", "image",     "memory_limit",
    "cpu_limit",       "labels",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

struct buf {
    char* p;
    size_t len, cap;
};

static void add(struct buf* b, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add(struct buf* b, const char* fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        CHECK(n >= 0);
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n + 64;
        b->p = realloc(b->p, b->cap);
        CHECK(b->p != NULL);
    }
}

static void value(struct buf* b, bool quote)
{
    switch (rnd(5)) {
    case 0:
        add(b, "%u", rnd(65536));
        break;
    case 1:
        add(b, "%s", rnd(2) ? "true" : "false");
        break;
    case 2:
        add(b, quote ? "\"%s-%u.example.internal\"" : "%s-%u.example.internal",
            words[rnd(NWORDS)], rnd(100));
        break;
    case 3:
        add(b, quote ? "\"/var/lib/%s/%s\"" : "/var/lib/%s/%s",
            words[rnd(NWORDS)], words[rnd(NWORDS)]);
        break;
    default:
        add(b, quote ? "\"%08x%08x\"" : "%08x%08x", rnd(UINT32_MAX),
            rnd(UINT32_MAX)); /* tokens/hashes: incompressible */
        break;
    }
}

static void gen_json(struct buf* b)
{
    add(b, "{\n");
    unsigned n = 3 + rnd(8);
    for (unsigned i = 0; i < n; i++) {
        add(b, "  \"%s\": {\n", words[rnd(NWORDS)]);
        unsigned m = 2 + rnd(6);
        for (unsigned j = 0; j < m; j++) {
            add(b, "    \"%s\": ", words[rnd(NWORDS)]);
            value(b, true);
            add(b, "%s\n", j + 1 < m ? "," : "");
        }
        add(b, "  }%s\n", i + 1 < n ? "," : "");
    }
    add(b, "}\n");
}

static void gen_yaml(struct buf* b)
{
    add(b, "# generated for %s\napiVersion: v1\nkind: ConfigMap\n",
        words[rnd(NWORDS)]);
    unsigned n = 3 + rnd(8);
    for (unsigned i = 0; i < n; i++) {
        add(b, "%s:\n", words[rnd(NWORDS)]);
        unsigned m = 2 + rnd(6);
        for (unsigned j = 0; j < m; j++) {
            add(b, "  %s: ", words[rnd(NWORDS)]);
            value(b, false);
            add(b, "\n");
        }
    }
}

static void gen_ini(struct buf* b)
{
    unsigned n = 2 + rnd(6);
    for (unsigned i = 0; i < n; i++) {
        add(b, "; section %u\n[%s]\n", i, words[rnd(NWORDS)]);
        unsigned m = 2 + rnd(8);
        for (unsigned j = 0; j < m; j++) {
            add(b, "%s = ", words[rnd(NWORDS)]);
            value(b, false);
            add(b, "\n");
        }
        add(b, "\n");
    }
}

static void gen_sh(struct buf* b)
{
    add(b, "#!/bin/sh\n# environment for %s\nset -eu\n", words[rnd(NWORDS)]);
    unsigned n = 4 + rnd(12);
    for (unsigned i = 0; i < n; i++) {
        add(b, "export %s_%s=", words[rnd(NWORDS)], words[rnd(NWORDS)]);
        value(b, true);
        add(b, "\n");
    }
    add(b, "exec /usr/bin/%s --config \"$CONFIG\" \"$@\"\n",
        words[rnd(NWORDS)]);
}

static void seal_write(struct store* st)
{
    struct store_frame* f;
    CHECK_EQ(store_frame_seal(st, &f), 0);
    if (f != NULL) {
        CHECK_EQ(store_frame_write(st, f), 0);
        store_frame_done(st, f, 0);
    }
}

int main(void)
{
    enum { FILES = 2000, UPDATES = 2, BATCH = 200 };
    char dir[] = "/tmp/qfs-ratio-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof(path), "%s/db", dir);
    struct store_options o;
    store_options_default(&o);
    struct store* st;
    CHECK_EQ(store_open(path, &o, &st, NULL), 0);
    static uint8_t enc[1 << 20];
    store_index idx = 0;
    uint64_t content = 0, dirs[4];
    const char* kinds[4] = {"json", "yaml", "ini", "sh"};
    void (*gens[4])(struct buf*) = {gen_json, gen_yaml, gen_ini, gen_sh};
    struct store_result r;
    for (int k = 0; k < 4; k++) {
        struct store_cmd c = {
            .op = STORE_OP_MKDIR, .parent = 1, .name = kinds[k], .mode = 0755};
        long n = store_cmd_encode(&c, enc, sizeof(enc));
        CHECK_EQ(store_apply(st, ++idx, enc, (size_t)n, NULL, NULL, &r), 0);
        dirs[k] = r.ino;
    }
    struct buf b = {.p = malloc(4096), .len = 0, .cap = 4096};
    CHECK(b.p != NULL);
    for (unsigned round = 0; round <= UPDATES; round++) {
        for (unsigned i = 0; i < FILES; i++) {
            int k = (int)(i % 4);
            char name[64];
            snprintf(name, sizeof(name), "%s-%u.%s", words[i % NWORDS], i,
                     kinds[k]);
            struct store_cmd c = {.op = STORE_OP_CREATE,
                                  .parent = dirs[k],
                                  .name = name,
                                  .mode = 0644,
                                  .origin = 1,
                                  .seq = idx + 1,
                                  .now_ns = (int64_t)idx * 1000000};
            long n = store_cmd_encode(&c, enc, sizeof(enc));
            CHECK_EQ(store_apply(st, ++idx, enc, (size_t)n, NULL, NULL, &r), 0);
            CHECK_EQ(r.err, 0);
            b.len = 0;
            gens[k](&b);
            c = (struct store_cmd){.op = STORE_OP_WRITE,
                                   .ino = r.ino,
                                   .data = b.p,
                                   .data_len = b.len,
                                   .origin = 1,
                                   .seq = idx + 1,
                                   .now_ns = (int64_t)idx * 1000000};
            n = store_cmd_encode(&c, enc, sizeof(enc));
            CHECK_EQ(store_apply(st, ++idx, enc, (size_t)n, NULL, NULL, &r), 0);
            CHECK_EQ(r.err, 0);
            content += b.len;
            if (idx % BATCH == 0) {
                seal_write(st);
            }
        }
    }
    seal_write(st);
    struct store_stats s;
    store_get_stats(st, &s);
    double payload = (double)s.payload_stored_bytes / s.payload_raw_bytes;
    double vs_content = (double)s.db_bytes / (double)content;
    fprintf(stderr,
            "content written %" PRIu64 " B, records %" PRIu64 " B, db %" PRIu64
            " B in %" PRIu64
            " frames\n"
            "ratio db/records = %.3f, db/content = %.3f, live %" PRIu64 " B\n",
            content, s.payload_raw_bytes, s.db_bytes, s.frames, payload,
            vs_content, s.live_bytes);
    CHECK(payload < 1.0);
    CHECK(vs_content < 1.0);
    store_close(st);
    unlink(path);
    rmdir(dir);
    free(b.p);
    return 0;
}
