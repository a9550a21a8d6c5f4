/* gen_corpus.c - writes one small valid encoding of every message type into
 * a directory (the fuzzer's seed corpus): gen_corpus DIR. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

static int write_msg(const char* dir,
                     const char* name,
                     const struct raft_message* m)
{
    uint8_t buf[4096];
    long n = raft_msg_encode(m, buf, sizeof(buf));
    if (n < 0) {
        fprintf(stderr, "gen_corpus: %s: %s\n", name, raft_strerror((int)n));
        return 1;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE* f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, (size_t)n, f) != (size_t)n) {
        perror(path);
        return 1;
    }
    return fclose(f) == 0 ? 0 : 1;
}

static struct raft_message hdr(uint8_t type)
{
    struct raft_message m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.from = 1;
    m.to = 2;
    m.term = 3;
    return m;
}

int main(int argc, char** argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    const char* dir = argv[1];
    static const uint8_t data[] = "set /etc/app.conf";
    int bad = 0;
    struct raft_entry es[3] = {
        {.term = 3, .index = 5, .type = RAFT_ENTRY_NOOP},
        {.term = 3,
         .index = 6,
         .type = RAFT_ENTRY_NORMAL,
         .data = {data, sizeof(data)}},
        {.term = 3, .index = 7, .type = RAFT_ENTRY_NORMAL, .data = {data, 4}},
    };
    struct raft_message m = hdr(RAFT_MSG_APPEND);
    m.append = (struct raft_msg_append){.prev_index = 4,
                                        .prev_term = 2,
                                        .commit = 4,
                                        .read_seq = 1,
                                        .n_entries = 3,
                                        .entries = es};
    bad |= write_msg(dir, "append", &m);
    m.append.n_entries = 0;
    bad |= write_msg(dir, "heartbeat", &m);
    m = hdr(RAFT_MSG_APPEND_RESP);
    m.append_resp = (struct raft_msg_append_resp){.reject = true,
                                                  .index = 4,
                                                  .last_index = 2,
                                                  .conflict_term = 1,
                                                  .conflict_index = 3,
                                                  .read_seq = 1};
    bad |= write_msg(dir, "append_resp", &m);
    m = hdr(RAFT_MSG_VOTE);
    m.vote = (struct raft_msg_vote){
        .last_index = 7, .last_term = 3, .transfer = true};
    bad |= write_msg(dir, "vote", &m);
    m.type = RAFT_MSG_PREVOTE;
    bad |= write_msg(dir, "prevote", &m);
    m = hdr(RAFT_MSG_VOTE_RESP);
    m.vote_resp.granted = true;
    bad |= write_msg(dir, "vote_resp", &m);
    m.type = RAFT_MSG_PREVOTE_RESP;
    bad |= write_msg(dir, "prevote_resp", &m);
    m = hdr(RAFT_MSG_SNAPSHOT);
    m.snapshot.meta =
        (struct raft_snapshot_meta){.index = 9, .term = 3, .conf_index = 1};
    m.snapshot.meta.conf.n = 2;
    m.snapshot.meta.conf.servers[0] = (struct raft_server){
        .id = 1, .role = RAFT_VOTER, .name = "n1", .addr = "127.0.0.1:7001"};
    m.snapshot.meta.conf.servers[1] = (struct raft_server){
        .id = 2, .role = RAFT_LEARNER, .name = "n2", .addr = "127.0.0.2:7001"};
    m.snapshot.total = 100;
    m.snapshot.offset = 50;
    m.snapshot.chunk = (struct raft_buf){data, sizeof(data)};
    bad |= write_msg(dir, "snapshot", &m);
    m = hdr(RAFT_MSG_SNAPSHOT_RESP);
    m.snapshot_resp = (struct raft_msg_snapshot_resp){
        .index = 9, .next_offset = 68, .done = true};
    bad |= write_msg(dir, "snapshot_resp", &m);
    m = hdr(RAFT_MSG_TIMEOUT_NOW);
    bad |= write_msg(dir, "timeout_now", &m);
    struct raft_proposal ps[2] = {
        {.ctx = 77, .type = RAFT_ENTRY_NORMAL, .data = {data, sizeof(data)}},
        {.ctx = 78, .type = RAFT_ENTRY_NORMAL},
    };
    m = hdr(RAFT_MSG_PROPOSE);
    m.propose = (struct raft_msg_propose){.n = 2, .props = ps};
    bad |= write_msg(dir, "propose", &m);
    uint64_t ctxs[2] = {77, 78};
    m = hdr(RAFT_MSG_PROPOSE_RESP);
    m.propose_resp = (struct raft_msg_propose_resp){
        .err = RAFT_ENOTLEADER, .n = 2, .ctxs = ctxs};
    bad |= write_msg(dir, "propose_resp", &m);
    m = hdr(RAFT_MSG_READ_INDEX);
    m.read_index.ctx = 5;
    bad |= write_msg(dir, "read_index", &m);
    m = hdr(RAFT_MSG_READ_INDEX_RESP);
    m.read_index_resp = (struct raft_msg_read_index_resp){.ctx = 5, .index = 8};
    bad |= write_msg(dir, "read_index_resp", &m);
    m = hdr(RAFT_MSG_TRANSFER);
    m.transfer.to = 3;
    bad |= write_msg(dir, "transfer", &m);
    return bad;
}
