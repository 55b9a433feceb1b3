/*
 * fuse_ceiling.c - the limit of a sequential read through FUSE on this kernel, for the
 * benchmarks (contrib/bench/warm_read.py): a file system of one file, "data", whose bytes
 * the daemon already holds in memory.  It answers each read from that memory at once, with
 * the same FUSE set-up as tierfs (the low-level API, READ requests of up to 1 MiB, the
 * multi-threaded loop of up to 16 threads; benchlib.fuse_ceiling sets the mount's
 * read_ahead_kb to tierfs's 1024), so a read of "data" with
 * the page cache dropped costs what FUSE costs and nothing else: no cache lookup, no disk,
 * no checksum.  A warm read through tierfs cannot be faster than this.
 *
 *     fuse_ceiling MOUNTPOINT SIZE_MIB
 *
 * It runs in the foreground until unmounted (fusermount3 -u MOUNTPOINT) or sent SIGTERM.
 * Not part of tierfs.
 */
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define DATA_INO 2
#define MAX_READ (1u << 20) /* tierfs's POLICY_MAX_READ */

static char *bytes;  /* MAX_READ bytes, every read's answer: immutable after main starts */
static size_t size;  /* the file's size: immutable */

static void fill_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)size;
	}
}

static void c_init(void *userdata, struct fuse_conn_info *conn)
{
	conn->max_readahead = MAX_READ;
	(void)userdata;
}

static void c_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent != FUSE_ROOT_ID || strcmp(name, "data") != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e = { .ino = DATA_INO, .attr_timeout = 3600,
				      .entry_timeout = 3600 };
	fill_stat(DATA_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void c_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != DATA_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_stat(ino, &st);
	fuse_reply_attr(req, &st, 3600);
}

static void c_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != DATA_INO)
		fuse_reply_err(req, EISDIR);
	else
		fuse_reply_open(req, fi);
}

static void c_read(fuse_req_t req, fuse_ino_t ino, size_t len, off_t off,
		   struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	if ((size_t)off >= size) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (len > size - (size_t)off)
		len = size - (size_t)off;
	if (len > MAX_READ)
		len = MAX_READ;
	fuse_reply_buf(req, bytes, len);
}

static const struct fuse_lowlevel_ops ops = {
	.init = c_init,
	.lookup = c_lookup,
	.getattr = c_getattr,
	.open = c_open,
	.read = c_read,
};

int main(int argc, char **argv)
{
	if (argc != 3 || atol(argv[2]) <= 0) {
		fprintf(stderr, "usage: %s MOUNTPOINT SIZE_MIB\n", argv[0]);
		return 2;
	}
	size = (size_t)atol(argv[2]) << 20;
	bytes = mmap(NULL, MAX_READ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
		     MAP_POPULATE, -1, 0);
	if (bytes == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (size_t i = 0; i < MAX_READ; i++)
		bytes[i] = (char)(i * 131 + 7);

	char *fargv[] = { argv[0], "-o", "fsname=fuse_ceiling,ro", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	int ret = 1;
	if (fuse_set_signal_handlers(se) == 0) {
		if (fuse_session_mount(se, argv[1]) == 0) {
			struct fuse_loop_config *loop = fuse_loop_cfg_create();
			fuse_loop_cfg_set_max_threads(loop, 16);
			fuse_loop_cfg_set_idle_threads(loop, 8);
			ret = fuse_session_loop_mt(se, loop) != 0;
			fuse_loop_cfg_destroy(loop);
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	return ret;
}
