/*
 * check.h - the assertion macro of the C test programs: counts, reports the failing line, and
 * lets the program finish with "N passed, N failed" (CHECK_SUMMARY), exit status 1 on failure.
 * Also the S3 client the policy tests give a policy that must not reach S3.
 */
#ifndef TIERFS_CHECK_H
#define TIERFS_CHECK_H

#include <stdio.h>

#include "s3.h"

static int check_passed, check_failed;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (cond) {                                                            \
			check_passed++;                                                \
		} else {                                                               \
			check_failed++;                                                \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                      \
	} while (0)

#define CHECK_SUMMARY()                                                                \
	(printf("%d passed, %d failed\n", check_passed, check_failed), check_failed ? 1 : 0)

/* An S3 client of a closed port on loopback: whatever a policy asks of it fails at once. */
static inline struct s3_client *closed_s3(void)
{
	struct s3_config sc = { .endpoint = "http://127.0.0.1:9", .region = "us-east-1",
				.bucket = "b", .access_key = "k", .secret_key = "s",
				.path_style = true, .timeout_ms = 500, .connect_timeout_ms = 200 };
	int err = 0;
	return s3_client_new(&sc, &err);
}

#endif
