/* logline.h - one log line in the format every log of quorumfs shares
 * (docs/operations.md, "Logs"):
 *   2026-12-06T16:33:04.474Z warn  PREFIXmessage
 * The node's log (fs/node/node_io.c) and the CLI's (fs/cli/cli_log.c)
 * write through it, each to its own sink. */
#ifndef QFS_UTIL_LOGLINE_H
#define QFS_UTIL_LOGLINE_H

/* Levels, as RAFT_TRACE_* and STORE_TRACE_* number them. */
enum {
    UTIL_LOG_DEBUG = 0,
    UTIL_LOG_INFO = 1,
    UTIL_LOG_WARN = 2,
    UTIL_LOG_ERROR = 3,
};
/* A message is cut at this many bytes. */
enum { UTIL_LOG_MSG_MAX = 1024 };

/* Write the line for (level, prefix, msg) to fd with one write(2) (whole
 * lines, also from several threads); and, when tee_fd >= 0, the short form
 * "quorumfs: PREFIXmsg" to tee_fd (the terminal that started a daemon). A
 * failed write is ignored: a log has nowhere to report it. */
void util_log_write(int fd,
                    int tee_fd,
                    int level,
                    const char* prefix,
                    const char* msg);

#endif /* QFS_UTIL_LOGLINE_H */
