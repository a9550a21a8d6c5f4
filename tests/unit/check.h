/* check.h - minimal assertions for C unit tests: a failed check prints the
 * file, line, expression and values, and exits non-zero. */
#ifndef QFS_TEST_CHECK_H
#define QFS_TEST_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

#define CHECK_EQ(a, b)                                                   \
    do {                                                                 \
        long long va_ = (long long)(a), vb_ = (long long)(b);            \
        if (va_ != vb_) {                                                \
            fprintf(stderr,                                              \
                    "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld)\n", \
                    __FILE__, __LINE__, #a, #b, va_, vb_);               \
            exit(1);                                                     \
        }                                                                \
    } while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

#define RUN(fn)                          \
    do {                                 \
        fprintf(stderr, "== %s\n", #fn); \
        fn();                            \
    } while (0)

#endif /* QFS_TEST_CHECK_H */
