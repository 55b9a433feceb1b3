/*
 * fuzz_options.c - libFuzzer harness: the command line.  The input is split at NUL bytes into
 * up to 16 arguments after "tierfs" and handed to tfs_parse_options, as main() does.  (Run
 * with -close_fd_mask=3: --help and the error messages are not news here.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1), *argv[18];
	int argc = 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	argv[argc++] = (char *)"tierfs";
	for (char *p = copy; p <= copy + size && argc < 17; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	struct tfs_options o;
	struct fuse_args fargs = FUSE_ARGS_INIT(0, NULL);
	tfs_parse_options(argc, argv, &o, &fargs);
	tfs_options_free(&o);
	fuse_opt_free_args(&fargs);
	free(copy);
	return 0;
}
