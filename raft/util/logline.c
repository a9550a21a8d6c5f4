/* logline.c - one log line in the shared format (logline.h). */
#include "logline.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* Write len bytes of line (snprintf's result: may exceed cap) to fd. */
static void write_line(int fd, const char* line, int len, size_t cap)
{
    if (len <= 0) {
        return;
    }
    size_t n = (size_t)len < cap ? (size_t)len : cap - 1;
    if (write(fd, line, n) < 0) {
        /* the sink is gone: nowhere to say so */
    }
}

void util_log_write(int fd,
                    int tee_fd,
                    int level,
                    const char* prefix,
                    const char* msg)
{
    static const char* const levels[] = {"debug", "info", "warn", "error"};
    struct timespec ts;
    struct tm tm;
    char line[UTIL_LOG_MSG_MAX + 160];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    const char* name = levels[level < 0 ? 0 : (level > 3 ? 3 : level)];
    int len = snprintf(line, sizeof(line),
                       "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s%.*s\n",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                       tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, name, prefix,
                       UTIL_LOG_MSG_MAX - 1, msg);
    write_line(fd, line, len, sizeof(line));
    if (tee_fd >= 0) {
        len = snprintf(line, sizeof(line), "quorumfs: %s%.*s\n", prefix,
                       UTIL_LOG_MSG_MAX - 1, msg);
        write_line(tee_fd, line, len, sizeof(line));
    }
}
