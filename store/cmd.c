/* cmd.c - the command codec: what a raft proposal carries.
 *
 * Layout (version 1, little-endian, 112-byte fixed part then strings):
 *   u8 version, u8 op, u8 type (MKNOD; else 0), u8 reserve_pct (0 to
 *   STORE_RESERVE_PCT_MAX; was a zero byte before the root reserve, so a
 *   command with none is encoded as before), u32 flags, u64 origin,
 * u64 seq, i64 now_ns, u64 parent, u64 new_parent, u64 ino, u32 mode, u32 uid,
 * u32 gid, u32 set_mask, u64 size, i64 atime_ns, i64 mtime_ns, u32 name_len,
 * u32 new_name_len, u32 data_len, u32 zero, name (with its NUL), new_name (with
 * its NUL), data. A string length of 0 means "absent" (NULL); otherwise it
 * counts the NUL, which must be the string's only NUL. The total length must
 * match exactly. Ops 1..17 (STORE_OP_CREATE..STORE_OP_RELEASE; 16 and 17,
 * the name reservations, were added without a version bump: an older
 * binary refuses them as malformed). Flags: enum store_cmd_flags, with
 * STORE_CLAIM and STORE_REPLACE only on a CREATE that also has
 * STORE_WITH_DATA.
 */
#include <assert.h>
#include <errno.h>

#include "store_internal.h"

enum {
    CMD_VERSION = 1,
    CMD_FIXED = 112,
    CMD_STRING_MAX = STORE_PATH_LIMIT, /* bound on an encoded name */
};
#define CMD_DATA_MAX STORE_FILE_SIZE_LIMIT
#define CMD_FLAGS_ALL                                              \
    (STORE_EXCL | STORE_NOREPLACE | STORE_EXCHANGE | STORE_TRUNC | \
     STORE_WITH_DATA | STORE_CLAIM | STORE_REPLACE)
#define CMD_SET_ALL                                                    \
    (STORE_SET_MODE | STORE_SET_UID | STORE_SET_GID | STORE_SET_SIZE | \
     STORE_SET_ATIME | STORE_SET_MTIME)

static size_t str_size(const char* s)
{
    return s == NULL ? 0 : strlen(s) + 1;
}

size_t store_cmd_encoded_size(const struct store_cmd* c)
{
    assert(c != NULL);
    return CMD_FIXED + str_size(c->name) + str_size(c->new_name) + c->data_len;
}

long store_cmd_encode(const struct store_cmd* c, void* buf, size_t cap)
{
    assert(c != NULL && (buf != NULL || cap == 0));
    assert(c->data != NULL || c->data_len == 0);
    if (c->reserve_pct > STORE_RESERVE_PCT_MAX) {
        return -EINVAL;
    }
    size_t nl = str_size(c->name), nnl = str_size(c->new_name);
    if (nl > CMD_STRING_MAX || nnl > CMD_STRING_MAX ||
        c->data_len > CMD_DATA_MAX) {
        return -EINVAL;
    }
    size_t total = CMD_FIXED + nl + nnl + c->data_len;
    if (total > cap) {
        return -ENOSPC;
    }
    uint8_t* p = buf;
    memset(p, 0, CMD_FIXED);
    p[0] = CMD_VERSION;
    p[1] = c->op;
    p[2] = c->type;
    p[3] = c->reserve_pct;
    put_le32(p + 4, c->flags);
    put_le64(p + 8, c->origin);
    put_le64(p + 16, c->seq);
    put_le64(p + 24, (uint64_t)c->now_ns);
    put_le64(p + 32, c->parent);
    put_le64(p + 40, c->new_parent);
    put_le64(p + 48, c->ino);
    put_le32(p + 56, c->mode);
    put_le32(p + 60, c->uid);
    put_le32(p + 64, c->gid);
    put_le32(p + 68, c->set_mask);
    put_le64(p + 72, c->size);
    put_le64(p + 80, (uint64_t)c->atime_ns);
    put_le64(p + 88, (uint64_t)c->mtime_ns);
    put_le32(p + 96, (uint32_t)nl);
    put_le32(p + 100, (uint32_t)nnl);
    put_le32(p + 104, (uint32_t)c->data_len);
    size_t off = CMD_FIXED;
    if (nl > 0) {
        memcpy(p + off, c->name, nl);
        off += nl;
    }
    if (nnl > 0) {
        memcpy(p + off, c->new_name, nnl);
        off += nnl;
    }
    if (c->data_len > 0) {
        memcpy(p + off, c->data, c->data_len);
        off += c->data_len;
    }
    assert(off == total);
    return (long)total;
}

/* A string of n bytes at p (n counts the NUL); NULL when absent. */
static int decode_str(const uint8_t* p, size_t n, const char** out)
{
    if (n == 0) {
        *out = NULL;
        return 0;
    }
    if (p[n - 1] != 0 || memchr(p, 0, n - 1) != NULL) {
        return -EBADMSG;
    }
    *out = (const char*)p;
    return 0;
}

int store_cmd_decode(struct store_cmd* c, const void* buf, size_t len)
{
    assert(c != NULL);
    const uint8_t* p = buf;
    if (p == NULL || len < CMD_FIXED || p[0] != CMD_VERSION ||
        p[3] > STORE_RESERVE_PCT_MAX || get_le32(p + 108) != 0) {
        return -EBADMSG;
    }
    memset(c, 0, sizeof(*c));
    c->op = p[1];
    c->type = p[2];
    c->reserve_pct = p[3];
    c->flags = get_le32(p + 4);
    if (c->op < STORE_OP_CREATE || c->op > STORE_OP_RELEASE ||
        (c->flags & ~(uint32_t)CMD_FLAGS_ALL) != 0) {
        return -EBADMSG;
    }
    /* STORE_CLAIM, STORE_REPLACE: only the commit of a pending new file,
     * a CREATE with its data */
    if ((c->flags & (STORE_CLAIM | STORE_REPLACE)) != 0 &&
        (c->op != STORE_OP_CREATE || (c->flags & STORE_WITH_DATA) == 0)) {
        return -EBADMSG;
    }
    /* the type byte: only MKNOD's, one of the special files */
    if (c->op == STORE_OP_MKNOD ? (c->type < STORE_FIFO || c->type > STORE_BLK)
                                : c->type != 0) {
        return -EBADMSG;
    }
    c->origin = get_le64(p + 8);
    c->seq = get_le64(p + 16);
    c->now_ns = (int64_t)get_le64(p + 24);
    c->parent = get_le64(p + 32);
    c->new_parent = get_le64(p + 40);
    c->ino = get_le64(p + 48);
    c->mode = get_le32(p + 56);
    c->uid = get_le32(p + 60);
    c->gid = get_le32(p + 64);
    c->set_mask = get_le32(p + 68);
    c->size = get_le64(p + 72);
    c->atime_ns = (int64_t)get_le64(p + 80);
    c->mtime_ns = (int64_t)get_le64(p + 88);
    uint64_t nl = get_le32(p + 96), nnl = get_le32(p + 100);
    uint64_t dl = get_le32(p + 104);
    if ((c->set_mask & ~(uint32_t)CMD_SET_ALL) != 0 || nl > CMD_STRING_MAX ||
        nnl > CMD_STRING_MAX || dl > CMD_DATA_MAX ||
        CMD_FIXED + nl + nnl + dl != len) {
        return -EBADMSG;
    }
    const uint8_t* s = p + CMD_FIXED;
    if (decode_str(s, nl, &c->name) != 0 ||
        decode_str(s + nl, nnl, &c->new_name) != 0) {
        return -EBADMSG;
    }
    c->data = dl > 0 ? s + nl + nnl : NULL;
    c->data_len = dl;
    return 0;
}
