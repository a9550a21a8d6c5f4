/* test_node_metrics.c - the metrics text's building blocks
 * (fs/node/node_metrics.h): histogram buckets at their bounds, the series
 * of a histogram in the Prometheus text format (cumulative buckets, +Inf
 * equal to _count, the sum in seconds), labels, and the text's bound. The
 * whole text of running nodes is checked by tests/e2e/test_metrics.py. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../fs/node/node_metrics.h"
#include "check.h"

static void test_hist_bounds(void)
{
    struct node_hist h;
    memset(&h, 0, sizeof(h));
    node_hist_observe(&h, 0);           /* le 0.0001 */
    node_hist_observe(&h, 100000);      /* exactly 0.0001: le 0.0001 */
    node_hist_observe(&h, 100001);      /* le 0.00025 */
    node_hist_observe(&h, 10000000000); /* exactly 10 s: le 10 */
    node_hist_observe(&h, 10000000001); /* +Inf only */
    CHECK_EQ(h.count, 5);
    CHECK_EQ(h.buckets[0], 2);
    CHECK_EQ(h.buckets[1], 1);
    CHECK_EQ(h.buckets[NODE_HIST_BOUNDS - 1], 1);
    CHECK_EQ(h.buckets[NODE_HIST_BOUNDS], 1);
    CHECK_EQ(h.sum_ns, 100000 + 100001 + 10000000000 + 10000000001);
}

static void test_hist_text(void)
{
    struct node_hist h;
    struct node_metrics_buf b = {0};
    memset(&h, 0, sizeof(h));
    node_hist_observe(&h, 3000000);    /* 3 ms: le 0.005 */
    node_hist_observe(&h, 1500000000); /* 1.5 s: le 2.5 */
    node_metrics_family(&b, "q_seconds", "histogram", "A test.");
    node_metrics_hist(&b, "q_seconds", "op=\"write\"", &h);
    CHECK_EQ(b.err, 0);
    CHECK(strncmp(b.buf,
                  "# HELP q_seconds A test.\n# TYPE q_seconds "
                  "histogram\n",
                  50) == 0);
    CHECK(strstr(b.buf, "q_seconds_bucket{op=\"write\",le=\"0.0025\"} 0\n"));
    CHECK(strstr(b.buf, "q_seconds_bucket{op=\"write\",le=\"0.005\"} 1\n"));
    CHECK(strstr(b.buf, "q_seconds_bucket{op=\"write\",le=\"1\"} 1\n"));
    CHECK(strstr(b.buf, "q_seconds_bucket{op=\"write\",le=\"2.5\"} 2\n"));
    CHECK(strstr(b.buf, "q_seconds_bucket{op=\"write\",le=\"+Inf\"} 2\n"));
    CHECK(strstr(b.buf, "q_seconds_sum{op=\"write\"} 1.503000000\n"));
    CHECK(strstr(b.buf, "q_seconds_count{op=\"write\"} 2\n"));
    free(b.buf);

    /* no labels: no braces on _sum and _count */
    memset(&b, 0, sizeof(b));
    node_metrics_hist(&b, "q_seconds", "", &h);
    CHECK(strstr(b.buf, "q_seconds_bucket{le=\"+Inf\"} 2\n"));
    CHECK(strstr(b.buf, "\nq_seconds_sum 1.503000000\n"));
    CHECK(strstr(b.buf, "\nq_seconds_count 2\n"));
    free(b.buf);
}

static void test_text_bound(void)
{
    struct node_metrics_buf b = {0};
    static char line[65536];
    memset(line, 'x', sizeof(line) - 1);
    for (int i = 0; i < 200 && b.err == 0; i++) {
        node_metrics_printf(&b, "%s\n", line);
    }
    CHECK_EQ(b.err, -E2BIG);
    CHECK(b.len <= NODE_METRICS_TEXT_MAX);
    size_t len = b.len;
    node_metrics_printf(&b, "more\n"); /* nothing after the first error */
    CHECK_EQ(b.len, len);
    free(b.buf);
}

int main(void)
{
    RUN(test_hist_bounds);
    RUN(test_hist_text);
    RUN(test_text_bound);
    return 0;
}
