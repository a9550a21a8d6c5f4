/* cli_log.c - the CLI's own log lines (cli_log.h). */
#include "cli_log.h"

#include <stdarg.h>
#include <stdio.h>

#include "../../raft/util/logline.h"

void cli_log_init(struct cli_log* l, int level, int fd)
{
    l->level = level;
    l->fd = fd;
    l->tee_fd = -1;
    l->tee_level = UTIL_LOG_WARN;
}

void cli_log_tee(struct cli_log* l, int fd, int min_level)
{
    l->tee_level = min_level;
    l->tee_fd = fd;
}

void cli_log(const struct cli_log* l, int level, const char* fmt, ...)
{
    char msg[UTIL_LOG_MSG_MAX];
    if (level < l->level) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int tee = l->tee_fd;
    util_log_write(l->fd, level >= l->tee_level ? tee : -1, level, "", msg);
}
