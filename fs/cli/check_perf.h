/* check_perf.h - `quorumfs check perf`: is this host good enough for a
 * node? A timed write load through the mount and the data dir disk's
 * fdatasync latency, judged against stated thresholds (check_perf.c). */
#ifndef QFS_CHECK_PERF_H
#define QFS_CHECK_PERF_H

#include <stdio.h>

/* The usage text of `quorumfs check`. */
void check_usage(FILE* out);
/* `quorumfs check perf ...` (argv[0] is "check"): 0 PASS, 1 FAIL (the
 * reasons printed), 2 usage error. */
int check_command(int argc, char** argv);

#endif /* QFS_CHECK_PERF_H */
