/* deadline.h - an absolute time some milliseconds from now, for
 * pthread_cond_timedwait (header-only, like bytes.h). */
#ifndef QFS_UTIL_DEADLINE_H
#define QFS_UTIL_DEADLINE_H

#include <time.h>

/* Now on clock clk, plus ms milliseconds, normalized (tv_nsec < 1e9). */
static inline struct timespec util_deadline_ms(clockid_t clk, unsigned ms)
{
    struct timespec t;

    clock_gettime(clk, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

#endif /* QFS_UTIL_DEADLINE_H */
