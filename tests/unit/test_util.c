/* test_util.c - the shared helpers (util/): little-endian fields, full
 * writes across several buffers, fsync of a path's directory, data-dir
 * paths that do not fit. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <unistd.h>

#include "../../raft/util/bytes.h"
#include "../../raft/util/datadir.h"
#include "../../raft/util/fileio.h"
#include "check.h"

static void test_le_fields(void)
{
    uint8_t b[8];
    put_le16(b, 0x1234);
    CHECK(b[0] == 0x34 && b[1] == 0x12);
    CHECK_EQ(get_le16(b), 0x1234);
    put_le32(b, 0xA1B2C3D4u);
    CHECK(b[0] == 0xD4 && b[3] == 0xA1);
    CHECK_EQ(get_le32(b), 0xA1B2C3D4u);
    put_le64(b, 0x0102030405060708ull);
    CHECK(b[0] == 0x08 && b[7] == 0x01);
    CHECK(get_le64(b) == 0x0102030405060708ull);
    CHECK(get_le64((const uint8_t*)"\xff\xff\xff\xff\xff\xff\xff\xff") ==
          UINT64_MAX);
    put_le(b, 0xABCDEF, 3);
    CHECK_EQ(get_le(b, 3), 0xABCDEF);
}

static void test_write_all(void)
{
    char dir[] = "/tmp/qfs-util-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[PATH_MAX];
    CHECK_EQ(util_datadir_path(path, sizeof(path), dir, DATADIR_DB), 0);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    char a[] = "hello ", b[] = "", c[] = "world";
    struct iovec iov[3] = {{a, 6}, {b, 0}, {c, 5}};
    CHECK_EQ(util_pwritev_all(fd, iov, 3, 4), 0);
    CHECK_EQ(util_pwrite_all(fd, "abcd", 4, 0), 0);
    CHECK_EQ(util_write_all(fd, "!", 1), 0); /* at the file position: 0 */
    char got[16] = {0};
    CHECK_EQ(pread(fd, got, sizeof(got), 0), 15);
    CHECK_MEM(got, "!bcdhello world", 15);
    close(fd);
    CHECK_EQ(util_fsync_parent(path), 0);
    CHECK_EQ(util_fsync_dir(dir), 0);
    CHECK_EQ(util_fsync_dir(path), -ENOTDIR);
    unlink(path);
    rmdir(dir);
}

static void test_fsync_parent_forms(void)
{
    CHECK_EQ(util_fsync_parent("bare-name"), 0); /* "." */
    CHECK_EQ(util_fsync_parent("/tmp"), 0);      /* "/" */
    CHECK_EQ(util_fsync_parent("/nonexistent-qfs/x"), -ENOENT);
}

static void test_datadir_path_too_long(void)
{
    char small[8];
    CHECK_EQ(util_datadir_path(small, sizeof(small), "/data", DATADIR_LOCK),
             -ENAMETOOLONG);
    CHECK_EQ(util_datadir_path(small, sizeof(small), "/d", DATADIR_LOG), 0);
    CHECK(strcmp(small, "/d/log") == 0);
}

int main(void)
{
    RUN(test_le_fields);
    RUN(test_write_all);
    RUN(test_fsync_parent_forms);
    RUN(test_datadir_path_too_long);
    return 0;
}
