/*
 * l2check.c - checks that a cache directory's index and its slab agree: every chunk the index
 * names is in its slot, with the right header and checksums.  Read-only.
 *
 * usage: l2check CACHE_DIR CHUNK_SIZE     prints "ok=N bad=M", exit 1 when M > 0
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ssd.h"

int main(int argc, char **argv)
{
	struct ssd_store *s;
	uint64_t ok, bad;
	if (argc != 3) {
		fprintf(stderr, "usage: %s CACHE_DIR CHUNK_SIZE\n", argv[0]);
		return 2;
	}
	tfs_log_set_level(TFS_LOG_ERROR);
	int ret = ssd_open(argv[1], strtoull(argv[2], NULL, 10), &s);
	if (ret < 0) {
		fprintf(stderr, "l2check: cannot open %s: %s\n", argv[1], strerror(-ret));
		return 2;
	}
	ret = ssd_check(s, &ok, &bad);
	ssd_close(s);
	printf("ok=%llu bad=%llu\n", (unsigned long long)ok, (unsigned long long)bad);
	return ret < 0 ? 2 : bad ? 1 : 0;
}
