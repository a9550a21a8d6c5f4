/* errors.c - names and messages for RAFT_E* codes, roles and message types.
 *
 * One table (the RAFT_ERRORS X-macro in raft.h) drives both the names and the
 * messages; any other negative code is treated as a negative errno.
 */
#include <string.h>

#include "raft.h"

const char* raft_strerror(int code)
{
    switch (code) {
#define RAFT__ERR_MSG(name, value, msg) \
    case value:                         \
        return msg;
        RAFT_ERRORS(RAFT__ERR_MSG)
#undef RAFT__ERR_MSG
    case 0:
        return "success";
    default:
        break;
    }
    if (code < 0) {
        return strerror(-code);
    }
    return "unknown error";
}

const char* raft_errname(int code)
{
    switch (code) {
#define RAFT__ERR_NAME(name, value, msg) \
    case value:                          \
        return #name;
        RAFT_ERRORS(RAFT__ERR_NAME)
#undef RAFT__ERR_NAME
    case 0:
        return "OK";
    default:
        break;
    }
    if (code < 0) {
        return strerror(-code);
    }
    return "UNKNOWN";
}

const char* raft_role_name(int role)
{
    switch (role) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_PRECANDIDATE:
        return "precandidate";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    default:
        return "unknown";
    }
}

const char* raft_msg_type_name(int type)
{
    static const char* const names[RAFT_MSG_TYPE_MAX + 1] = {
        [RAFT_MSG_APPEND] = "append",
        [RAFT_MSG_APPEND_RESP] = "append_resp",
        [RAFT_MSG_VOTE] = "vote",
        [RAFT_MSG_VOTE_RESP] = "vote_resp",
        [RAFT_MSG_PREVOTE] = "prevote",
        [RAFT_MSG_PREVOTE_RESP] = "prevote_resp",
        [RAFT_MSG_SNAPSHOT] = "snapshot",
        [RAFT_MSG_SNAPSHOT_RESP] = "snapshot_resp",
        [RAFT_MSG_TIMEOUT_NOW] = "timeout_now",
        [RAFT_MSG_PROPOSE] = "propose",
        [RAFT_MSG_PROPOSE_RESP] = "propose_resp",
        [RAFT_MSG_READ_INDEX] = "read_index",
        [RAFT_MSG_READ_INDEX_RESP] = "read_index_resp",
        [RAFT_MSG_TRANSFER] = "transfer",
    };
    if (type < 1 || type > RAFT_MSG_TYPE_MAX) {
        return "unknown";
    }
    return names[type];
}

bool raft_msg_sendable_early(const struct raft_message* m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
    case RAFT_MSG_SNAPSHOT:
    case RAFT_MSG_PROPOSE:
    case RAFT_MSG_PROPOSE_RESP:
    case RAFT_MSG_READ_INDEX:
    case RAFT_MSG_READ_INDEX_RESP:
    case RAFT_MSG_TIMEOUT_NOW:
    case RAFT_MSG_TRANSFER:
        return true;
    default:
        return false;
    }
}
