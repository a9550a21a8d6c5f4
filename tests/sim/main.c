/* main.c - the `sim` command: randomized runs over many seeds.
 *
 *   sim --seeds N [--first S]     run seeds S..S+N-1 (3 and 5 nodes mixed)
 *   sim --seed S [--trace]        one seed; --trace prints every event
 *   --bug                         plant bug_commit_old_term in the cores
 *   --expect-failure              with --bug: succeed only if some seed
 *                                 fails a SAFETY check and the same seed
 *                                 passes without the bug
 *   --chaos-ms MS                 length of the chaos phase (default 8000)
 *
 * A failing seed prints the seed, the violated property, the tail of the
 * trace and the command line that reproduces it exactly.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

enum { TRACE_TAIL_LINES = 60, CHAOS_MS_DEFAULT = 8000 };

struct opts {
    uint64_t first, count;
    bool trace, bug, expect_failure;
    uint64_t chaos_ms;
};

/* Every knob of a run derives from the seed. */
static void config_for_seed(struct sim_config* c, uint64_t seed, bool bug)
{
    sim_config_default(c, seed);
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x1234567ull;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    c->n_voters = (seed & 1) ? 5 : 3;
    c->delay_min_ms = 1 + (unsigned)(x % 3);
    c->delay_max_ms = c->delay_min_ms + (unsigned)((x >> 8) % 30);
    c->drop_pct = (unsigned)((x >> 16) % 6);
    c->dup_pct = (unsigned)((x >> 24) % 4);
    c->disk_min_ms = 1;
    c->disk_max_ms = 1 + (unsigned)((x >> 32) % 15);
    static const unsigned compact[] = {0, 4, 8, 16};
    c->compact_every = compact[(x >> 40) % 4];
    c->bug_commit_old_term = bug;
}

/* Returns NULL on success, else a static copy of the violation. */
static const char* run_seed(uint64_t seed,
                            bool bug,
                            uint64_t chaos_ms,
                            bool trace,
                            FILE* trace_out,
                            bool dump)
{
    static char why[SIM_VIOLATION_MAX];
    struct sim_config c;
    config_for_seed(&c, seed, bug);
    c.trace = trace;
    c.trace_out = trace_out;
    struct sim* s = sim_new(&c);
    sim_random_run(s, chaos_ms);
    const char* v = sim_failed(s);
    if (v != NULL) {
        snprintf(why, sizeof why, "%s", v);
        if (dump) {
            fprintf(stderr, "---- trace tail (seed %" PRIu64 ") ----\n", seed);
            sim_trace_dump(s, stderr, TRACE_TAIL_LINES);
            fprintf(stderr, "----\n");
        }
    }
    sim_free(s);
    return v != NULL ? why : NULL;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: sim --seeds N [--first S] [--bug [--expect-failure]]\n"
            "       sim --seed S [--trace] [--bug]\n"
            "       [--chaos-ms MS]\n");
    return 2;
}

static int parse(int argc, char** argv, struct opts* o)
{
    memset(o, 0, sizeof *o);
    o->count = 1;
    o->chaos_ms = CHAOS_MS_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--seeds") == 0 && has) {
            o->count = strtoull(argv[++i], NULL, 10);
        } else if ((strcmp(a, "--first") == 0 || strcmp(a, "--seed") == 0) &&
                   has) {
            o->first = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(a, "--chaos-ms") == 0 && has) {
            o->chaos_ms = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(a, "--trace") == 0) {
            o->trace = true;
        } else if (strcmp(a, "--bug") == 0) {
            o->bug = true;
        } else if (strcmp(a, "--expect-failure") == 0) {
            o->expect_failure = true;
        } else {
            return -1;
        }
    }
    return 0;
}

static int expect_failure(const struct opts* o)
{
    for (uint64_t seed = o->first; seed < o->first + o->count; seed++) {
        const char* v = run_seed(seed, true, o->chaos_ms, false, NULL, false);
        if (v == NULL || strstr(v, "liveness") != NULL) {
            continue;
        }
        printf("seed %" PRIu64 " with the planted bug: %s\n", seed, v);
        const char* clean =
            run_seed(seed, false, o->chaos_ms, false, NULL, false);
        if (clean != NULL) {
            printf("but seed %" PRIu64 " also fails without it: %s\n", seed,
                   clean);
            continue;
        }
        printf("seed %" PRIu64 " passes without the bug: checker works\n",
               seed);
        return 0;
    }
    printf("planted bug NOT caught in seeds %" PRIu64 "..%" PRIu64 "\n",
           o->first, o->first + o->count - 1);
    return 1;
}

int main(int argc, char** argv)
{
    struct opts o;
    if (parse(argc, argv, &o) != 0) {
        return usage();
    }
    if (o.expect_failure) {
        return expect_failure(&o);
    }
    unsigned failed = 0;
    for (uint64_t seed = o.first; seed < o.first + o.count; seed++) {
        const char* v = run_seed(seed, o.bug, o.chaos_ms, o.trace,
                                 o.trace ? stdout : NULL, false);
        if (v == NULL) {
            continue;
        }
        failed++;
        printf("seed %" PRIu64 " FAILED: %s\n", seed, v);
        if (!o.trace) {
            run_seed(seed, o.bug, o.chaos_ms, true, NULL, true);
        }
        printf("reproduce: sim --seed %" PRIu64 "%s --trace\n", seed,
               o.bug ? " --bug" : "");
    }
    printf("%" PRIu64 " seeds from %" PRIu64 ": %u failed\n", o.count, o.first,
           failed);
    return failed ? 1 : 0;
}
